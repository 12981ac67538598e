//! The gRPC services of `sessiond.v1` on one service struct, with auth, health and reflection.
//!
//! # Layout
//! - [`auth`]: tokens (admin file, identity-scoped) and the interceptor that checks them.
//! - [`err`]: [`ApiError`], [`err::code_for`] (the one kind → status code mapping) and the
//!   rich details (ErrorInfo, BadRequest) every error status carries.
//! - [`page`]: page sizes and page tokens of the List calls.
//! - [`wire`]: the Unix socket's `:authority` fix and the RESOURCE_EXHAUSTED status fix.
//! - `identities`, `messages`, `conversations`, `network`, `webhooks`, `groups`, `interactions`,
//!   `communities`: one file per service's handlers.
//! - `seal`: [`SessionSealer`], the [`Sealer`] that encrypts outgoing contents (texts, typing
//!   notices).
//!
//! Store calls are blocking (redb commits fsync), so handlers run them through
//! [`tokio::task::spawn_blocking`] via [`Service::blocking`].

mod attachments;
pub mod auth;
mod communities;
mod conversations;
pub mod err;
mod groups;
mod identities;
mod interactions;
mod messages;
mod network;
pub mod page;
mod seal;
mod webhooks;
pub mod wire;

use std::sync::Arc;

use sessiond_api::v1::attachment_service_server::AttachmentServiceServer;
use sessiond_api::v1::community_service_server::CommunityServiceServer;
use sessiond_api::v1::conversation_service_server::ConversationServiceServer;
use sessiond_api::v1::group_service_server::GroupServiceServer;
use sessiond_api::v1::identity_service_server::IdentityServiceServer;
use sessiond_api::v1::interaction_service_server::InteractionServiceServer;
use sessiond_api::v1::message_service_server::MessageServiceServer;
use sessiond_api::v1::network_service_server::NetworkServiceServer;
use sessiond_api::v1::webhook_service_server::WebhookServiceServer;
use tokio::sync::{watch, Notify};
use tonic::service::interceptor::InterceptedService;

pub use err::ApiError;
pub use identities::log_epoch;
pub use messages::to_api as event_to_api;
pub use messages::{Sealer, MAX_TEXT_UTF16, NAMESPACE_DEFAULT};
pub use network::{NetworkSource, NetworkUpdates};
pub use seal::{sync_copy, SessionSealer};

use crate::config::Config;
use crate::engine::configsync::SyncHub;
use crate::store::Store;

/// What every handler shares. Immutable apart from the store's own state.
#[derive(Debug)]
pub struct State {
    /// The store.
    pub store: Store,
    /// SHA-256 of the admin token.
    pub admin_token_hash: [u8; 32],
    /// The message TTL for queued messages, ms.
    pub message_ttl_ms: u64,
    /// `outbox.max_queued`: unsent messages per identity before Send refuses more.
    pub outbox_limit: u64,
    /// Seals outgoing texts ([`SessionSealer`] in the daemon).
    pub sealer: Arc<dyn Sealer>,
    /// The network client's status, once the daemon has one.
    pub network: Option<Arc<dyn NetworkSource>>,
    /// Turns true when the daemon shuts down; open streams end.
    pub shutdown: watch::Receiver<bool>,
    /// Notified when Send queues a message: wakes the sender task.
    pub outbox_wake: Arc<Notify>,
    /// Notified when an identity is added or removed: the pollers follow.
    pub identities_changed: Arc<Notify>,
    /// The webhooks' settings, stats and change signal.
    pub webhooks: crate::webhooks::Hub,
    /// Config sync: changes to push to the account's other devices, and the sync status.
    pub sync: Arc<SyncHub>,
    /// Attachments (uploads, downloads), once the daemon has a network client.
    pub files: Option<crate::files::Files>,
    /// The engine's community rooms, once the daemon has a network client.
    pub communities: Option<Arc<crate::engine::community::Communities>>,
    /// Sends that seal at once: one per core. Sealing is CPU work; with a burst of Sends all
    /// sealing at once, the thread running the shared commit (`store::commit`) got a sliver
    /// of the CPU and every Send waited for it. Held only while sealing, not while the Send
    /// waits for its commit, so the commits still take the whole burst.
    pub seal_gate: Arc<tokio::sync::Semaphore>,
}

