//! The NetworkService: status, events and path rebuilds from the network client, through the
//! [`NetworkSource`] trait the client implements; UNAVAILABLE while the daemon has none. The
//! same trait lets other services store a message once (SendTyping).

use std::fmt::Debug;
use std::pin::Pin;

use session_proto::account_id::AccountId;
use sessiond_api::v1::network_service_server::NetworkService;
use sessiond_api::v1::{
    GetNetworkStatusRequest, GetNetworkStatusResponse, NetworkEvent, NetworkStatus,
    RebuildPathsRequest, RebuildPathsResponse, WatchNetworkRequest, WatchNetworkResponse,
};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::{ApiError, Service};

/// A stream of network events, from a `broadcast` channel the client feeds.
pub type NetworkUpdates = broadcast::Receiver<NetworkEvent>;

/// What the network client offers the Network service. The daemon's wiring implements it for
/// the client; until then the service answers UNAVAILABLE.
#[tonic::async_trait]
pub trait NetworkSource: Send + Sync + Debug + 'static {
    /// A snapshot of pool and paths.
    fn status(&self) -> NetworkStatus;
    /// Events from now on.
    fn subscribe(&self) -> NetworkUpdates;
    /// Drops every path and starts building new ones; returns how many were dropped.
    fn rebuild_paths(&self) -> u32;
    /// Stores `data` in `recipient`'s swarm once, without the outbox and without retries
    /// (best-effort messages such as typing notices); the message hash. A network failure is
    /// [`ApiError::Unavailable`].
    async fn store_once(
        &self,
        recipient: &AccountId,
        namespace: i16,
        data: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<String, ApiError>;
    /// The network client itself, for operations that need more than one store (groups).
    /// `None` where there is none.
    fn client(&self) -> Option<session_net::NetClient> {
        None
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable(
        "the network client is not running in this daemon yet; messages stay queued in the \
         outbox until it is"
            .to_owned(),
    )
}

type NetworkEventStream = Pin<Box<dyn Stream<Item = Result<WatchNetworkResponse, Status>> + Send>>;

// tonic's stream item type is `Result<_, Status>`; its size is not ours to choose.
#[allow(clippy::result_large_err)]
#[tonic::async_trait]
impl NetworkService for Service {
    async fn get_network_status(
        &self,
        req: Request<GetNetworkStatusRequest>,
    ) -> Result<Response<GetNetworkStatusResponse>, Status> {
        caller(&req)?;
        let net = self.state().network.as_ref().ok_or_else(unavailable)?;
        Ok(Response::new(GetNetworkStatusResponse {
            status: Some(net.status()),
        }))
    }

    type WatchNetworkStream = NetworkEventStream;

    async fn watch_network(
        &self,
        req: Request<WatchNetworkRequest>,
    ) -> Result<Response<Self::WatchNetworkStream>, Status> {
        caller(&req)?;
        let net = self.state().network.as_ref().ok_or_else(unavailable)?;
        let stream = BroadcastStream::new(net.subscribe()).map(|item| match item {
            Ok(event) => Ok(WatchNetworkResponse { event: Some(event) }),
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(super::err::status(
                tonic::Code::DataLoss,
                format!(
                    "this watcher fell {n} events behind and they were dropped; call \
                     GetNetworkStatus and WatchNetwork again"
                ),
                "WATCHER_LAGGED",
                None,
                std::collections::HashMap::new(),
            )),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn rebuild_paths(
        &self,
        req: Request<RebuildPathsRequest>,
    ) -> Result<Response<RebuildPathsResponse>, Status> {
        caller(&req)?.require_admin("rebuilding paths")?;
        let net = self.state().network.as_ref().ok_or_else(unavailable)?;
        Ok(Response::new(RebuildPathsResponse {
            dropped_paths: net.rebuild_paths(),
        }))
    }
}
