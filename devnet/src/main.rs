//! The `session-devnet` binary: start a devnet, write `devnet.json`, run until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use session_devnet::{CommunityConfig, Devnet, DevnetConfig, RoomSpec};

const USAGE: &str = "\
usage: session-devnet [--nodes N] [--swarm-size K] [--base-port P] [--out FILE] [--data-dir DIR]
                      [--community NAME…] [--community-port P]
                      [--file-server] [--file-server-port P]

  --nodes N        number of snodes (default 12)
  --swarm-size K   nodes per swarm (default 4)
  --base-port P    node i listens on 127.0.0.1:P+i (default: ephemeral ports)
  --out FILE       write the seed URLs and node list as JSON (e.g. devnet.json)
  --data-dir DIR   keep node keys and messages in DIR across restarts (default: memory)
  --community NAME start a community server with room NAME (repeat, or NAME,NAME…);
                   a room named with a trailing '!' is read-only (e.g. news!)
  --community-port P  the community server's port on 127.0.0.1 (default: ephemeral)
  --file-server    also run a file server (uploads and downloads through onion requests)
  --file-server-port P
                   its port on 127.0.0.1 (default: ephemeral; implies --file-server)";

#[derive(Debug)]
struct Args {
    config: DevnetConfig,
    out: Option<PathBuf>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut config = DevnetConfig::default();
    let mut out = None;
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--nodes" => config.nodes = num(value()?)? as usize,
            "--swarm-size" => config.swarm_size = num(value()?)? as usize,
            "--base-port" => {
                let p = num(value()?)?;
                config.base_port =
                    Some(u16::try_from(p).map_err(|_| format!("--base-port: {p} is not a port"))?);
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--data-dir" => config.data_dir = Some(PathBuf::from(value()?)),
            "--community" => {
                let names = value()?;
                let c = config
                    .community
                    .get_or_insert_with(CommunityConfig::default);
                for name in names.split(',').filter(|n| !n.is_empty()) {
                    let (token, read_only) = match name.strip_suffix('!') {
                        Some(t) => (t, true),
                        None => (name, false),
                    };
                    session_proto::community::url::check_room_token(token)
                        .map_err(|e| format!("--community {name}: {e}"))?;
                    let spec = RoomSpec::new(token, token);
                    c.rooms
                        .push(if read_only { spec.read_only() } else { spec });
                }
            }
            "--community-port" => {
                let p = num(value()?)?;
                let port =
                    u16::try_from(p).map_err(|_| format!("--community-port: {p} is not a port"))?;
                config
                    .community
                    .get_or_insert_with(CommunityConfig::default)
                    .port = Some(port);
            }
            "--file-server" => {
                config.file_server.get_or_insert_with(Default::default);
            }
            "--file-server-port" => {
                let p = num(value()?)?;
                let port = u16::try_from(p)
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("--file-server-port: {p} is not a port"))?;
                config.file_server.get_or_insert_with(Default::default).port = Some(port);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args { config, out }))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("session-devnet: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let devnet = match Devnet::start(args.config).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("session-devnet: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(out) = &args.out {
        if let Err(e) = devnet.write_manifest(out) {
            eprintln!("session-devnet: {e}");
            devnet.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    println!(
        "devnet ready: {} nodes in {} swarms; seed {}{}{}; Ctrl-C stops",
        devnet.nodes().len(),
        devnet.topology().swarm_ids().len(),
        devnet.seeds()[0],
        devnet
            .file_server()
            .map(|f| format!(
                "; file server {} (ed25519 {})",
                f.url(),
                hex::encode(f.ed25519())
            ))
            .unwrap_or_default(),
        args.out
            .as_ref()
            .map(|p| format!("; node list in {}", p.display()))
            .unwrap_or_default(),
    );
    if let Some(c) = devnet.community() {
        for room in c.rooms() {
            println!("community room: {}", c.room_url(&room));
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("session-devnet: cannot wait for Ctrl-C: {e}");
    }
    devnet.shutdown().await;
    println!("devnet stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_flags_and_rejects_junk() {
        let a = args("--nodes 9 --swarm-size 3 --base-port 30000 --out d.json")
            .expect("valid")
            .expect("not help");
        assert_eq!(a.config.nodes, 9);
        assert_eq!(a.config.swarm_size, 3);
        assert_eq!(a.config.base_port, Some(30000));
        assert_eq!(a.out, Some(PathBuf::from("d.json")));
        assert!(args("--nodes").is_err());
        assert!(args("--nodes x").is_err());
        assert!(args("--base-port 70000").is_err());
        assert!(args("--bogus").is_err());
        assert!(args("--help").expect("ok").is_none());
        let a = args("--community lobby,news! --community dev --community-port 30100")
            .expect("valid")
            .expect("not help");
        let c = a.config.community.expect("community asked for");
        let rooms: Vec<(&str, bool)> = c
            .rooms
            .iter()
            .map(|r| (r.token.as_str(), r.default_write))
            .collect();
        assert_eq!(rooms, [("lobby", true), ("news", false), ("dev", true)]);
        assert_eq!(c.port, Some(30100));
        assert!(args("--community a/b").is_err());
        assert!(args("--community").is_err());
        assert!(args("--community-port 70000").is_err());
        assert!(a.config.file_server.is_none());
        let f = args("--file-server").expect("valid").expect("not help");
        assert_eq!(f.config.file_server.expect("on").port, None);
        let f = args("--file-server-port 9999")
            .expect("valid")
            .expect("not help");
        assert_eq!(f.config.file_server.expect("on").port, Some(9999));
        assert!(args("--file-server-port 0").is_err());
        assert!(args("--file-server-port 65536").is_err());
    }
}
