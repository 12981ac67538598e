//! Test support: a real `sessiond` process on a temp data dir, and gRPC clients for it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use session_devnet::{Devnet, DevnetConfig};
use sessiond_api::v1::attachment_service_client::AttachmentServiceClient;
use sessiond_api::v1::community_service_client::CommunityServiceClient;
use sessiond_api::v1::conversation_service_client::ConversationServiceClient;
use sessiond_api::v1::group_service_client::GroupServiceClient;
use sessiond_api::v1::identity_service_client::IdentityServiceClient;
use sessiond_api::v1::interaction_service_client::InteractionServiceClient;
use sessiond_api::v1::message_service_client::MessageServiceClient;
use sessiond_api::v1::network_service_client::NetworkServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// The `sessiond` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

/// A fresh temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub data_dir: PathBuf,
    pub addr: String,
    pub admin_token: String,
    /// The IRC server's address, if it runs.
    pub irc: Option<String>,
    /// The Matrix endpoint's address, if it runs.
    pub matrix: Option<String>,
    /// The HTTP listener's address (health, metrics, status page), if it runs.
    pub http: Option<String>,
}

/// The `sessiond run` command for a data dir, listening on an ephemeral loopback port.
pub fn run_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg("--data-dir")
        .arg(data_dir)
        .env("SESSIOND_GRPC_LISTEN", "127.0.0.1:0")
        .env("SESSIOND_IRC_LISTEN", "127.0.0.1:0")
        .env("SESSIOND_MATRIX_LISTEN", "127.0.0.1:0")
        .env("SESSIOND_METRICS_LISTEN", "127.0.0.1:0")
        .env_remove("SESSIOND_PASSPHRASE_FILE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("SESSIOND_LOG", "warn")
        // No network: these daemons must not reach for the mainnet seeds.
        .env("SESSIOND_OFFLINE", "1")
        .env_remove("SESSIOND_SEEDS")
        .env_remove("SESSIOND_CONFIG")
        .env_remove("SESSIOND_DATA_DIR");
    cmd
}

/// `sessiond run` on a network: `--seeds` (a URL or devnet.json) and a config file, listening on
/// an ephemeral loopback port.
pub fn networked_command(data_dir: &Path, seeds: &Path, config: &Path) -> Command {
    let mut cmd = run_command(data_dir);
    cmd.env_remove("SESSIOND_OFFLINE")
        .arg("--seeds")
        .arg(seeds)
        .arg("--config")
        .arg(config);
    cmd
}

impl Daemon {
    /// Starts `sessiond run` (offline) and waits for its "listening" line.
    pub fn start(data_dir: &Path) -> Daemon {
        Daemon::start_with(data_dir, run_command(data_dir))
    }

    /// Starts `cmd` (a `sessiond run` for `data_dir`) and waits for its "listening" line.
    pub fn start_with(data_dir: &Path, mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sessiond");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
        assert_eq!(v["event"], "listening");
        let addr = v["grpc_tcp"].as_str().expect("tcp address").to_owned();
        let irc = v["irc"].as_str().map(str::to_owned);
        let matrix = v["matrix"].as_str().map(str::to_owned);
        let http = v["metrics"].as_str().map(str::to_owned);
        let admin_token = std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned();
        Daemon {
            child,
            data_dir: data_dir.to_owned(),
            addr,
            admin_token,
            irc,
            matrix,
            http,
        }
    }

