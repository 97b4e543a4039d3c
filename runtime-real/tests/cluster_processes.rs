//! Three real `hamster cluster run` processes over loopback mutual TLS: kill -9 the
//! leader during a stream of metadata proposals; a new leader is elected, and after the
//! killed node restarts every acknowledged proposal is on every member. A caller with a
//! certificate from another CA, with none, or with one that names someone else is
//! refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::env::{Net, NodeId};
use engine::meta::{Applied, Command as MetaCommand, CommandV1, ObjectMeta, PutCondition};
use engine::node::{ClientRequest, ClientResponse};
use runtime_real::cluster::{AdminClient, AdminConfig};
use runtime_real::tls::{Authority, Tls};
use runtime_real::{NetLimits, RealNet, Transport};

const HAMSTER: &str = env!("CARGO_BIN_EXE_hamster");
/// Bounds every wait in this test.
const WAIT_MAX: Duration = Duration::from_secs(40);

/// The node processes; killed when the test ends, however it ends.
struct Nodes {
    dir: PathBuf,
    children: BTreeMap<NodeId, Child>,
}

impl Nodes {
    fn start(&mut self, id: NodeId) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{id}.log")))
            .unwrap();
        let child = Command::new(HAMSTER)
            .args(["cluster", "run", "--config"])
            .arg(self.dir.join(format!("node{id}.toml")))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hamster starts");
        self.children.insert(id, child);
    }

    /// kill -9.
    fn kill(&mut self, id: NodeId) {
        let mut child = self.children.remove(&id).expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log(&self, id: NodeId) -> String {
        std::fs::read_to_string(self.dir.join(format!("node{id}.log"))).unwrap_or_default()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn object(i: u64) -> ObjectMeta {
    ObjectMeta::without_data(i, format!("etag-{i}"))
}

fn put(i: u64) -> ClientRequest {
    ClientRequest::Propose(Box::new(MetaCommand::V1(CommandV1::PutObject {
        bucket: "b".into(),
        key: format!("k{i}"),
        meta: object(i),
        condition: PutCondition::Always,
    })))
}

async fn leader(admin: &AdminClient, except: Option<NodeId>) -> (NodeId, u64) {
    let deadline = Instant::now() + WAIT_MAX;
    while Instant::now() < deadline {
        for (_, s) in admin.statuses().await {
            if let Ok(s) = s
                && s.role == "Leader"
                && Some(s.id) != except
            {
                return (s.id, s.term);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader within {WAIT_MAX:?}");
}

/// Proposes `put(i)` through node `via`; Some(true) acked, Some(false) refused, None
/// unknown (timed out or unreachable).
async fn propose(admin: &AdminClient, via: NodeId, i: u64) -> Option<bool> {
    match admin.request(via, &put(i), Duration::from_secs(3)).await {
        Ok(ClientResponse::Applied(Ok(Applied::Version(_)))) => Some(true),
        Ok(ClientResponse::Applied(Ok(other))) => panic!("put {i} answered {other:?}"),
        Ok(ClientResponse::Applied(Err(_))) | Err(_) => None,
        Ok(other) => panic!("unexpected answer {other:?}"),
    }
}

async fn read_local(admin: &AdminClient, node: NodeId, i: u64) -> Option<String> {
    let ask = ClientRequest::ReadLocal {
        bucket: "b".into(),
        key: format!("k{i}"),
    };
    match admin.request(node, &ask, Duration::from_secs(3)).await {
        Ok(ClientResponse::Object(Ok(found))) => found.map(|(_, etag)| etag),
        other => panic!("local read on node {node}: {other:?}"),
    }
}

/// A status call to node 2 through `net`; true when it was answered.
async fn answered(net: &RealNet) -> bool {
    let request = engine::wire::request(engine::wire::Tag::Client, &ClientRequest::Status);
    net.call(2, request, Duration::from_secs(3)).await.is_ok()
}

fn init(dir: &Path) {
    let status = Command::new(HAMSTER)
        .args([
            "cluster",
            "init",
            "--nodes",
            "3",
            "--base-port",
            "0",
            "--out",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_stream_loses_no_acknowledged_proposal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    init(&dir);
    // A second init into the same directory must not replace the cluster's CA.
    let again = Command::new(HAMSTER)
        .args(["cluster", "init", "--nodes", "3", "--out"])
        .arg(&dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!again.success(), "init overwrote an existing cluster");

    let mut nodes = Nodes {
        dir: dir.clone(),
        children: BTreeMap::new(),
    };
    for id in 1..=3 {
        nodes.start(id);
    }
    let admin_config = AdminConfig::load(&dir.join("admin.toml")).unwrap();
    let admin = AdminClient::connect(&admin_config).await.unwrap();
    let (first_leader, first_term) = leader(&admin, None).await;

    let create = ClientRequest::Propose(Box::new(MetaCommand::V1(CommandV1::CreateBucket {
        name: "b".into(),
        owner: "test".into(),
        created_ms: 0,
    })));
    let answer = admin
        .request(first_leader, &create, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer, ClientResponse::Applied(Ok(Applied::Done)));

    // The stream: proposals through every node in turn (followers forward them).
    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    let mut i = 0u64;
    let mut killed = None;
    let mut acked_after_kill = 0;
    let deadline = Instant::now() + WAIT_MAX;
    while acked_after_kill < 100 {
        assert!(
            Instant::now() < deadline,
            "the stream stalled: {} acked, {acked_after_kill} after the kill",
            acked.len()
        );
        i += 1;
        let via = 1 + (i % 3);
        if Some(via) == killed {
            continue;
        }
        match propose(&admin, via, i).await {
            Some(true) => {
                acked.push(i);
                if killed.is_some() {
                    acked_after_kill += 1;
                }
            }
            Some(false) => {}
            None => unknown.push(i),
        }
        if killed.is_none() && acked.len() == 100 {
            nodes.kill(first_leader);
            killed = Some(first_leader);
        }
    }
    let (new_leader, new_term) = leader(&admin, killed).await;
    assert_ne!(new_leader, first_leader);
    assert!(new_term > first_term);

    nodes.start(first_leader);
    // Converge: every member has applied what the leader has committed.
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let statuses = admin.statuses().await;
        let up: Vec<_> = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .collect();
        let commit = up.iter().map(|s| s.commit).max().unwrap_or(0);
        if up.len() == 3 && up.iter().all(|s| s.applied >= commit) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for &i in &acked {
        for node in 1..=3 {
            assert_eq!(
                read_local(&admin, node, i).await,
                Some(format!("etag-{i}")),
                "acknowledged put {i} missing on node {node}"
            );
        }
    }
    // An unknown outcome is all or nothing: the same on every member.
    for &i in &unknown {
        let seen: Vec<_> =
            futures::future::join_all((1..=3).map(|n| read_local(&admin, n, i))).await;
        assert!(
            seen.iter().all(|s| s == &seen[0]),
            "put {i} differs across members: {seen:?}"
        );
    }
    assert!(
        !nodes.log(first_leader).contains("refused"),
        "the restarted node refused its own state"
    );

    // Identity: a certificate from another CA, no certificate, or a certificate naming
    // someone else is refused; the admin certificate is accepted.
    let peers = admin_config.credentials.peers().unwrap();
    let limits = NetLimits::default();
    let own = Arc::new(admin_config.credentials.tls().unwrap());
    let good = RealNet::client(0, peers.clone(), limits, Transport::Tls(own.clone()))
        .await
        .unwrap();
    assert!(
        answered(&good).await,
        "the cluster's own admin certificate was refused"
    );
    // The intruder trusts the cluster's CA (so it accepts the server) but presents a
    // certificate from its own: the refusal is the server's.
    let foreign = Authority::new("someone else's CA")
        .unwrap()
        .issue(0)
        .unwrap();
    let cluster_ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let intruder = Tls::from_pem(
        &cluster_ca,
        foreign.cert_pem.as_bytes(),
        foreign.key_pem.as_bytes(),
    )
    .unwrap();
    let intruder = Arc::new(intruder);
    let foreign_net = RealNet::client(0, peers.clone(), limits, Transport::Tls(intruder))
        .await
        .unwrap();
    assert!(
        !answered(&foreign_net).await,
        "a foreign CA's certificate was accepted"
    );
    let plain = RealNet::client(0, peers.clone(), limits, Transport::Plain)
        .await
        .unwrap();
    assert!(!answered(&plain).await, "a caller without TLS was accepted");
    let impostor = RealNet::client(1, peers, limits, Transport::Tls(own))
        .await
        .unwrap();
    assert!(
        !answered(&impostor).await,
        "the admin certificate passed for node 1"
    );
    let log = nodes.log(2);
    assert!(
        log.contains("refused a connection: TLS handshake failed"),
        "refusal not logged:\n{log}"
    );
    assert!(log.contains("does not name the node it claims to be"));
}
