//! A small fluent context for deterministic engine tests (after TigerBeetle's replica
//! tests): full nodes on the simulator, driven step by step, so that a schedule reads as
//! a few lines.
//!
//! ```text
//! sim::context::run(7, 5, |t| async move {
//!     t.s3(1).create_bucket("b").await.unwrap();
//!     t.node(2).crash();
//!     t.disk(3).rot_shards();
//!     t.run_for(Duration::from_secs(5)).await;
//! });
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::env::{Clock, NodeId};
use engine::node::client::{ClientRequest, ClientResponse};
use engine::s3::api::{
    BodyArgs, CopyArgs, CreateUploadArgs, GetArgs, PartArgs, PartCopyArgs, PutArgs, Request,
    Response, SourceArgs,
};
use engine::s3::rpc::{self, Answer, CallOutcome};
use runtime_sim::{Cluster, NetConfig, SimClock, SimEnv, World};

use crate::object_run::{Ended, start_cluster};
use crate::scenario::Params;

/// How long one call may take before the context calls it lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `test` against `nodes` full nodes (objects configuration, no random faults) on
/// a simulator seeded with `seed`, on a thread of its own; panics in the test fail it.
pub fn run<F, Fut>(seed: u64, nodes: u64, test: F)
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_with(seed, nodes, |p| p, test);
}

/// [`run`] with the cluster's parameters changed by `setup` first.
pub fn run_with<S, F, Fut>(seed: u64, nodes: u64, setup: S, test: F)
where
    S: FnOnce(Params) -> Params + Send + 'static,
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let joined = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let mut rt = madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
            rt.set_time_limit(Duration::from_secs(3600));
            rt.block_on(async move {
                let t = Context::start(seed, nodes, setup);
                // A fault-free start: the group elects a leader within a few seconds.
                t.run_for(Duration::from_secs(3)).await;
                test(t).await;
            });
        })
        .expect("spawn a test thread")
        .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

/// The cluster under test.
#[derive(Clone)]
pub struct Context {
    world: World,
    cluster: Arc<Mutex<Cluster>>,
    client: SimEnv,
}

impl Context {
    fn start(seed: u64, nodes: u64, setup: impl FnOnce(Params) -> Params) -> Self {
        // Crashes are process deaths: callers see their connections reset.
        let net = NetConfig {
            crash_resets_calls: true,
            ..NetConfig::default()
        };
        let world = World::new(seed, net);
        let params = crate::scenario::load_all()
            .expect("scenarios load")
            .into_iter()
            .find(|s| s.name == "objects-baseline")
            .expect("the objects-baseline scenario")
            .params(seed)
            .with_nodes(nodes);
        let params = setup(params);
        let ended = Ended::default();
        let cluster = start_cluster(&world, &params, &ended);
        Self {
            client: world.node_env(crate::CLIENT_ID_BASE),
            world,
            cluster: Arc::new(Mutex::new(cluster)),
        }
    }

