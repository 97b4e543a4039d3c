//! SimDisk and SimNet keep exactly the promises of the Env contract, and break every
//! promise they are allowed to break.

use std::time::Duration;

use bytes::Bytes;
use engine::env::{Clock, Disk, DiskError, Env, Net, NetError};
use runtime_sim::{Cluster, NetConfig, SimClock, World};

fn run<F: std::future::Future>(seed: u64, f: impl FnOnce() -> F) -> F::Output {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(f())
}

/// Over many seeds: synced data and synced names always survive a crash; unsynced
/// ones are sometimes lost, sometimes kept, sometimes torn.
#[test]
fn crash_keeps_synced_state_and_gambles_with_the_rest() {
    let (mut lost_unsynced, mut kept_unsynced, mut lost_unsynced_name) = (0, 0, 0);
    for seed in 0..64 {
        let (data_kept, name_kept) = run(seed, || async move {
            let world = World::new(seed, NetConfig::default());
            world.add_disk(1, 1 << 20);
            let mut cluster = Cluster::new(world.clone());
            cluster.add_node(1, |_env| std::future::pending::<()>());
            let disk = world.disk(1);
            disk.write_at("d/synced", 0, &[7; 2048]).await.unwrap();
            disk.sync("d/synced").await.unwrap();
            disk.sync_dir("d").await.unwrap();
            disk.write_at("d/synced", 0, &[9; 1024]).await.unwrap();
            disk.write_at("e/fresh", 0, b"hello").await.unwrap();
            disk.sync("e/fresh").await.unwrap();
            cluster.crash(1);
            let files = disk.durable_files();
            let synced = &files["d/synced"];
            assert_eq!(synced.len(), 2048);
            assert!(
                synced[1024..].iter().all(|&b| b == 7),
                "synced bytes survive"
            );
            assert!(
                synced[..1024].iter().all(|&b| b == 7 || b == 9),
                "only written bytes"
            );
            // After a crash the live image is the durable one.
            assert_eq!(disk.live_names(), files.keys().cloned().collect::<Vec<_>>());
            (
                synced[..1024] == [9; 1024][..],
                files.contains_key("e/fresh"),
            )
        });
        if data_kept {
            kept_unsynced += 1
        } else {
            lost_unsynced += 1
        }
        if !name_kept {
            lost_unsynced_name += 1;
        }
    }
    assert!(
        lost_unsynced > 0 && kept_unsynced > 0,
        "{lost_unsynced} {kept_unsynced}"
    );
    assert!(lost_unsynced_name > 0, "a name without sync_dir can vanish");
}

#[test]
fn rename_is_durable_only_after_sync_dir() {
    let mut vanished = 0;
    for seed in 0..32 {
        let survived = run(seed, || async move {
            let world = World::new(seed, NetConfig::default());
            world.add_disk(1, 1 << 20);
            let mut cluster = Cluster::new(world.clone());
            cluster.add_node(1, |_env| std::future::pending::<()>());
            let disk = world.disk(1);
            disk.write_at("s/a.tmp", 0, b"x").await.unwrap();
            disk.sync("s/a.tmp").await.unwrap();
            disk.sync_dir("s").await.unwrap();
            disk.rename("s/a.tmp", "s/a").await.unwrap();
            disk.write_at("s/b.tmp", 0, b"y").await.unwrap();
            disk.sync("s/b.tmp").await.unwrap();
            disk.rename("s/b.tmp", "s/b").await.unwrap();
            disk.sync_dir("s").await.unwrap();
            disk.rename("s/b", "s/c").await.unwrap();
            cluster.crash(1);
            let files = disk.durable_files();
            // The later sync_dir made a's rename durable; b's last rename was never
            // synced, so exactly one of its names survives, and either may.
            assert!(files.contains_key("s/a") && !files.contains_key("s/a.tmp"));
            assert!(files.contains_key("s/b") ^ files.contains_key("s/c"));
            files.contains_key("s/c")
        });
        if !survived {
            vanished += 1;
        }
    }
    assert!(vanished > 0 && vanished < 32, "{vanished}");
}

