//! Issue 21 end to end on real `sessiond` processes: webhooks delivered to a real local HTTP
//! endpoint (down, hanging, redirecting, refusing, then up; a SIGKILL in the middle), and the
//! endpoint's bad answers; `sessiond export` / `import` round trips and bad archives.

#[path = "support/daemon.rs"]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use session_gateway::webhooks::sign;
use sessiond_api::v1::webhook_service_client::WebhookServiceClient;
use sessiond_api::v1::{
    AddWebhookRequest, CreateIdentityRequest, ListWebhooksRequest, ReplayDeadLettersRequest,
    SendMessageRequest, Webhook, WebhookState,
};
use support::{bearer, clients, run_command, some_account_id, Daemon, TempDir};
use tonic::Code;

/// How the test endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 200 after `delay`.
    Up,
    /// 503.
    Down,
    /// Never answers.
    Hang,
    /// 302 to another host.
    Redirect,
    /// 413.
    TooLarge,
    /// 500.
    Broken,
}

/// A request the endpoint got.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    timestamp: u64,
    signature: String,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Seen {
    /// Every request, whatever the answer.
    all: Vec<Got>,
    /// The requests answered 200.
    accepted: Vec<Got>,
}

/// A real HTTP/1.1 endpoint on 127.0.0.1 (over TLS when started with a server config).
#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    tls: bool,
}

impl Endpoint {
    async fn start(mode: Mode, delay: Duration) -> Endpoint {
        Endpoint::start_with(mode, delay, None).await
    }

    async fn start_with(
        mode: Mode,
        delay: Duration,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let ep = Endpoint {
            addr: listener.local_addr().expect("addr"),
            mode: Arc::new(Mutex::new(mode)),
            seen: Arc::new(Mutex::new(Seen::default())),
            tls: tls.is_some(),
        };
        let shared = ep.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let ep = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let ep = ep.clone();
                        async move { ep.answer(req, delay).await }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        // A client that does not trust the certificate fails the handshake.
                        Some(tls) => match tls.accept(stream).await {
                            Ok(s) => {
                                http.serve_connection(hyper_util::rt::TokioIo::new(s), service)
                                    .await
                            }
                            Err(_) => return,
                        },
                        None => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await
                        }
                    };
                });
            }
        });
        ep
    }

    async fn answer(
        &self,
        req: http::Request<hyper::body::Incoming>,
        delay: Duration,
    ) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (id, ts, sig) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        );
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let got = Got {
            id,
            timestamp: ts.parse().unwrap_or(0),
            signature: sig,
            body,
        };
        let mode = *self.mode.lock().expect("mode");
        self.seen.lock().expect("seen").all.push(got.clone());
        let status = match mode {
            Mode::Up => {
                tokio::time::sleep(delay).await;
                self.seen.lock().expect("seen").accepted.push(got);
                200
            }
            Mode::Down => 503,
            Mode::Broken => 500,
            Mode::TooLarge => 413,
            Mode::Redirect => 302,
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                200
            }
        };
        let mut res = http::Response::builder().status(status);
        if mode == Mode::Redirect {
            res = res.header("location", "http://elsewhere.example/hook");
        }
        Ok(res.body(Full::new(Bytes::new())).expect("response"))
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/hook", self.addr)
    }

    fn accepted(&self) -> Vec<Got> {
        self.seen.lock().expect("seen").accepted.clone()
    }

    fn requests(&self) -> usize {
        self.seen.lock().expect("seen").all.len()
    }
}

/// The config of the webhook tests: quick retries and timeouts.
const WEBHOOK_CONFIG: &str = r#"
[webhooks]
timeout_ms = 400
backoff_initial_ms = 20
backoff_max_ms = 150
dead_letter_after_secs = 3600
"#;

fn start(dir: &Path, config: &Path) -> Daemon {
    let mut cmd = run_command(dir);
    cmd.arg("--config").arg(config);
    Daemon::start_with(dir, cmd)
}

struct Api {
    c: support::Clients,
    hooks: WebhookServiceClient<support::Authed>,
}

async fn api(d: &Daemon) -> Api {
    let ch = d.channel().await;
    let token = bearer(&d.admin_token);
    Api {
        c: clients(&ch, token.clone()),
        hooks: WebhookServiceClient::with_interceptor(ch, token),
    }
}

async fn send(api: &mut Api, n: usize, tag: &str) {
    for i in 0..n {
        api.c
            .msgs
            .send_message(SendMessageRequest {
                identity: "me".into(),
                recipient: some_account_id(7),
                text: format!("{tag} {i}"),
                idempotency_key: String::new(),
                ..Default::default()
            })
            .await
            .expect("send");
    }
}

