//! The WebhookService: add, list, remove, pause and resume webhooks, and replay dead letters.
//! Each change is one store transaction, then a nudge to the delivery tasks
//! ([`crate::webhooks::Hub::changed`]).

use sessiond_api::v1::webhook_service_server::WebhookService;
use sessiond_api::v1::{
    AddWebhookRequest, AddWebhookResponse, ListWebhooksRequest, ListWebhooksResponse,
    PauseWebhookRequest, PauseWebhookResponse, RemoveWebhookRequest, RemoveWebhookResponse,
    ReplayDeadLettersRequest, ReplayDeadLettersResponse, ResumeWebhookRequest,
    ResumeWebhookResponse, Webhook, WebhookState,
};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::{now_ms, ApiError, Service, State};
use crate::store::{IdentityRecord, StoreError, WebhookRecord, WebhookSource};
use crate::webhooks::{self, deliver, sign, WebhookView};

fn to_api(v: WebhookView) -> Webhook {
    Webhook {
        identity: v.identity,
        name: v.name,
        url: v.url,
        state: match v.state {
            webhooks::WebhookState::Active => WebhookState::Active,
            webhooks::WebhookState::Retrying => WebhookState::Retrying,
            webhooks::WebhookState::Paused => WebhookState::Paused,
            webhooks::WebhookState::DeadLetter => WebhookState::DeadLetter,
        } as i32,
        cursor_seq: v.cursor_seq,
        pending: v.pending,
        delivered: v.delivered,
        failed_attempts: v.failed_attempts,
        last_error: v.last_error.unwrap_or_default(),
        last_status: v.last_status.map_or(0, u32::from),
        next_attempt_at_ms: v.next_attempt_at_ms.unwrap_or(0),
        failing_since_ms: v.failing_since_ms.unwrap_or(0),
        dead_since_ms: v.dead_since_ms.unwrap_or(0),
        source: v.source,
    }
}

/// One webhook of `identity`, viewed.
fn view(state: &State, identity: &IdentityRecord, name: &str) -> Result<Webhook, ApiError> {
    let (record, cursor) = state.store.webhook(identity.id, name)?;
    let last = state.store.last_seq(identity.id)?;
    Ok(to_api(state.webhooks.metrics().view(
        &identity.name,
        &record,
        cursor,
        last,
    )))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    webhooks::check_name(name).map_err(|e| ApiError::field("name", e))
}

impl Service {
    /// Changes one webhook's record with `f`, nudges the tasks, returns the webhook viewed and
    /// what `f` returned.
    async fn change<T: Send + 'static>(
        &self,
        who: super::auth::Caller,
        identity: String,
        name: String,
        f: impl FnOnce(&mut WebhookRecord) -> T + Send + 'static,
    ) -> Result<(Webhook, T), ApiError> {
        check_name(&name)?;
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let mut out = None;
                state.store.update_webhook(record.id, &name, |r| {
                    out = Some(f(r));
                })?;
                let out = out.ok_or_else(|| ApiError::Internal("webhook not changed".into()))?;
                Ok((view(state, &record, &name)?, out))
            })
            .await?;
        self.state().webhooks.changed();
        Ok(out)
    }
}

#[tonic::async_trait]
impl WebhookService for Service {
    async fn add_webhook(
        &self,
        req: Request<AddWebhookRequest>,
    ) -> Result<Response<AddWebhookResponse>, Status> {
        let who = caller(&req)?;
        let AddWebhookRequest {
            identity,
            name,
            url,
            secret,
            after_seq,
            from_now,
        } = req.into_inner();
        check_name(&name)?;
        deliver::check_url(&url, &self.state().webhooks.config().allowed_hosts)
            .map_err(|e| ApiError::field("url", e.to_string()))?;
        let secret = if secret.is_empty() {
            sign::new_secret()
        } else {
            sign::secret_bytes(&secret).map_err(|e| ApiError::field("secret", e.to_string()))?;
            secret.trim().to_owned()
        };
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let start = if from_now {
                    state.store.last_seq(record.id)?
                } else {
                    after_seq
                };
                let hook = WebhookRecord {
                    identity: record.id,
                    name: name.clone(),
                    url,
                    secret: secret.clone(),
                    source: WebhookSource::Api,
                    paused: false,
                    dead: None,
                    created_at_ms: now_ms(),
                };
                match state.store.add_webhook(&hook, start) {
                    Ok(()) => {}
                    Err(StoreError::SeqPastEnd { seq, last }) => {
                        return Err(ApiError::SeqOutOfRange {
                            field: "after_seq",
                            seq,
                            last_seq: last,
                        })
                    }
                    Err(e) => return Err(e.into()),
                }
                Ok(AddWebhookResponse {
                    webhook: Some(view(state, &record, &name)?),
                    secret,
                })
            })
            .await?;
        self.state().webhooks.changed();
        Ok(Response::new(out))
    }

    async fn list_webhooks(
        &self,
        req: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        let who = caller(&req)?;
        let identity = req.into_inner().identity;
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let last = state.store.last_seq(record.id)?;
                let webhooks = state
                    .store
                    .webhooks(Some(record.id))?
                    .iter()
                    .map(|(hook, cursor)| {
                        to_api(
                            state
                                .webhooks
                                .metrics()
                                .view(&record.name, hook, *cursor, last),
                        )
                    })
                    .collect();
                Ok(ListWebhooksResponse { webhooks })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn remove_webhook(
        &self,
        req: Request<RemoveWebhookRequest>,
    ) -> Result<Response<RemoveWebhookResponse>, Status> {
        let who = caller(&req)?;
        let RemoveWebhookRequest { identity, name } = req.into_inner();
        check_name(&name)?;
        self.blocking(move |state| {
            let record = who.identity(state, "identity", &identity)?;
            Ok(state.store.remove_webhook(record.id, &name)?)
        })
        .await?;
        self.state().webhooks.changed();
        Ok(Response::new(RemoveWebhookResponse {}))
    }

    async fn pause_webhook(
        &self,
        req: Request<PauseWebhookRequest>,
    ) -> Result<Response<PauseWebhookResponse>, Status> {
        let who = caller(&req)?;
        let PauseWebhookRequest { identity, name } = req.into_inner();
        let (webhook, ()) = self
            .change(who, identity, name, |r| r.paused = true)
            .await?;
        Ok(Response::new(PauseWebhookResponse {
            webhook: Some(webhook),
        }))
    }

    async fn resume_webhook(
        &self,
        req: Request<ResumeWebhookRequest>,
    ) -> Result<Response<ResumeWebhookResponse>, Status> {
        let who = caller(&req)?;
        let ResumeWebhookRequest { identity, name } = req.into_inner();
        let (webhook, ()) = self
            .change(who, identity, name, |r| r.paused = false)
            .await?;
        Ok(Response::new(ResumeWebhookResponse {
            webhook: Some(webhook),
        }))
    }

    async fn replay_dead_letters(
        &self,
        req: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        let who = caller(&req)?;
        let ReplayDeadLettersRequest { identity, name } = req.into_inner();
        let (webhook, was_dead) = self
            .change(who, identity, name, |r| r.dead.take().is_some())
            .await?;
        let replayed = if was_dead { webhook.pending } else { 0 };
        Ok(Response::new(ReplayDeadLettersResponse {
            webhook: Some(webhook),
            replayed,
        }))
    }
}
