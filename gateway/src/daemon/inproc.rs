//! In-process gRPC channels: the adapters call the daemon's own services through the whole
//! tonic stack (the token interceptor included) over in-memory pipes, so they need no socket to
//! find and keep working with both gRPC listeners turned off.
//!
//! Each IRC connection and each Matrix HTTP connection gets its own HTTP/2 connection, as a
//! program connecting over TCP would. h2 keeps the tables that hold a connection's streams and
//! queued frames at their largest size until the connection closes: when one connection carried
//! every adapter call, a storm of 2,000 logins grew them by some 8 MiB that stayed for good
//! (the soak bench's storm, measured with heaptrack). Per client, they go with the client.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::rpc::Router;
use hyper_util::rt::TokioIo;
use sessiond_api::client::Connector;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Endpoint, Uri};

/// Bytes buffered in each direction of a pipe (one HTTP/2 connection).
const PIPE_BYTES: usize = 256 * 1024;
/// Streams the adapters may cancel before the server has taken them up, at once (h2's default is
/// 20; see [`server`]).
const MAX_PENDING_ACCEPT_RESETS: usize = 1 << 16;

/// The HTTP/2 connection window of the in-process channel, both ways (hyper's defaults: 1 MiB for
/// a server, 5 MiB for a client; see [`server`]).
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// The server settings of the in-process channel.
///
/// h2 (0.4.20) guards a connection against floods of small DATA frames: frames under 256 bytes
/// that the application has not read yet may add up to half the connection window (512 KiB with
/// hyper's 1 MiB), past which the peer gets GOAWAY. Every gRPC request carries such a frame (the
/// message), and here one connection carries every IRC and Matrix call: in a storm of 2,000 IRC
/// logins or Matrix requests on a loaded machine the server fell behind reading them, the budget
/// ran out ("too many small DATA frames"), and every call in flight failed with a transport error
/// (the soak bench lost up to 1,000 of 2,000 IRC logins and 2,000 of 2,000 Matrix requests in a
/// round). A 32 MiB window makes the budget 16 MiB: some 65,000 unread requests, far more than
/// the adapters' connection caps let in at once. The window bounds only what the adapters send
/// before the server reads it.
///
/// h2 guards a server against "rapid reset" floods: a peer that cancels more than 20 streams the
/// server has not yet taken up gets GOAWAY and loses its connection. Here the peer is the daemon's
/// own adapters, whose every IRC and Matrix connection rides this one HTTP/2 connection, and a
/// connection that ends cancels its calls (an IRC QUIT cancels the event subscription it just
/// opened). In a storm of short connections on a loaded machine the server falls behind, more than
/// 20 such streams pile up, and the GOAWAY failed every IRC login and Matrix request in flight
/// (the soak bench lost up to 1,750 of 2,000 IRC logins and 1,999 of 2,000 Matrix requests in a
/// round). The adapters' connection caps and flood control bound what a client can make them
/// cancel, so the guard is raised for this connection only; the TCP and Unix listeners keep it.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESETS))
        .initial_connection_window_size(CONNECTION_WINDOW)
}

/// Serves `router` on in-memory pipes until `shutdown`; returns a connector whose every channel
/// is a connection of its own over such a pipe (made on its first call, re-made if it breaks),
/// and the server task.
pub fn connector(
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Connector, JoinHandle<Result<(), tonic::transport::Error>>) {
    counted_connector(router, shutdown, Arc::default())
}

/// [`connector`], counting the pipes made in `made`.
fn counted_connector(
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    made: Arc<AtomicUsize>,
) -> (Connector, JoinHandle<Result<(), tonic::transport::Error>>) {
    let (tx, rx) = mpsc::channel::<DuplexStream>(16);
    let incoming = ReceiverStream::new(rx).map(Ok::<_, io::Error>);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown));
    let connector = tower::service_fn(move |_: Uri| {
        let (tx, made) = (tx.clone(), Arc::clone(&made));
        async move {
            made.fetch_add(1, Ordering::Relaxed);
            let (client, server) = tokio::io::duplex(PIPE_BYTES);
            tx.send(server).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the daemon's in-process gRPC server has stopped",
                )
            })?;
            Ok::<_, io::Error>(TokioIo::new(client))
        }
    });
    let channels = Connector::per_client(move || {
        // The same window for the replies (the client side has the same small-frame budget).
        Endpoint::from_static("http://sessiond.in-process")
            .initial_connection_window_size(CONNECTION_WINDOW)
            .connect_with_connector_lazy(connector.clone())
    });
    (channels, server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    #[tokio::test]
    async fn calls_reach_the_router_and_stop_with_it() {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let router = tonic::transport::Server::builder()
            .layer(crate::rpc::wire::StatusFixLayer)
            .add_service(health);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let made = Arc::new(AtomicUsize::new(0));
        let (channels, server) = counted_connector(
            router,
            async {
                let _ = stop_rx.await;
            },
            Arc::clone(&made),
        );
        let mut client = HealthClient::new(channels.channel());
        // Several calls at once: one HTTP/2 connection over one pipe carries them all.
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let mut client = client.clone();
            calls.spawn(async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
            });
        }
        while let Some(answer) = calls.join_next().await {
            let status = answer
                .expect("join")
                .expect("health check")
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32);
        }
        assert_eq!(
            made.load(Ordering::Relaxed),
            1,
            "one client, one connection"
        );
        // Another client gets a connection of its own, made on its first call.
        let mut other = HealthClient::new(channels.channel());
        assert_eq!(made.load(Ordering::Relaxed), 1, "connected on first call");
        let status = other
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("the second client's health check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
        assert_eq!(made.load(Ordering::Relaxed), 2, "a connection per client");
        stop_tx.send(()).expect("server still running");
        server.await.expect("join").expect("clean stop");
        let after = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        assert!(after.is_err(), "a stopped server answers nothing");
    }
}