async fn hook(api: &mut Api, name: &str) -> Webhook {
    let list = api
        .hooks
        .list_webhooks(ListWebhooksRequest {
            identity: "me".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .webhooks;
    list.into_iter()
        .find(|w| w.name == name)
        .expect("the webhook is listed")
}

async fn last_seq(api: &mut Api) -> u64 {
    api.c
        .ids
        .list_identities(sessiond_api::v1::ListIdentitiesRequest::default())
        .await
        .expect("list identities")
        .into_inner()
        .identities
        .into_iter()
        .find(|i| i.name == "me")
        .expect("me")
        .last_seq
}

/// Waits (up to 20 s) until `f` holds for the webhook.
async fn until(api: &mut Api, name: &str, what: &str, f: impl Fn(&Webhook) -> bool) -> Webhook {
    for _ in 0..400 {
        let w = hook(api, name).await;
        if f(&w) {
            return w;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "webhook {name} never got {what}: {:?}",
        hook(api, name).await
    );
}

/// Checks every accepted request's signature and that, with repeats of an id dropped, the ids
/// are the events 1..=last in order; returns how many repeats there were.
fn check_deliveries(got: &[Got], key: &[u8], last: u64) -> usize {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for g in got {
        assert!(
            sign::verify(key, &g.id, g.timestamp, &g.body, &g.signature),
            "bad signature on {}",
            g.id
        );
        let v: serde_json::Value = serde_json::from_slice(&g.body).expect("JSON body");
        let seq = v["seq"].as_u64().expect("seq");
        let epoch = v["log_epoch"].as_u64().expect("log_epoch");
        assert_eq!(g.id, format!("evt_{epoch}_{seq}"), "the id names the event");
        assert_eq!(v["identity"], "me");
        if seen.insert(g.id.clone()) {
            order.push(seq);
        }
    }
    let want: Vec<u64> = (1..=last).collect();
    assert_eq!(order, want, "every event once, in order");
    got.len() - order.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_every_event_once_in_order_through_outages_and_a_sigkill() {
    let dir = TempDir::new("wh");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, WEBHOOK_CONFIG).expect("config");
    let data = dir.path().join("data");
    let ep = Endpoint::start(Mode::Down, Duration::from_millis(15)).await;
    let daemon = start(&data, &config);
    let mut api = api(&daemon).await;
    api.c
        .ids
        .create_identity(CreateIdentityRequest { name: "me".into() })
        .await
        .expect("identity");

    // Bad input to AddWebhook: clear errors, nothing added.
    let bad = |url: &str, secret: &str, name: &str| AddWebhookRequest {
        identity: "me".into(),
        name: name.into(),
        url: url.into(),
        secret: secret.into(),
        after_seq: 0,
        from_now: false,
    };
    for (req, code, needle) in [
        (
            bad("ftp://127.0.0.1/x", "", "a"),
            Code::InvalidArgument,
            "scheme",
        ),
        (
            bad("http://example.com/x", "", "a"),
            Code::InvalidArgument,
            "allowed_hosts",
        ),
        (
            bad("http://user:pw@127.0.0.1/x", "", "a"),
            Code::InvalidArgument,
            "credentials",
        ),
        (bad("nonsense", "", "a"), Code::InvalidArgument, "not a URL"),
        (
            bad(&ep.url(), "whsec_AAAA", "a"),
            Code::InvalidArgument,
            "24 to 64",
        ),
        (
            bad(&ep.url(), "secret", "a"),
            Code::InvalidArgument,
            "whsec_",
        ),
        (bad(&ep.url(), "", "a b"), Code::InvalidArgument, "name"),
        (bad(&ep.url(), "", ""), Code::InvalidArgument, "name"),
    ] {
        let err = api.hooks.add_webhook(req).await.expect_err(needle);
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(needle), "{}", err.message());
    }
    let mut past = bad(&ep.url(), "", "a");
    past.after_seq = 5;
    let err = api.hooks.add_webhook(past).await.expect_err("past the end");
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());

    // The endpoint is down while 10 messages are queued.
    let secret = sign::new_secret();
    let key = sign::secret_bytes(&secret).expect("secret");
    let added = api
        .hooks
        .add_webhook(bad(&ep.url(), &secret, "bot"))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(added.secret, secret);
    let err = api
        .hooks
        .add_webhook(bad(&ep.url(), "", "bot"))
        .await
        .expect_err("same name");
    assert_eq!(err.code(), Code::AlreadyExists);
    send(&mut api, 10, "first").await;
    let w = until(&mut api, "bot", "503s", |w| w.failed_attempts >= 3).await;
    assert_eq!(w.state, WebhookState::Retrying as i32);
    assert_eq!(w.last_status, 503);
    assert_eq!(w.cursor_seq, 0);
    assert!(ep.accepted().is_empty());
    // 500, a hang (timeout) and a redirect: each a clear state, nothing lost.
    ep.set(Mode::Broken);
    until(&mut api, "bot", "a 500", |w| w.last_status == 500).await;
    ep.set(Mode::Hang);
    let w = until(&mut api, "bot", "a timeout", |w| {
        w.last_error.contains("hangs")
    })
    .await;
    assert_eq!(w.state, WebhookState::Retrying as i32);
    ep.set(Mode::Redirect);
    let w = until(&mut api, "bot", "a redirect", |w| w.last_status == 302).await;
    assert!(
        w.last_error.contains("elsewhere.example"),
        "{}",
        w.last_error
    );
    assert_eq!(w.cursor_seq, 0);

    // The endpoint comes back: everything arrives, once, in order.
    ep.set(Mode::Up);
    let last = last_seq(&mut api).await;
    assert!(last >= 10);
    let w = until(&mut api, "bot", "the backlog", |w| w.cursor_seq == last).await;
    assert_eq!(w.state, WebhookState::Active as i32);
    assert_eq!(w.pending, 0);
    assert_eq!(check_deliveries(&ep.accepted(), &key, last), 0);
    let v: serde_json::Value = serde_json::from_slice(&ep.accepted()[0].body).expect("json");
    assert_eq!(v["type"], "outgoing");
    assert_eq!(v["text"], "first 0");

    // Status and metrics show the webhook.
    let http = daemon.http.clone().expect("http listener");
    let auth = format!("Bearer {}", daemon.admin_token);
    let status =
        support::http_request(&http, "GET", "/api/status", &[("authorization", &auth)], "")
            .await
            .json();
    let listed = &status["webhooks"][0];
    assert_eq!(listed["name"], "bot");
    assert_eq!(listed["cursor_seq"], last);
    let metrics = support::http_request(&http, "GET", "/metrics", &[], "")
        .await
        .text();
    assert!(
        metrics.contains("sessiond_webhook_deliveries_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sessiond_webhook_failed_attempts_total"),
        "{metrics}"
    );

    // A SIGKILL in the middle of a stream of deliveries loses nothing.
    send(&mut api, 40, "second").await;
    let target = ep.accepted().len() + 10;
    for _ in 0..400 {
        if ep.accepted().len() >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill9();
    let daemon = start(&data, &config);
    let mut api = self::api(&daemon).await;
    let last = last_seq(&mut api).await;
    until(&mut api, "bot", "the rest", |w| w.cursor_seq == last).await;
    let repeats = check_deliveries(&ep.accepted(), &key, last);
    assert!(
        repeats <= 1,
        "at most the event in flight is repeated: {repeats}"
    );

    // 413: dead-lettered at once, with the reason; replay after the fix delivers the rest.
    ep.set(Mode::TooLarge);
    send(&mut api, 3, "third").await;
    let w = until(&mut api, "bot", "the dead-letter state", |w| {
        w.state == WebhookState::DeadLetter as i32
    })
    .await;
    assert!(w.last_error.contains("413"), "{}", w.last_error);
    assert!(w.pending >= 3);
    let tried = ep.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ep.requests(), tried, "a dead-lettered webhook stops trying");
    ep.set(Mode::Up);
    let replay = api
        .hooks
        .replay_dead_letters(ReplayDeadLettersRequest {
            identity: "me".into(),
            name: "bot".into(),
        })
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replay.replayed, w.pending);
    let last = last_seq(&mut api).await;
    until(&mut api, "bot", "the dead letters", |w| {
        w.cursor_seq == last
    })
    .await;
    check_deliveries(&ep.accepted(), &key, last);
}