#[test]
fn eio_nospace_and_rot_are_typed_and_counted() {
    run(5, || async {
        let world = World::new(5, NetConfig::default());
        world.add_disk(1, 100);
        let disk = world.disk(1);
        assert!(matches!(
            disk.write_at("f", 0, &[1; 101]).await,
            Err(DiskError::NoSpace { .. })
        ));
        disk.write_at("f", 0, &[1; 100]).await.unwrap();
        assert!(matches!(
            disk.write_at("g", 0, &[1]).await,
            Err(DiskError::NoSpace { .. })
        ));
        assert!(matches!(
            disk.read_at("f", 90, 11).await,
            Err(DiskError::ShortRead { .. })
        ));
        assert!(matches!(
            disk.read_at("../f", 0, 1).await,
            Err(DiskError::InvalidPath { .. })
        ));
        assert!(disk.flip_bit("f", 8 * 10 + 3));
        assert_eq!(disk.read_at("f", 10, 1).await.unwrap(), vec![1 ^ 8]);
        assert!(disk.zero_sector("f", 50));
        assert_eq!(disk.read_at("f", 0, 100).await.unwrap(), vec![0; 100]);
        disk.set_eio_rate(1.0);
        assert!(matches!(
            disk.read_at("f", 0, 1).await,
            Err(DiskError::Io { .. })
        ));
        let stats = world.stats();
        assert_eq!((stats.eio_returned, stats.nospace_returned), (1, 2));
    });
}

#[test]
fn calls_cross_partitions_only_when_healed_and_crashed_nodes_go_silent() {
    run(9, || async {
        let world = World::new(9, NetConfig::default());
        for n in [1, 2] {
            world.add_disk(n, 1 << 20);
        }
        let mut cluster = Cluster::new(world.clone());
        for n in [1, 2] {
            cluster.add_node(n, |env| async move {
                while let Some(inc) = env.net().accept().await {
                    let mut answer = inc.request.to_vec();
                    answer.push(env.node_id() as u8);
                    let _ = inc.reply.send(Bytes::from(answer));
                }
            });
        }
        let client = world.node_env(100);
        let t = Duration::from_millis(500);
        madsim::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            client
                .net()
                .call(2, Bytes::from_static(b"hi"), t)
                .await
                .unwrap(),
            &b"hi\x02"[..]
        );
        world.cut(100, 2);
        let before = SimClock.now();
        assert_eq!(
            client.net().call(2, Bytes::new(), t).await,
            Err(NetError::Timeout { to: 2 })
        );
        assert!(
            SimClock.now() - before >= t,
            "a lost message waits out the timeout"
        );
        assert!(
            client.net().call(1, Bytes::new(), t).await.is_ok(),
            "one-way cut only"
        );
        world.heal_network();
        assert!(client.net().call(2, Bytes::new(), t).await.is_ok());
        cluster.crash(2);
        assert_eq!(
            client.net().call(2, Bytes::new(), t).await,
            Err(NetError::Timeout { to: 2 })
        );
        cluster.restart(2);
        madsim::time::sleep(Duration::from_millis(1)).await;
        assert!(
            client.net().call(2, Bytes::new(), t).await.is_ok(),
            "restarted node serves"
        );
    });
}

fn put_object(i: u64) -> engine::meta::Command {
    use engine::meta::{Command, CommandV1, ObjectMeta, PutCondition};
    Command::V1(CommandV1::PutObject {
        bucket: "b".into(),
        key: format!("k{}", i % 7),
        meta: ObjectMeta::without_data(i, format!("e{i}")),
        condition: PutCondition::Always,
    })
}

/// How the commits of [`crash_a_store`] reach the disk.
#[derive(Clone, Copy)]
enum LastCommits {
    /// The last commit's syncs persist nothing (a lying fsync).
    LyingSync,
    /// The last `n` commits skip the sync (redb's `Durability::None`).
    NotDurable(u64),
}

/// Makes a bucket and some object commits on a fresh store on node 1's SimDisk, crashes
/// the node, reopens the store and checks that its state is exactly the state at its
/// recovered mark. Returns (commits made, recovered mark).
fn crash_a_store(seed: u64, last: LastCommits) -> (u64, u64) {
    use engine::meta::store::{Item, Mark, MetaStore};
    use engine::meta::{Command, CommandV1, MetaState};

    run(seed, || async move {
        let world = World::new(seed, NetConfig::default());
        world.add_disk(1, 64 << 20);
        let mut cluster = Cluster::new(world.clone());
        cluster.add_node(1, |_env| std::future::pending::<()>());
        let disk = world.disk(1);
        let open = |disk: runtime_sim::SimDisk| async move {
            let backend = disk.storage_backend("raft/state.redb").await.unwrap();
            MetaStore::open(backend).unwrap()
        };
        let store = open(disk.clone()).await;
        let mut models = vec![MetaState::default()];
        let mut model = MetaState::default();
        let commits = 4 + seed % 5;
        for i in 1..=commits {
            let command = if i == 1 {
                Command::V1(CommandV1::CreateBucket {
                    name: "b".into(),
                    owner: "o".into(),
                    created_ms: 0,
                })
            } else {
                put_object(i)
            };
            let durable = match last {
                LastCommits::LyingSync => {
                    disk.set_lying_sync(i == commits);
                    true
                }
                LastCommits::NotDurable(n) => i + n <= commits,
            };
            model.apply(i, &command);
            let mark = Mark {
                index: i,
                term: 1,
                conf: Default::default(),
            };
            let item = Item {
                index: i,
                command: Some(command),
            };
            store.apply(&[item], &mark, durable).unwrap();
            models.push(model.clone());
        }
        cluster.crash(1);
        drop(store); // a dead process's destructors must not reach the disk
        disk.set_lying_sync(false);
        let store = open(disk.clone()).await;
        let mark = store.mark().unwrap().index;
        let state = store.reader().unwrap().export().unwrap();
        assert_eq!(
            state, models[mark as usize],
            "seed {seed}: state is not the state at its mark {mark}"
        );
        (commits, mark)
    })
}

