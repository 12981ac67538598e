//! `sessiond webhook add|list|remove|pause|resume|replay`: the WebhookService from the command
//! line (the running daemon, over its Unix socket). Each prints JSON.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;
use sessiond_api::v1::{
    AddWebhookRequest, ListWebhooksRequest, PauseWebhookRequest, RemoveWebhookRequest,
    ReplayDeadLettersRequest, ResumeWebhookRequest, Webhook, WebhookState,
};

use super::client::{data_dir, print, runtime, ClientArgs, ClientError, Connection};

/// Arguments of `sessiond webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// The webhook command.
    #[command(subcommand)]
    pub cmd: WebhookCmd,
    /// Where the daemon is.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The webhook subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Add a webhook; prints it with its signing secret (shown once).
    Add {
        /// The identity whose events it receives.
        identity: String,
        /// The webhook's name.
        name: String,
        /// The endpoint, http[s]://host[:port]/path (loopback, or a host in allowed_hosts).
        url: String,
        /// The signing secret (whsec_…); default: a new one.
        #[arg(long, default_value = "")]
        secret: String,
        /// Send the whole event log first (default: only events from now on).
        #[arg(long)]
        from_start: bool,
    },
    /// List an identity's webhooks with their delivery state.
    List {
        /// The identity.
        identity: String,
    },
    /// Remove a webhook.
    Remove {
        /// The identity.
        identity: String,
        /// The webhook.
        name: String,
    },
    /// Stop delivering (the cursor stays).
    Pause {
        /// The identity.
        identity: String,
        /// The webhook.
        name: String,
    },
    /// Deliver again after a pause.
    Resume {
        /// The identity.
        identity: String,
        /// The webhook.
        name: String,
    },
    /// Leave the dead-letter state: send the dead letters again, in order.
    Replay {
        /// The identity.
        identity: String,
        /// The webhook.
        name: String,
    },
}

fn state_name(state: i32) -> &'static str {
    match WebhookState::try_from(state) {
        Ok(WebhookState::Active) => "active",
        Ok(WebhookState::Retrying) => "retrying",
        Ok(WebhookState::Paused) => "paused",
        Ok(WebhookState::DeadLetter) => "dead_letter",
        _ => "unspecified",
    }
}

/// A webhook as JSON.
pub fn webhook_json(w: &Webhook) -> serde_json::Value {
    json!({
        "identity": w.identity, "name": w.name, "url": w.url, "state": state_name(w.state),
        "cursor_seq": w.cursor_seq, "pending": w.pending, "delivered": w.delivered,
        "failed_attempts": w.failed_attempts, "last_error": w.last_error,
        "last_status": w.last_status, "next_attempt_at_ms": w.next_attempt_at_ms,
        "failing_since_ms": w.failing_since_ms, "dead_since_ms": w.dead_since_ms,
        "source": w.source,
    })
}

/// Runs a webhook command.
pub fn run(args: WebhookArgs, stdout: &mut dyn Write) -> Result<(), ClientError> {
    let dir = data_dir(&args.client)?;
    runtime()?.block_on(async {
        let conn = Connection::open(&dir).await?;
        let mut hooks = conn.webhooks();
        let one = |w: Option<Webhook>| w.as_ref().map_or(json!(null), webhook_json);
        let value = match args.cmd {
            WebhookCmd::Add {
                identity,
                name,
                url,
                secret,
                from_start,
            } => {
                let r = hooks
                    .add_webhook(AddWebhookRequest {
                        identity,
                        name,
                        url,
                        secret,
                        after_seq: 0,
                        from_now: !from_start,
                    })
                    .await?
                    .into_inner();
                let mut v = one(r.webhook);
                v["secret"] = json!(r.secret);
                v
            }
            WebhookCmd::List { identity } => {
                let r = hooks
                    .list_webhooks(ListWebhooksRequest { identity })
                    .await?
                    .into_inner();
                serde_json::Value::Array(r.webhooks.iter().map(webhook_json).collect())
            }
            WebhookCmd::Remove { identity, name } => {
                hooks
                    .remove_webhook(RemoveWebhookRequest {
                        identity,
                        name: name.clone(),
                    })
                    .await?;
                json!({"name": name, "removed": true})
            }
            WebhookCmd::Pause { identity, name } => one(hooks
                .pause_webhook(PauseWebhookRequest { identity, name })
                .await?
                .into_inner()
                .webhook),
            WebhookCmd::Resume { identity, name } => one(hooks
                .resume_webhook(ResumeWebhookRequest { identity, name })
                .await?
                .into_inner()
                .webhook),
            WebhookCmd::Replay { identity, name } => {
                let r = hooks
                    .replay_dead_letters(ReplayDeadLettersRequest { identity, name })
                    .await?
                    .into_inner();
                let mut v = one(r.webhook);
                v["replayed"] = json!(r.replayed);
                v
            }
        };
        print(stdout, &value)
    })
}