/// Every event of `me` (all pages of ListEvents, optionally one conversation's) and its epoch.
/// A CA (its PEM) and a TLS acceptor for 127.0.0.1 with a certificate it issued.
fn tls_endpoint_keys() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("certificate");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server config");
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A webhook to an https endpoint: delivered when its certificate chains to the CA in
/// `webhooks.ca_file`, refused (and retried, with the reason) when it does not; a `ca_file`
/// that is not a certificate stops the daemon at start with the key named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_over_https_verify_the_endpoint() {
    let dir = TempDir::new("wh-tls");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let (ca_pem, trusted) = tls_endpoint_keys();
    let (_, stranger) = tls_endpoint_keys();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("ca file");
    let bad_ca = dir.path().join("bad.pem");
    std::fs::write(&bad_ca, "not a certificate").expect("bad ca file");
    let config = dir.path().join("sessiond.toml");
    let with_ca = |path: &Path| {
        format!(
            "{WEBHOOK_CONFIG}ca_file = {:?}\n",
            path.to_str().expect("utf-8 path")
        )
    };
    std::fs::write(&config, with_ca(&bad_ca)).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["run", "--data-dir"])
        .arg(dir.path().join("never"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("webhooks.ca_file"),
        "{err}"
    );

    std::fs::write(&config, with_ca(&ca_file)).expect("config");
    let good = Endpoint::start_with(Mode::Up, Duration::ZERO, Some(trusted)).await;
    let bad = Endpoint::start_with(Mode::Up, Duration::ZERO, Some(stranger)).await;
    assert!(good.url().starts_with("https://127.0.0.1:"));
    let daemon = start(&dir.path().join("data"), &config);
    let mut api = api(&daemon).await;
    api.c
        .ids
        .create_identity(CreateIdentityRequest { name: "me".into() })
        .await
        .expect("identity");
    for (name, ep) in [("good", &good), ("bad", &bad)] {
        api.hooks
            .add_webhook(AddWebhookRequest {
                identity: "me".into(),
                name: name.into(),
                url: ep.url(),
                secret: String::new(),
                after_seq: 0,
                from_now: false,
            })
            .await
            .expect("add");
    }
    send(&mut api, 3, "tls").await;
    let last = last_seq(&mut api).await;
    until(&mut api, "good", "the https deliveries", |w| {
        w.cursor_seq >= last
    })
    .await;
    assert!(
        good.accepted().len() as u64 >= last,
        "{:?}",
        good.accepted()
    );
    let refused = until(&mut api, "bad", "a certificate error", |w| {
        w.last_error.contains("certificate") || w.last_error.contains("Certificate")
    })
    .await;
    assert_eq!(refused.cursor_seq, 0, "{refused:?}");
    assert_eq!(bad.requests(), 0);
    drop(daemon);
}

