//! RealDisk and RealNet keep the Env contract on real files and real sockets, and the
//! engine's shard service runs on them unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use engine::env::{Disk, DiskError, Env, Net, NetError};
use engine::erasure::CodecId;
use engine::shard_store::rpc::{self as shard_rpc, CallError, RemoteError};
use engine::shard_store::{RecoveryCheck, ShardHeader, ShardId, ShardStore};
use runtime_real::{NetLimits, RealDisk, RealEnv, RealNet};

#[tokio::test]
async fn disk_contract_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let disk = RealDisk::open(dir.path()).unwrap();
    disk.write_at("a/b/f", 3, b"xyz").await.unwrap();
    assert_eq!(disk.len("a/b/f").await.unwrap(), 6);
    assert_eq!(disk.read_at("a/b/f", 0, 6).await.unwrap(), b"\0\0\0xyz");
    assert!(matches!(
        disk.read_at("a/b/f", 4, 3).await,
        Err(DiskError::ShortRead { len: 6, .. })
    ));
    disk.sync("a/b/f").await.unwrap();
    disk.rename("a/b/f", "a/b/g").await.unwrap();
    disk.sync_dir("a/b").await.unwrap();
    assert_eq!(disk.list("a/b").await.unwrap(), vec!["g".to_string()]);
    assert_eq!(disk.list("nowhere").await.unwrap(), Vec::<String>::new());
    disk.remove("a/b/g").await.unwrap();
    assert!(matches!(
        disk.len("a/b/g").await,
        Err(DiskError::NotFound { .. })
    ));
    assert!(matches!(
        disk.remove("a/b/g").await,
        Err(DiskError::NotFound { .. })
    ));
    for bad in ["../escape", "/etc/passwd", "a//b", "a/./b", ""] {
        assert!(
            matches!(
                disk.write_at(bad, 0, b"x").await,
                Err(DiskError::InvalidPath { .. })
            ),
            "{bad:?} accepted"
        );
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn a_sealed_write_lands_under_its_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let disk = RealDisk::open(dir.path()).unwrap();
    disk.write_at("d/f.tmp", 0, b"head").await.unwrap();
    disk.write_sealed("d/f.tmp", 4, b"tail".to_vec(), "d/f", "d")
        .await
        .unwrap();
    assert_eq!(disk.list("d").await.unwrap(), vec!["f".to_string()]);
    assert_eq!(disk.read_at("d/f", 0, 8).await.unwrap(), b"headtail");
    // A file never written before is created; a bad final name is refused first.
    disk.write_sealed("d/g.tmp", 0, b"g".to_vec(), "d/g", "d")
        .await
        .unwrap();
    assert_eq!(disk.read_at("d/g", 0, 1).await.unwrap(), b"g");
    assert!(matches!(
        disk.write_sealed("d/h.tmp", 0, b"h".to_vec(), "../h", "d")
            .await,
        Err(DiskError::InvalidPath { .. })
    ));
    assert_eq!(
        disk.list("d").await.unwrap(),
        vec!["f".to_string(), "g".to_string()]
    );
}

#[tokio::test]
async fn a_planned_read_reads_the_head_then_what_the_plan_names() {
    let dir = tempfile::tempdir().unwrap();
    let disk = RealDisk::open(dir.path()).unwrap();
    disk.write_at("f", 0, b"\x03abcdefghij").await.unwrap();
    // The head's first byte says how far in the part starts.
    let read = disk
        .read_planned("f", 4, |len, head| {
            assert_eq!((len, head), (11, &b"\x03abc"[..]));
            vec![(u64::from(head[0]), 2), (len - 1, 1), (5, 0)]
        })
        .await
        .unwrap();
    assert_eq!(read.len, 11);
    assert_eq!(read.head, b"\x03abc");
    assert_eq!(read.parts, vec![b"cd".to_vec(), b"j".to_vec(), Vec::new()]);
    // A head longer than the file is the whole file; a part past the end is a short read.
    let short = disk
        .read_planned("f", 64, |len, head| {
            assert_eq!(head.len() as u64, len);
            vec![(10, 2)]
        })
        .await;
    assert!(matches!(
        short,
        Err(DiskError::ShortRead {
            offset: 10,
            wanted: 2,
            len: 11,
            ..
        })
    ));
    assert!(matches!(
        disk.read_planned("missing", 4, |_, _| Vec::new()).await,
        Err(DiskError::NotFound { .. })
    ));
}

async fn node(
    id: u64,
    peers: &BTreeMap<u64, SocketAddr>,
    listener: SocketAddr,
    root: &std::path::Path,
) -> RealEnv {
    let net = RealNet::bind(id, listener, peers.clone(), NetLimits::default())
        .await
        .unwrap();
    RealEnv::new(id, RealDisk::open(root).unwrap(), net)
}