/// redb on a SimDisk file: a commit whose sync never reached the disk (a lying fsync,
/// then a crash that drops, applies or tears each of its writes) leaves the store at the
/// last truly durable commit or, if every piece happened to land, the new one; never a
/// mix, never a store that will not open.
#[test]
fn redb_on_simdisk_recovers_to_a_whole_commit_after_a_torn_one() {
    let mut rolled_back = 0;
    for seed in 0..24u64 {
        let (commits, mark) = crash_a_store(seed, LastCommits::LyingSync);
        assert!(
            mark == commits - 1 || mark == commits,
            "seed {seed}: recovered to {mark} of {commits}"
        );
        rolled_back += u32::from(mark < commits);
    }
    // Landing every piece by chance is allowed, not required.
    assert!(rolled_back > 0, "no seed lost the unsynced commit");
}

/// Commits without a sync (how the Raft driver applies between compactions) are rolled
/// back by a crash to the last durable commit, exactly: the log replays the rest.
#[test]
fn redb_commits_without_sync_roll_back_to_the_last_durable_one() {
    for seed in 0..24u64 {
        let not_durable = 1 + seed % 3;
        let (commits, mark) = crash_a_store(seed, LastCommits::NotDurable(not_durable));
        assert_eq!(mark, commits - not_durable, "seed {seed}");
    }
}

/// Node 1 of a new world (a 64 MiB disk, nothing running) and the config of a Raft group
/// with it as the only voter.
fn one_voter(
    seed: u64,
) -> (
    World,
    Cluster,
    runtime_sim::SimEnv,
    engine::raft::node::RaftConfig,
) {
    let world = World::new(seed, NetConfig::default());
    world.add_disk(1, 64 << 20);
    let mut cluster = Cluster::new(world.clone());
    cluster.add_node(1, |_env| std::future::pending::<()>());
    let env = world.node_env(1);
    let config = engine::raft::node::RaftConfig::new(1, vec![1]);
    (world, cluster, env, config)
}

/// A one-voter group acknowledges some commands; then a bit rots in the last record of
/// its newest log segment, where it looks like a write torn by a crash. The restart must
/// refuse the log (it lost an entry it had made durable and acknowledged), not quietly
/// truncate it. A tail that really was torn (never acknowledged) is still truncated.
#[test]
fn rot_in_the_last_acknowledged_record_is_refused_not_truncated() {
    use engine::meta::{Applied, Command, CommandV1};
    use engine::raft::start::StartError;
    use engine::raft::start::start;

    run(7, || async {
        let (world, mut cluster, env, config) = one_voter(7);
        let (raft, driver) = start(env.clone(), config.clone()).await.unwrap();
        madsim::task::spawn(driver);
        let mut acked = 0;
        for i in 0..50 {
            let command = if i == 0 {
                Command::V1(CommandV1::CreateBucket {
                    name: "b".into(),
                    owner: "o".into(),
                    created_ms: 0,
                })
            } else {
                put_object(i)
            };
            match raft.propose(command).await {
                Ok(Applied::Done | Applied::Version(_)) => acked += 1,
                other => panic!("one voter refused a command: {other:?}"),
            }
        }
        assert_eq!(acked, 50);
        drop(raft);
        cluster.crash(1);
        let disk = world.disk(1);
        let segment = disk
            .live_names()
            .into_iter()
            .filter(|n| n.starts_with("raft/log/") && n.ends_with(".seg"))
            .max()
            .expect("a log segment");
        let len = disk.live_len(&segment).unwrap();
        assert!(disk.flip_bit(&segment, len * 8 - 3), "the last record rots");
        match start(env.clone(), config).await {
            Err(StartError::DurableLost { last, durable }) => assert!(last < durable),
            Err(other) => panic!("refused for the wrong reason: {other}"),
            Ok(_) => panic!("a log that lost an acknowledged entry was served"),
        }
    });
}

