// sessiond status page: asks for the admin token once, then shows /api/status every 2 s.
"use strict";

const $ = (id) => document.getElementById(id);

function text(tag, content, cls) {
  const el = document.createElement(tag);
  el.textContent = content;
  if (cls) el.className = cls;
  return el;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(text("td", c));
  return tr;
}

function ago(now, then) {
  if (!then) return "—";
  const s = Math.max(0, Math.floor((now - then) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.floor(s / 60) + " min";
  if (s < 172800) return Math.floor(s / 3600) + " h";
  return Math.floor(s / 86400) + " d";
}

function fill(id, rows, empty) {
  const body = $(id);
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = text("td", empty, "muted");
    td.colSpan = 6;
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function render(r) {
  const health = $("health");
  health.textContent = r.health.ready ? "ready" : "not ready";
  health.className = "badge " + (r.health.ready ? "ok" : "bad");
  $("reasons").replaceChildren(...r.health.reasons.map((x) => text("li", x, "bad")));
  const n = r.network;
  $("network").textContent = `Network ${n.name}: ${n.pool_size} snodes in the pool, ` +
    `${n.swarms_cached} swarms cached, clock offset ${n.clock_offset_ms} ms` +
    (n.last_error ? `; last error: ${n.last_error}` : "") +
    `. Up ${ago(r.now_ms, r.started_at_ms)}; seeds ${r.encrypted ? "encrypted" : "not encrypted"}.`;

  const paths = r.paths.map((p) => {
    const div = document.createElement("div");
    div.className = "path";
    div.appendChild(text("span", "you", "hop"));
    p.hops.forEach((h, i) => {
      div.appendChild(text("span", "→", "arrow"));
      const hop = text("span", `${i === 0 ? "guard" : "relay"} ${h.key} ${h.address}` +
        (h.strikes ? ` (${h.strikes} strikes)` : ""), "hop key" + (h.strikes ? " struck" : ""));
      div.appendChild(hop);
    });
    div.appendChild(text("span", "→ swarm", "arrow"));
    div.appendChild(text("span", ` #${p.id}, built ${ago(r.now_ms, p.built_at_ms)} ago, ${p.strikes} strikes`,
      p.strikes ? "bad" : "muted"));
    return div;
  });
  $("paths").replaceChildren(...(paths.length ? paths : [text("p", "No path built.", "muted")]));

  fill("identities", r.identities.map((i) =>
    row([i.name, i.account, i.unread, i.queued, i.failed,
      i.notice || (i.configs_pulled ? "" : "settings not synced yet")])), "No identities.");
  const o = r.outbox;
  $("outbox-summary").textContent = `${o.depth} queued` +
    (o.oldest_at_ms ? `, the oldest ${ago(r.now_ms, o.oldest_at_ms)} old` : "");
  fill("outbox", o.entries.map((e) => row([e.identity, e.recipient, ago(r.now_ms, e.queued_at_ms) + " ago",
    e.attempts, e.next_try_ms > r.now_ms ? "in " + ago(e.next_try_ms, r.now_ms) : "now", e.last_error || ""])),
    "The outbox is empty.");
  fill("failures", r.recent_failures.map((f) => row([ago(r.now_ms, f.at_ms) + " ago", f.identity,
    f.message_id, f.reason])), "No failures since the daemon started.");
  fill("listeners", r.adapters.map((a) => row([a.name, a.listen,
    a.connections === null || a.connections === undefined ? "" : a.connections])), "");
  $("updated").textContent = "updated " + new Date(r.now_ms).toLocaleTimeString();
}

function showLogin(message) {
  $("status").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("health").textContent = "locked";
  $("health").className = "badge muted";
}

let timer = null;

async function refresh() {
  try {
    const res = await fetch("/api/status", { credentials: "same-origin", cache: "no-store" });
    if (res.status === 401) {
      showLogin("");
      return;
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    render(await res.json());
    $("login").hidden = true;
    $("status").hidden = false;
    $("logout").hidden = false;
  } catch (e) {
    $("updated").textContent = "cannot reach the daemon (" + e.message + ")";
  }
  timer = setTimeout(refresh, 2000);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const res = await fetch("/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: $("token").value }),
    credentials: "same-origin",
  });
  $("token").value = "";
  if (res.status === 204) {
    clearTimeout(timer);
    refresh();
  } else {
    showLogin("That is not the admin token.");
  }
});

$("logout").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", credentials: "same-origin" });
  clearTimeout(timer);
  showLogin("");
});

refresh();