    /// A channel to the TCP listener.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sessiond did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds a bearer token (or nothing) to every call.
#[derive(Clone)]
pub struct Token(pub Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub fn bearer(token: &str) -> Token {
    Token(Some(
        format!("Bearer {token}").parse().expect("ascii token"),
    ))
}

pub type Authed = InterceptedService<Channel, Token>;

/// All five clients with one token.
pub struct Clients {
    pub ids: IdentityServiceClient<Authed>,
    pub msgs: MessageServiceClient<Authed>,
    pub convs: ConversationServiceClient<Authed>,
    pub net: NetworkServiceClient<Authed>,
    pub rooms: CommunityServiceClient<Authed>,
    pub groups: GroupServiceClient<Authed>,
    pub inter: InteractionServiceClient<Authed>,
    pub files: AttachmentServiceClient<Authed>,
}

pub fn clients(channel: &Channel, token: Token) -> Clients {
    Clients {
        ids: IdentityServiceClient::with_interceptor(channel.clone(), token.clone()),
        msgs: MessageServiceClient::with_interceptor(channel.clone(), token.clone()),
        convs: ConversationServiceClient::with_interceptor(channel.clone(), token.clone()),
        net: NetworkServiceClient::with_interceptor(channel.clone(), token.clone()),
        rooms: CommunityServiceClient::with_interceptor(channel.clone(), token.clone()),
        groups: GroupServiceClient::with_interceptor(channel.clone(), token.clone()),
        inter: InteractionServiceClient::with_interceptor(channel.clone(), token.clone()),
        files: AttachmentServiceClient::with_interceptor(channel.clone(), token),
    }
}

/// A valid standard Account ID that is nobody's.
pub fn some_account_id(n: u8) -> String {
    format!("05{}", hex::encode([n; 32]))
}

/// Poll and retry settings under which daemons on a devnet converge within a test's patience.
pub const FAST_CONFIG: &str = r#"
[poll]
active_interval_ms = 150
idle_interval_ms = 400
idle_after_secs = 5

[outbox]
max_attempts = 30
backoff_initial_ms = 100
backoff_max_ms = 500
"#;

/// A devnet of 9 nodes (swarms of 3), a temp dir with its `devnet.json` and a config file.
pub struct Net {
    /// The running devnet (stopped on drop).
    pub devnet: Devnet,
    /// Data dirs of the daemons go below it.
    pub dir: TempDir,
    /// The devnet's manifest, for `--seeds`.
    pub manifest: PathBuf,
    /// The daemons' config file, holding `config`.
    pub config: PathBuf,
}

/// Starts a devnet and writes its manifest and `config` (e.g. [`FAST_CONFIG`]) into a temp dir.
pub async fn net(tag: &str, config: &str) -> Net {
    net_with(tag, config, None, None).await
}

/// [`net`] with a file server beside the nodes (in the manifest, so daemons use it).
pub async fn net_with_files(tag: &str, config: &str) -> Net {
    net_with(
        tag,
        config,
        Some(session_devnet::FileServerConfig::default()),
        None,
    )
    .await
}

/// [`net`] with a community server beside the snodes.
pub async fn net_with_community(
    tag: &str,
    config: &str,
    community: Option<session_devnet::community::CommunityConfig>,
) -> Net {
    net_with(tag, config, None, community).await
}

async fn net_with(
    tag: &str,
    config: &str,
    file_server: Option<session_devnet::FileServerConfig>,
    community: Option<session_devnet::community::CommunityConfig>,
) -> Net {
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        // A relay forwards a file of megabytes within the real network's 30 s, not 2 s.
        relay_timeout: Duration::from_secs(if file_server.is_some() { 30 } else { 2 }),
        replication_timeout: Duration::from_secs(2),
        file_server,
        community,
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts");
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let config_path = dir.path().join("sessiond.toml");
    std::fs::write(&config_path, config).expect("config");
    Net {
        devnet,
        dir,
        manifest,
        config: config_path,
    }
}

/// An HTTP answer: status, headers, body.
pub struct HttpReply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// One HTTP/1.1 request over a fresh connection (hyper's client).
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    http_request_bytes(addr, method, path, headers, body.as_bytes().to_vec()).await
}

/// [`http_request`] with a body of bytes.
pub async fn http_request_bytes(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the HTTP listener");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let res = sender.send_request(req).await.expect("send request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    HttpReply {
        status,
        headers,
        body,
    }
}