impl State {
    /// State for a daemon with this store, admin token and config.
    pub fn new(
        store: Store,
        admin_token: &str,
        config: &Config,
        shutdown: watch::Receiver<bool>,
    ) -> State {
        State {
            store,
            admin_token_hash: auth::token_hash(admin_token),
            message_ttl_ms: config.outbox.message_ttl_secs.saturating_mul(1000),
            outbox_limit: config.outbox.max_queued,
            sealer: Arc::new(SessionSealer),
            network: None,
            shutdown,
            outbox_wake: Arc::new(Notify::new()),
            identities_changed: Arc::new(Notify::new()),
            webhooks: crate::webhooks::Hub::new(config.webhooks.clone(), Default::default()),
            sync: Arc::new(SyncHub::default()),
            files: None,
            communities: None,
            seal_gate: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }
}

/// The one service struct: implements every `sessiond.v1` service over shared state.
#[derive(Debug, Clone)]
pub struct Service {
    state: Arc<State>,
}

/// A `sessiond.v1` server wrapped in the auth interceptor.
pub type Authed<S> = InterceptedService<S, auth::AuthInterceptor>;

impl Service {
    /// A service over `state`.
    pub fn new(state: State) -> Service {
        Service {
            state: Arc::new(state),
        }
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    fn interceptor(&self) -> auth::AuthInterceptor {
        auth::AuthInterceptor {
            state: Arc::clone(&self.state),
        }
    }

    /// The IdentityService behind auth.
    pub fn identities(&self) -> Authed<IdentityServiceServer<Service>> {
        let server = IdentityServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The MessageService behind auth.
    pub fn messages(&self) -> Authed<MessageServiceServer<Service>> {
        let server = MessageServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The ConversationService behind auth.
    pub fn conversations(&self) -> Authed<ConversationServiceServer<Service>> {
        let server = ConversationServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The NetworkService behind auth.
    pub fn network(&self) -> Authed<NetworkServiceServer<Service>> {
        let server = NetworkServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The WebhookService behind auth.
    pub fn webhooks(&self) -> Authed<WebhookServiceServer<Service>> {
        let server = WebhookServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The CommunityService behind auth.
    pub fn community(&self) -> Authed<CommunityServiceServer<Service>> {
        let server = CommunityServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The GroupService behind auth.
    pub fn groups(&self) -> Authed<GroupServiceServer<Service>> {
        let server = GroupServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The InteractionService behind auth.
    pub fn interactions(&self) -> Authed<InteractionServiceServer<Service>> {
        let server = InteractionServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// The AttachmentService behind auth. Upload chunks are capped by the same request limit.
    pub fn attachments(&self) -> Authed<AttachmentServiceServer<Service>> {
        let server = AttachmentServiceServer::new(self.clone())
            .max_decoding_message_size(wire::MAX_REQUEST_BYTES);
        InterceptedService::new(server, self.interceptor())
    }

    /// Runs a blocking store operation off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&State) -> Result<T, ApiError> + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(|e| ApiError::Internal(format!("a store task failed: {e}")))?
    }
}

/// The router of one listener: the services behind [`wire::StatusFixLayer`].
pub type Router = tonic::transport::server::Router<
    tower::layer::util::Stack<wire::StatusFixLayer, tower::layer::util::Identity>,
>;

/// Builds the full router (the four services, health, reflection) for one listener.
pub async fn router(service: &Service) -> Result<Router, ApiError> {
    router_on(service, tonic::transport::Server::builder()).await
}

/// [`router`] on a server with its own settings (the in-process channel's).
pub async fn router_on(
    service: &Service,
    server: tonic::transport::Server,
) -> Result<Router, ApiError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sessiond_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let reflection_v1 = reflection
        .build_v1()
        .map_err(|e| ApiError::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sessiond_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ApiError::Internal(format!("reflection: {e}")))?;
    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<IdentityServiceServer<Service>>()
        .await;
    reporter
        .set_serving::<MessageServiceServer<Service>>()
        .await;
    reporter
        .set_serving::<ConversationServiceServer<Service>>()
        .await;
    reporter
        .set_serving::<NetworkServiceServer<Service>>()
        .await;
    reporter
        .set_serving::<WebhookServiceServer<Service>>()
        .await;
    reporter
        .set_serving::<CommunityServiceServer<Service>>()
        .await;
    reporter.set_serving::<GroupServiceServer<Service>>().await;
    reporter
        .set_serving::<InteractionServiceServer<Service>>()
        .await;
    reporter
        .set_serving::<AttachmentServiceServer<Service>>()
        .await;
    Ok(server
        .layer(wire::StatusFixLayer)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service.identities())
        .add_service(service.messages())
        .add_service(service.conversations())
        .add_service(service.network())
        .add_service(service.webhooks())
        .add_service(service.groups())
        .add_service(service.interactions())
        .add_service(service.attachments())
        .add_service(service.community()))
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