async fn history(api: &mut Api, peer: &str) -> (Vec<sessiond_api::v1::Event>, u64) {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = api
            .c
            .msgs
            .list_events(sessiond_api::v1::ListEventsRequest {
                identity: "me".into(),
                page_size: 1000,
                peer: peer.into(),
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list events")
            .into_inner();
        out.extend(r.events);
        if r.next_page_token.is_empty() {
            return (out, r.log_epoch);
        }
        page_token = r.next_page_token;
    }
}

async fn conversations_and_contacts(api: &mut Api) -> (Vec<String>, Vec<String>) {
    let convs = api
        .c
        .convs
        .list_conversations(sessiond_api::v1::ListConversationsRequest {
            identity: "me".into(),
            ..Default::default()
        })
        .await
        .expect("conversations")
        .into_inner()
        .conversations;
    let contacts = api
        .c
        .convs
        .list_contacts(sessiond_api::v1::ListContactsRequest {
            identity: "me".into(),
            ..Default::default()
        })
        .await
        .expect("contacts")
        .into_inner()
        .contacts;
    (
        convs.iter().map(|c| format!("{c:?}")).collect(),
        contacts.iter().map(|c| format!("{c:?}")).collect(),
    )
}

fn sessiond(args: &[&str]) -> std::process::Output {
    std::process::Command::new(support::BIN)
        .args(args)
        .env_remove("SESSIOND_CONFIG")
        .env_remove("SESSIOND_DATA_DIR")
        .env_remove("SESSIOND_PASSPHRASE_FILE")
        .output()
        .expect("run sessiond")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_gives_the_same_history_of_a_1000_message_conversation() {
    let dir = TempDir::new("archive");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let data = dir.path().join("data");
    // The daemon is offline, so all 1,003 messages stay queued: room for them past the default
    // outbox bound (outbox.max_queued, 1,000).
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, "[outbox]\nmax_queued = 5000\n").expect("config");
    let mut cmd = support::run_command(&data);
    cmd.arg("--config").arg(&config);
    let daemon = Daemon::start_with(&data, cmd);
    let mut api = api(&daemon).await;
    api.c
        .ids
        .create_identity(CreateIdentityRequest { name: "me".into() })
        .await
        .expect("identity");
    send(&mut api, 1000, "long").await;
    for i in 0..3 {
        api.c
            .msgs
            .send_message(SendMessageRequest {
                identity: "me".into(),
                recipient: some_account_id(9),
                text: format!("From the other conversation\nFrom line {i}"),
                idempotency_key: String::new(),
                ..Default::default()
            })
            .await
            .expect("send");
    }
    api.c
        .convs
        .set_contact_name(sessiond_api::v1::SetContactNameRequest {
            identity: "me".into(),
            account_id: some_account_id(7),
            name: "Seven".into(),
        })
        .await
        .expect("name");
    let peer = some_account_id(7);
    let (before_all, epoch) = history(&mut api, "").await;
    let (before_peer, _) = history(&mut api, &peer).await;
    assert!(before_peer.len() >= 1000, "{}", before_peer.len());
    let before_book = conversations_and_contacts(&mut api).await;
    assert!(daemon.terminate().success());

    let file = dir.path().join("me.jsonl");
    let d = data.to_str().expect("utf-8");
    let out = sessiond(&[
        "export",
        "me",
        "--data-dir",
        d,
        "--output",
        file.to_str().expect("p"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the archive holds the seed");
    // Never overwritten.
    let again = sessiond(&[
        "export",
        "me",
        "--data-dir",
        d,
        "--output",
        file.to_str().expect("p"),
    ]);
    assert_eq!(again.status.code(), Some(2));
    // mbox: the messages, with From-lines quoted.
    let mbox = sessiond(&["export", "me", "--data-dir", d, "--format", "mbox"]);
    assert!(mbox.status.success());
    let mbox = String::from_utf8(mbox.stdout).expect("utf-8");
    assert_eq!(
        mbox.matches("\nFrom: <").count() + usize::from(mbox.starts_with("From: ")),
        1003
    );
    assert!(mbox.contains("\n>From line 0\n"), "mboxrd quoting");
    assert!(mbox.starts_with("From 05"), "{}", &mbox[..80]);

    // Bad archives: truncated, edited, garbage; nothing is written.
    let bytes = std::fs::read(&file).expect("read");
    let target = dir.path().join("imported");
    let t = target.to_str().expect("utf-8");
    for (name, content, needle) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        (
            "cut-at-line",
            {
                let cut = bytes[..bytes.len() - 2]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .expect("lines");
                bytes[..=cut].to_vec()
            },
            "truncated",
        ),
        (
            "edited",
            String::from_utf8(bytes.clone())
                .expect("utf-8")
                .replacen("long 5\"", "long 6\"", 1)
                .into_bytes(),
            "checksum",
        ),
        ("garbage", b"hello\n".to_vec(), "truncated"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).expect("write");
        let out = sessiond(&["import", path.to_str().expect("p"), "--data-dir", t]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!target.exists(), "{name}: nothing written");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".import-"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: no staging dir left");
    }
    // Over an existing data dir: refused.
    let out = sessiond(&["import", file.to_str().expect("p"), "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let out = sessiond(&["import", file.to_str().expect("p"), "--data-dir", t]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = Daemon::start(&target);
    let mut api = self::api(&daemon).await;
    let (after_all, after_epoch) = history(&mut api, "").await;
    let (after_peer, _) = history(&mut api, &peer).await;
    assert_eq!(after_epoch, epoch, "the log keeps its epoch");
    assert_eq!(after_all, before_all);
    assert_eq!(after_peer, before_peer);
    assert_eq!(conversations_and_contacts(&mut api).await, before_book);
}

/// With `isolate_identities`, two identities' requests enter the devnet through disjoint guards
/// and client connections, by the devnet's own record of which guard saw which client
/// connection carry whose requests; GetNetworkStatus names each identity's paths; messages
/// still flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_identities_never_share_a_guard() {
    use session_devnet::node::Event;
    use std::collections::{HashMap, HashSet};
    let config = format!(
        "{}\n[network]\nisolate_identities = true\n",
        support::FAST_CONFIG
    );
    let net = support::net("iso", &config).await;
    let data = net.dir.path().join("data");
    let daemon = Daemon::start_with(
        &data,
        support::networked_command(&data, &net.manifest, &net.config),
    );
    let mut api = api(&daemon).await;
    let mut accounts = HashMap::new();
    for name in ["alice", "bob"] {
        let id = api
            .c
            .ids
            .create_identity(CreateIdentityRequest { name: name.into() })
            .await
            .expect("identity")
            .into_inner()
            .identity
            .expect("identity");
        accounts.insert(name, id.account_id);
    }
    // A message each way: the isolated paths carry stores and polls.
    for (from, to) in [("alice", "bob"), ("bob", "alice")] {
        api.c
            .msgs
            .send_message(SendMessageRequest {
                identity: from.into(),
                recipient: accounts[to].clone(),
                text: format!("hi from {from}"),
                idempotency_key: String::new(),
                ..Default::default()
            })
            .await
            .expect("send");
    }
    let received = |events: &[sessiond_api::v1::Event]| {
        events
            .iter()
            .any(|e| matches!(e.kind, Some(sessiond_api::v1::event::Kind::Incoming(_))))
    };
    for name in ["alice", "bob"] {
        let mut got = false;
        for _ in 0..300 {
            let events = api
                .c
                .msgs
                .list_events(sessiond_api::v1::ListEventsRequest {
                    identity: name.into(),
                    ..Default::default()
                })
                .await
                .expect("events")
                .into_inner()
                .events;
            if received(&events) {
                got = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(got, "{name} never got its message over isolated paths");
    }

    // The devnet's record: the guards and client connections that carried each account's polls.
    let mut guards: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut conns: HashMap<&str, HashSet<SocketAddr>> = HashMap::new();
    let mut entered: HashMap<String, HashSet<SocketAddr>> = HashMap::new();
    for node in net.devnet.nodes() {
        for event in node.events() {
            match event {
                Event::OnionEntered { client } => {
                    entered
                        .entry(hex::encode(node.ed25519()))
                        .or_default()
                        .insert(client);
                }
                Event::OnionTraced {
                    guard,
                    client,
                    method,
                    accounts: named,
                    // Requests only the account itself makes (signed retrieves); a store or a
                    // swarm lookup names the recipient, which is another identity's account.
                } if matches!(method.as_str(), "batch" | "sequence" | "retrieve") => {
                    for (name, account) in &accounts {
                        if named.iter().any(|a| account.starts_with(a.as_str())) {
                            guards.entry(name).or_default().insert(guard.clone());
                            conns.entry(name).or_default().insert(client);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let (ga, gb) = (&guards["alice"], &guards["bob"]);
    assert!(!ga.is_empty() && !gb.is_empty(), "{guards:?}");
    assert!(
        ga.is_disjoint(gb),
        "a guard carried both identities: {ga:?} {gb:?}"
    );
    assert!(conns["alice"].is_disjoint(&conns["bob"]));
    // Each traced connection is one the guard itself recorded.
    for g in ga.iter().chain(gb) {
        assert!(
            entered.contains_key(g),
            "guard {g} recorded no client connection"
        );
    }

    // GetNetworkStatus names each identity's paths; their guards are the devnet's.
    let status = api
        .c
        .net
        .get_network_status(sessiond_api::v1::GetNetworkStatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("status");
    assert!(status.isolate_identities);
    let reported = |name: &str| -> HashSet<String> {
        status
            .paths
            .iter()
            .filter(|p| p.identity == name)
            .filter_map(|p| p.hops.first().map(|h| h.ed25519_pubkey.clone()))
            .collect()
    };
    let (ra, rb) = (reported("alice"), reported("bob"));
    assert!(!ra.is_empty() && !rb.is_empty(), "{status:?}");
    assert!(ra.is_disjoint(&rb));
    // What the devnet saw agrees: no guard of one identity is a reported guard of the other.
    assert!(
        ga.is_disjoint(&rb) && gb.is_disjoint(&ra),
        "{ga:?} {gb:?} vs {ra:?} {rb:?}"
    );
}

/// The archive carries more than the history: the identity's groups (with their keys and
/// credentials), community rooms, disappearing settings and schedules, swarm chores, settings
/// and attachment records (a downloaded one comes back as not downloaded: files are not in the
/// archive, and its local link still resolves). Export → import → export gives the same bytes;
/// an archive of the older version 1 (history only) still imports; a newer version, an unknown
/// table and a record that does not decode are refused with nothing written.
#[test]
fn the_archive_carries_groups_rooms_timers_and_attachments_and_reads_version_1() {
    use session_gateway::archive::{export_jsonl, import, read_archive, ArchiveError};
    use session_gateway::engine::community::{DmItem, DmPoll};
    use session_gateway::store::{
        AttachmentRecord, AttachmentState, AttachmentView, ExpirySetting, GroupMember, GroupRecord,
        GroupStatus, IdentitySettings, KeysMessage, MessageExtras, Received, RoomRecord, RoomState,
        Row, Store,
    };
    use session_proto::keys::IdentityKeys;
    use sha2::{Digest, Sha256};

    let dir = TempDir::new("archive-tables");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let now = 1_800_000_000_000u64;
    let store = Store::open(&dir.path().join("a")).expect("store");
    let keys = IdentityKeys::from_seed16(&[0x5a; 16]);
    let me = store
        .add_identity("me", &keys.account_id().to_string(), keys.seed(), now)
        .expect("identity");
    let peer = some_account_id(4);
    // A message with a disappearing timer (a purge and a swarm chore) and an attachment.
    let view = |id: &str, state| AttachmentView {
        id: id.into(),
        conversation: peer.clone(),
        outgoing: false,
        file_name: Some("cat.jpg".into()),
        content_type: Some("image/jpeg".into()),
        size: 3,
        voice_message: false,
        width: None,
        height: None,
        caption: None,
        state,
        reason: None,
        sha256: None,
        token: format!("{:0>64}", id),
    };
    let received = Received {
        sender: peer.clone(),
        conversation: None,
        text: "look".into(),
        sent_at_ms: now - 10,
        received_at_ms: now,
        hash: "h1".into(),
        sender_profile_name: None,
        sync_target: None,
        extras: MessageExtras {
            expiry: Some(ExpirySetting {
                after_read: false,
                seconds: 3600,
            }),
            expires_at_ms: Some(now + 3_600_000),
            ..Default::default()
        },
        attachments: vec![view("a1", AttachmentState::Pending)],
        pointers: vec!["0a0b".into()],
        server_id: None,
        edited_at_ms: None,
    };
    store
        .record_received(me.id, 0, &[received], None, now)
        .expect("received");
    // An upload whose file is here.
    let mut upload = AttachmentRecord {
        view: view("a2", AttachmentState::Downloaded),
        pointer: "0c0d".into(),
        stored_bytes: 3,
        stored_at_ms: now,
        created_at_ms: now,
    };
    upload.view.outgoing = true;
    store.put_attachment(me.id, &upload).expect("upload");
    let gid = format!("03{}", "ab".repeat(32));
    let group = GroupRecord {
        id: gid.clone(),
        name: "Climbers".into(),
        description: "ropes".into(),
        status: GroupStatus::Joined,
        admin_seed: Some("cd".repeat(32)),
        auth_data: None,
        inviter: None,
        members: vec![GroupMember {
            account_id: keys.account_id().to_string(),
            name: "me".into(),
            admin: true,
            invited: false,
        }],
        keys_messages: vec![KeysMessage {
            hash: "k1".into(),
            data: "00ff".into(),
            timestamp_ms: now,
        }],
        info_dump: Some("0102".into()),
        members_dump: None,
        created_at_ms: now,
    };
    store
        .update_group(me.id, &gid, now, |_| Some(group.clone()))
        .expect("group");
    let room = RoomRecord {
        address: "http://127.0.0.1:9/lobby".into(),
        base_url: "http://127.0.0.1:9".into(),
        token: "lobby".into(),
        pubkey: "ef".repeat(32),
        joined_at_ms: now,
        seqno: Some(42),
        state: Some(RoomState {
            name: "Lobby".into(),
            write: true,
            read: true,
            ..Default::default()
        }),
        last_poll_ms: now,
        last_error: String::new(),
    };
    assert!(store.join_community_room(me.id, &room).expect("room"));
    // A community DM whose key revealed the sender's Account ID behind its blinded ID.
    let blinded = format!("15{}", "ab".repeat(32));
    let behind = some_account_id(5);
    let dms = DmPoll {
        items: vec![DmItem {
            server_id: 1,
            outgoing: false,
            peer: blinded.clone(),
            sender_account: behind.clone(),
            text: "hello from the lobby".into(),
            posted_ms: now,
            profile_name: None,
        }],
        inbox: Some(1),
        outbox: None,
    };
    store
        .record_community_dms(me.id, &room.base_url, &dms, now)
        .expect("community DM");
    assert_eq!(
        store.community_account(me.id, &blinded).expect("account"),
        Some(behind.clone())
    );
    store
        .set_identity_settings(
            me.id,
            IdentitySettings {
                read_receipts: false,
            },
        )
        .expect("settings");

    let mut first = Vec::new();
    export_jsonl(&store, "me", 0, now, &mut first).expect("export");
    let text = String::from_utf8(first.clone()).expect("utf-8");
    assert!(text.starts_with("{\"t\":\"header\",\"format\":\"sessiond-archive\",\"version\":2"));
    for kind in [
        "\"t\":\"record\"",
        "\"t\":\"settings\"",
        "\"t\":\"expiry\"",
        "\"t\":\"community_account\"",
    ] {
        assert!(text.contains(kind), "{kind} missing");
    }
    let target = dir.path().join("b");
    import(&first, &target).expect("import");
    let back = Store::open(&target).expect("imported store");
    assert_eq!(back.group(me.id, &gid).expect("read"), Some(group.clone()));
    assert_eq!(
        back.community_rooms(me.id).expect("rooms"),
        vec![room.clone()]
    );
    assert_eq!(
        back.community_account(me.id, &blinded).expect("account"),
        Some(behind.clone()),
        "the Account ID behind a blinded ID comes back"
    );
    assert!(
        !back
            .identity_settings(me.id)
            .expect("settings")
            .read_receipts
    );
    let purge = store.next_purge().expect("purge");
    assert!(purge.is_some_and(|at| at > now));
    assert_eq!(back.next_purge().expect("purge"), purge);
    assert_eq!(back.swarm_chores().expect("chores").len(), 1);
    let incoming = back.attachment(me.id, "a1").expect("a1");
    assert_eq!(incoming.view.state, AttachmentState::Pending);
    let up = back.attachment(me.id, "a2").expect("a2");
    assert_eq!(
        (
            up.view.state,
            up.stored_bytes,
            up.stored_at_ms,
            up.pointer.as_str()
        ),
        (AttachmentState::Pending, 0, 0, "0c0d")
    );
    let (owner, by_token) = back
        .attachment_by_token(&upload.view.token)
        .expect("token")
        .expect("the link resolves");
    assert_eq!((owner, by_token), (me.id, up));
    let mut second = Vec::new();
    export_jsonl(&back, "me", 0, now, &mut second).expect("export again");
    assert_eq!(second, first);
    drop(back);

    // Rewrites an archive's lines with `f` (None drops a line) and signs it again.
    let rewrite = |f: &dyn Fn(&str) -> Option<String>| -> Vec<u8> {
        let mut out = String::new();
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[..lines.len() - 1] {
            if let Some(l) = f(l) {
                out.push_str(&l);
                out.push('\n');
            }
        }
        let sha = hex::encode(Sha256::digest(out.as_bytes()));
        let n = out.lines().count();
        out.push_str(&format!(
            "{{\"t\":\"end\",\"lines\":{n},\"sha256\":\"{sha}\"}}\n"
        ));
        out.into_bytes()
    };
    let new_kinds = [
        "\"t\":\"record\"",
        "\"t\":\"settings\"",
        "\"t\":\"expiry\"",
        "\"t\":\"peer\"",
        "\"t\":\"community_account\"",
    ];
    // Version 1: the history, conversations and contacts only.
    let v1 = rewrite(&|l| {
        if new_kinds.iter().any(|k| l.contains(k)) {
            None
        } else {
            Some(l.replacen("\"version\":2", "\"version\":1", 1))
        }
    });
    let old = dir.path().join("c");
    import(&v1, &old).expect("a version 1 archive imports");
    let back = Store::open(&old).expect("store");
    assert!(back.group(me.id, &gid).expect("read").is_none());
    let events = |s: &Store| {
        s.identity_rows("me", |_| true)
            .expect("rows")
            .rows
            .iter()
            .filter(|r| matches!(r, Row::Event { .. }))
            .count()
    };
    assert_eq!(events(&back), events(&store));
    assert!(events(&store) > 0);
    drop(back);

    for (what, bytes) in [
        (
            "a newer version",
            rewrite(&|l| Some(l.replacen("\"version\":2", "\"version\":3", 1))),
        ),
        (
            "an unknown table",
            rewrite(&|l| Some(l.replacen("\"table\":\"groups\"", "\"table\":\"nope\"", 1))),
        ),
        (
            "a group record that does not decode",
            rewrite(&|l| Some(l.replacen("\"status\":\"joined\"", "\"status\":\"maybe\"", 1))),
        ),
    ] {
        let target = dir.path().join("bad");
        let err = match read_archive(&bytes) {
            Err(e) => e,
            Ok(_) => import(&bytes, &target).expect_err(what),
        };
        assert!(
            matches!(err, ArchiveError::Bad(_) | ArchiveError::Store(_)),
            "{what}: {err}"
        );
        assert!(!target.exists(), "{what}: nothing is written");
    }
}