/// A lone voter that leads answers a ReadIndex from its applied state, without waiting
/// for its driver: here the driver is stuck for seconds in the fsync of a proposal's
/// append, and the read still returns at once and sees every acknowledged command (but
/// not the one in flight, which nobody was told of). A driver round would take seconds.
#[test]
fn a_leading_lone_voter_reads_without_waiting_for_its_driver() {
    use engine::raft::start::start;

    run(11, || async {
        let (world, _cluster, env, config) = one_voter(11);
        let (raft, driver) = start(env, config).await.unwrap();
        madsim::task::spawn(driver);
        let bucket = engine::meta::Command::V1(engine::meta::CommandV1::CreateBucket {
            name: "b".into(),
            owner: "o".into(),
            created_ms: 0,
        });
        raft.propose(bucket).await.unwrap();
        for i in 1..=6 {
            raft.propose(put_object(i)).await.unwrap();
        }
        world.disk(1).set_sync_us(3_000_000);
        let slow = madsim::task::spawn({
            let raft = raft.clone();
            async move { raft.propose(put_object(7)).await }
        });
        SimClock.sleep(Duration::from_millis(50)).await;
        let began = SimClock.now();
        let read = engine::env::timeout(&SimClock, Duration::from_millis(100), raft.read_index());
        assert!(
            matches!(read.await, Ok(Ok(_))),
            "the read waited for the driver"
        );
        assert!(SimClock.now() - began < Duration::from_millis(100));
        let seen = |key: &str| {
            raft.read(|r| r.object("b", key))
                .unwrap()
                .map(|o| o.meta.etag.clone())
        };
        assert_eq!(
            seen("k6").as_deref(),
            Some("e6"),
            "an acknowledged write is read"
        );
        assert_eq!(
            seen("k0"),
            None,
            "k0 is written only by the proposal in flight"
        );
        assert!(slow.await.unwrap().is_ok());
        assert_eq!(seen("k0").as_deref(), Some("e7"));
    });
}

/// A snapshot's state commits, then the crash comes before the log reset that follows
/// it: the old log ends below the new mark. The restart must finish the reset, or the
/// next entry (the mark + 1) lands after the old ones and the restart after that finds
/// a gap in the log and refuses to serve (fuzz seed in seeds/snapshot-install-cut-short).
#[test]
fn a_snapshot_install_cut_short_before_the_log_reset_is_finished_at_restart() {
    use engine::env::Disk;
    use engine::meta::store::{Mark, MetaStore};
    use engine::meta::{Applied, Command, CommandV1};
    use engine::raft::start::start;

    let create = |name: &str| {
        Command::V1(CommandV1::CreateBucket {
            name: name.into(),
            owner: "o".into(),
            created_ms: 0,
        })
    };
    run(11, || async {
        let (_world, mut cluster, env, config) = one_voter(11);
        let (raft, driver) = start(env.clone(), config.clone()).await.unwrap();
        let task = madsim::task::spawn(driver);
        for i in 0..10 {
            let done = raft.propose(create(&format!("b{i}"))).await;
            assert!(matches!(done, Ok(Applied::Done)), "{done:?}");
        }
        drop(raft);
        task.abort();
        cluster.crash(1);

        // What `snapshot::install` leaves when the crash follows it: the state at a mark
        // beyond every entry of the log, the log untouched.
        let backend = env.disk().storage_backend("raft/state.redb").await.unwrap();
        let store = MetaStore::open(backend).unwrap();
        let old = store.mark().unwrap();
        let mark = Mark {
            index: old.index + 20,
            ..old
        };
        store.begin_install().unwrap();
        store.finish_install(&mark).unwrap();
        drop(store);

        for round in 0..2 {
            let (raft, driver) = start(env.clone(), config.clone())
                .await
                .unwrap_or_else(|e| panic!("restart {round} refused: {e}"));
            let task = madsim::task::spawn(driver);
            let done = raft.propose(create(&format!("after{round}"))).await;
            assert!(matches!(done, Ok(Applied::Done)), "{done:?}");
            drop(raft);
            task.abort();
            cluster.crash(1);
        }
    });
}