/// Reserves a free loopback port by binding to port 0 and releasing it.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn header(object: u128, len: u64) -> ShardHeader {
    ShardHeader {
        id: ShardId {
            object,
            version: 1,
            part: 0,
            index: 0,
        },
        codec: CodecId::ReedSolomonGf8,
        k: 1,
        m: 0,
        block_size_bytes: 4096,
        chunk_size_bytes: 1 << 20,
        object_len_bytes: len,
        shard_len_bytes: len,
    }
}

#[tokio::test]
async fn shards_travel_between_real_nodes() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let addrs: BTreeMap<u64, SocketAddr> =
        [(1, free_port()), (2, free_port()), (3, free_port())].into();
    let a = node(1, &addrs, addrs[&1], dirs[0].path()).await;
    let b = node(2, &addrs, addrs[&2], dirs[1].path()).await;
    tokio::spawn(engine::node::run_holder(b.clone(), "shards"));

    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let t = Duration::from_secs(10);
    let sealed = shard_rpc::store(
        &a,
        2,
        header(7, data.len() as u64),
        Bytes::from(data.clone()),
        65_536,
        t,
    )
    .await
    .unwrap();
    assert_eq!(sealed.len_bytes, data.len() as u64);
    let got = shard_rpc::read(&a, 2, sealed.id, 70_000, 5000, t)
        .await
        .unwrap();
    assert_eq!(got, &data[70_000..75_000]);
    assert_eq!(
        shard_rpc::verify(&a, 2, sealed.id, t).await.unwrap(),
        sealed.sha256
    );

    // The shard is a real, sealed file on b's disk.
    let local = ShardStore::new(RealDisk::open(dirs[1].path()).unwrap(), "shards");
    assert_eq!(local.list().await.unwrap(), vec![sealed.id]);
    assert!(
        dirs[1]
            .path()
            .join("shards")
            .join(sealed.id.file_name())
            .exists()
    );

    // Rot on the real file is reported, never served.
    let path = dirs[1].path().join("shards").join(sealed.id.file_name());
    let mut raw = std::fs::read(&path).unwrap();
    raw[80 + 71_000] ^= 0x40;
    std::fs::write(&path, raw).unwrap();
    let err = shard_rpc::read(&a, 2, sealed.id, 70_000, 5000, t)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Remote(RemoteError::Corrupt(_))),
        "{err:?}"
    );
    assert!(
        shard_rpc::read(&a, 2, sealed.id, 0, 4096, t).await.is_ok(),
        "untouched blocks still serve"
    );

    // A shorter body than promised is refused and leaves nothing behind.
    let short = shard_rpc::store(&a, 2, header(8, 1000), Bytes::from(vec![1u8; 999]), 100, t).await;
    assert!(
        matches!(short, Err(CallError::Remote(RemoteError::BadRequest(_)))),
        "{short:?}"
    );
    assert_eq!(local.list().await.unwrap(), vec![sealed.id]);
    let report = local.recover(RecoveryCheck::Structure).await.unwrap();
    assert!(
        report.removed_temporaries.is_empty(),
        "the refused store cleaned up after itself"
    );

    // Node 3 has an address but no process: unreachable, promptly.
    assert_eq!(
        a.net().call(3, Bytes::new(), t).await,
        Err(NetError::Unreachable { to: 3 })
    );
    // Node 4 is not in the peer list at all.
    assert_eq!(
        a.net().call(4, Bytes::new(), t).await,
        Err(NetError::Unreachable { to: 4 })
    );
}

#[tokio::test]
async fn a_silent_peer_times_out_and_garbage_is_refused() {
    let addrs: BTreeMap<u64, SocketAddr> = [(1, free_port()), (2, free_port())].into();
    let dir = tempfile::tempdir().unwrap();
    let a = node(1, &addrs, addrs[&1], dir.path()).await;
    // Node 2 accepts connections but never answers.
    let silent = tokio::net::TcpListener::bind(addrs[&2]).await.unwrap();
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let started = std::time::Instant::now();
    let r = a
        .net()
        .call(2, Bytes::from_static(b"hi"), Duration::from_millis(300))
        .await;
    assert_eq!(r, Err(NetError::Timeout { to: 2 }));
    assert!(started.elapsed() >= Duration::from_millis(300));
    keep.abort();

    // A client speaking nonsense, or announcing a huge message, is cut off, and the node
    // keeps serving.
    use tokio::io::AsyncWriteExt;
    let mut junk = tokio::net::TcpStream::connect(addrs[&1]).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut huge = tokio::net::TcpStream::connect(addrs[&1]).await.unwrap();
    let mut opening = b"HMR1\0".to_vec();
    opening.extend_from_slice(&9u64.to_le_bytes());
    opening.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.write_all(&opening).await.unwrap();
    let server = a.clone();
    tokio::spawn(async move {
        while let Some(inc) = server.net().accept().await {
            let _ = inc.reply.send(inc.request);
        }
    });
    let echo = a
        .net()
        .call(1, Bytes::from_static(b"ping"), Duration::from_secs(5))
        .await;
    assert_eq!(echo.unwrap(), &b"ping"[..]);
}