    pub fn node(&self, n: NodeId) -> NodeRef<'_> {
        NodeRef { t: self, n }
    }

    pub fn disk(&self, n: NodeId) -> DiskRef<'_> {
        DiskRef { t: self, n }
    }

    /// The S3 API of node `n`, as the simulator's clients call it.
    pub fn s3(&self, n: NodeId) -> S3Ref<'_> {
        S3Ref { t: self, n }
    }

    /// Holds back every message on the link `from -> to` until [`Context::heal`].
    pub fn clog(&self, from: NodeId, to: NodeId) {
        self.world.clog(from, to);
    }

    /// Asks node `via` as `hamster admin` does; `None` if it does not answer.
    async fn admin(&self, via: NodeId, request: &ClientRequest) -> Option<ClientResponse> {
        use engine::env::{Env as _, Net as _};
        let request = engine::wire::request(engine::wire::Tag::Client, request);
        let answer = self.client.net().call(via, request, CALL_TIMEOUT).await;
        answer.ok().and_then(|a| engine::wire::decode(&a))
    }

    /// The leader node `via` knows of (0: none).
    pub async fn leader(&self, via: NodeId) -> NodeId {
        match self.admin(via, &ClientRequest::Status).await {
            Some(ClientResponse::Status(s)) => s.leader,
            _ => 0,
        }
    }

    /// How many blobs node `via` lists as lost (`hamster admin lost`; `None`: no answer).
    pub async fn lost(&self, via: NodeId) -> Option<usize> {
        let request = ClientRequest::Lost {
            after: None,
            limit: 1000,
        };
        match self.admin(via, &request).await {
            Some(ClientResponse::Lost(entries, _)) => Some(entries.len()),
            _ => None,
        }
    }

    /// From now on node `n`'s clock runs at `ppm` millionths of true time (clock drift;
    /// `runtime_sim::NodeClock`).
    pub fn set_clock_rate(&self, n: NodeId, ppm: u64) {
        self.world.clock(n).set_rate_ppm(ppm);
    }

    /// Clears every clog.
    pub fn heal(&self) {
        self.world.heal_network();
    }

    pub async fn run_for(&self, d: Duration) {
        SimClock.sleep(d).await;
    }

    /// Lets time pass until `done` holds (checked every 100 ms); false after `limit`.
    pub async fn run_until(&self, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = SimClock.now() + limit;
        while !done() {
            if SimClock.now() >= deadline {
                return false;
            }
            SimClock.sleep(Duration::from_millis(100)).await;
        }
        true
    }
}

pub struct NodeRef<'a> {
    t: &'a Context,
    n: NodeId,
}

impl NodeRef<'_> {
    /// Kills the node's process (unsynced writes resolve as a power loss would).
    pub fn crash(&self) -> &Self {
        self.t.cluster.lock().expect("cluster").crash(self.n);
        self
    }

    pub fn restart(&self) -> &Self {
        self.t.cluster.lock().expect("cluster").restart(self.n);
        self
    }

    /// The node's repair status (`hamster admin repair status`).
    pub async fn repair_status(&self) -> engine::repair::RepairStatus {
        match self.t.admin(self.n, &ClientRequest::RepairStatus).await {
            Some(ClientResponse::Repair(status)) => *status,
            other => panic!("node {} answers RepairStatus with {other:?}", self.n),
        }
    }

    /// Starts a deep scrub pass on the node (`hamster admin repair start`).
    pub async fn start_scrub(&self) {
        let started = self.t.admin(self.n, &ClientRequest::RepairStart).await;
        assert!(started.is_some(), "node {} answers RepairStart", self.n);
    }
}

pub struct DiskRef<'a> {
    t: &'a Context,
    n: NodeId,
}

impl DiskRef<'_> {
    /// Shard files on this disk.
    pub fn shards(&self) -> Vec<String> {
        self.t
            .world
            .disk(self.n)
            .live_names()
            .into_iter()
            .filter(|n| n.ends_with(".shard"))
            .collect()
    }

    /// Durable shard files on this disk that fail their own checksums.
    pub fn bad_shards(&self) -> usize {
        let files = self.t.world.disk(self.n).durable_files();
        files
            .iter()
            .filter(|(path, _)| path.ends_with(".shard"))
            .filter(|(path, bytes)| engine::shard_store::verify_file_bytes(path, bytes).is_err())
            .count()
    }

    /// Flips a bit in the data of every shard file on this disk; how many it rotted.
    pub fn rot_shards(&self) -> usize {
        let disk = self.t.world.disk(self.n);
        self.shards()
            .iter()
            .filter(|path| disk.flip_bit(path, 8 * 200))
            .count()
    }
}

pub struct S3Ref<'a> {
    t: &'a Context,
    n: NodeId,
}

/// What a call gave: the response and a GET's bytes, or the error code.
pub type CallResult = Result<(Response, Vec<u8>), String>;

fn result(outcome: CallOutcome) -> CallResult {
    match outcome {
        CallOutcome::Answer(Answer::Ok { response, data }) => Ok((response, data)),
        CallOutcome::Answer(Answer::Failed { code, .. }) => Err(code),
        CallOutcome::Lost => Err("lost".into()),
        CallOutcome::Unreachable => Err("unreachable".into()),
    }
}

fn etag(r: CallResult) -> Result<String, String> {
    match r? {
        (Response::Put(out), _) => Ok(out.etag),
        (other, _) => Err(format!("unexpected {other:?}")),
    }
}

impl S3Ref<'_> {
    pub async fn call(&self, request: Request) -> CallResult {
        result(rpc::call(&self.t.client, self.n, &request, CALL_TIMEOUT).await)
    }

    async fn with_body(&self, request: Request, data: &[u8]) -> CallResult {
        let data = Bytes::copy_from_slice(data);
        result(rpc::put(&self.t.client, self.n, &request, data, 4096, CALL_TIMEOUT).await)
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<(), String> {
        let bucket = bucket.into();
        self.call(Request::CreateBucket {
            object_lock: false,
            bucket,
            acl: None,
            ownership: None,
        })
        .await
        .map(|_| ())
    }

    /// A PUT; its ETag.
    pub async fn put(&self, bucket: &str, key: &str, data: &[u8]) -> Result<String, String> {
        let request = Request::PutObject(Box::new(PutArgs {
            bucket: bucket.into(),
            key: key.into(),
            body: BodyArgs {
                size: Some(data.len() as i64),
                ..Default::default()
            },
            ..Default::default()
        }));
        etag(self.with_body(request, data).await)
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let request = Request::GetObject(Box::new(GetArgs {
            bucket: bucket.into(),
            key: key.into(),
            ..Default::default()
        }));
        self.call(request).await.map(|(_, data)| data)
    }

    pub async fn copy(
        &self,
        from: (&str, &str),
        bucket: &str,
        key: &str,
    ) -> Result<String, String> {
        let request = Request::CopyObject(Box::new(CopyArgs {
            source: source(from),
            bucket: bucket.into(),
            key: key.into(),
            ..Default::default()
        }));
        etag(self.call(request).await)
    }

    /// CreateMultipartUpload; the upload id.
    pub async fn create_upload(&self, bucket: &str, key: &str) -> Result<String, String> {
        let request = Request::CreateMultipartUpload(Box::new(CreateUploadArgs {
            bucket: bucket.into(),
            key: key.into(),
            ..Default::default()
        }));
        match self.call(request).await? {
            (Response::Upload(id, _), _) => Ok(id),
            (other, _) => Err(format!("unexpected {other:?}")),
        }
    }

    /// UploadPart; the part's ETag.
    pub async fn upload_part(
        &self,
        (bucket, key, id): (&str, &str, &str),
        number: i32,
        data: &[u8],
    ) -> Result<String, String> {
        let request = Request::UploadPart(Box::new(PartArgs {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: id.into(),
            part_number: number,
            body: BodyArgs {
                size: Some(data.len() as i64),
                ..Default::default()
            },
            sse: Default::default(),
        }));
        etag(self.with_body(request, data).await)
    }

    /// UploadPartCopy of bytes `range` (`bytes=a-b`) of `from`; the part's ETag.
    pub async fn upload_part_copy(
        &self,
        (bucket, key, id): (&str, &str, &str),
        number: i32,
        from: (&str, &str),
        range: &str,
    ) -> Result<String, String> {
        let request = Request::UploadPartCopy(Box::new(PartCopyArgs {
            source: source(from),
            source_range: Some(range.into()),
            bucket: bucket.into(),
            key: key.into(),
            upload_id: id.into(),
            sse: Default::default(),
            part_number: number,
        }));
        etag(self.call(request).await)
    }

    /// CompleteMultipartUpload of (part number, ETag) in the order given; its ETag.
    pub async fn complete(
        &self,
        (bucket, key, id): (&str, &str, &str),
        parts: &[(i32, &str)],
    ) -> Result<String, String> {
        let request = Request::CompleteMultipartUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: id.into(),
            parts: parts
                .iter()
                .map(|(n, e)| (Some(*n), Some(e.to_string())))
                .collect(),
        };
        etag(self.call(request).await)
    }
}

fn source((bucket, key): (&str, &str)) -> SourceArgs {
    SourceArgs {
        bucket: bucket.into(),
        key: key.into(),
        ..Default::default()
    }
}
