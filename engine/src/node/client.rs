//! Client and admin requests to any node (tag `wire::Tag::Client`): proposals,
//! membership changes, linearizable and local reads, the node's status, repair status
//! and start, and the lost-object list. The node endpoint and `hamster server`'s admin
//! socket both answer through [`client_request`].

use std::time::Duration;

use crate::env::{Disk, Env, NodeId};
use crate::meta::{Applied, Command};
use crate::raft::forward::propose_anywhere;
use crate::raft::node::{self as raft_node, ProposeError, RaftHandle};
use crate::repair::Repair;
use crate::s3::S3;
use crate::s3::api::{Caller, KeyRequest, KeyResponse};

/// How long a node spends on one client request before answering "unknown".
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A metadata request to any node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientRequest {
    /// Apply a command (forwarded to the leader if this node is not it).
    Propose(Box<Command>),
    /// Membership change, on the leader.
    ChangeMembers(Vec<MemberChangeWire>),
    /// A linearizable read of one object's current version (ReadIndex, then local).
    GetObject { bucket: String, key: String },
    /// The same read from this node's replica as it stands (possibly stale).
    ReadLocal { bucket: String, key: String },
    /// This node's view of the group.
    Status,
    /// This node's repair: scrub progress, queue, rebuilds, failures.
    RepairStatus,
    /// Start a full scrub pass on this node now.
    RepairStart,
    /// Lost objects (blobs with fewer than k good shards), after data id `after`.
    Lost { after: Option<u128>, limit: u32 },
    /// A key admin request (`hamster admin key` through an admin certificate or a
    /// server's admin socket), as the root.
    Keys(KeyRequest),
}

/// One lost blob, as `hamster admin lost` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LostEntry {
    pub data_id: u128,
    pub bucket: String,
    pub key: String,
    /// Bytes of the blob (a whole object, or one part of a multipart object).
    pub size: u64,
    pub good: u16,
    pub needed: u16,
    pub since_ms: u64,
}

/// Lost entries per page, at most.
pub const LOST_PAGE_MAX: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberChangeWire {
    AddVoter(NodeId),
    AddLearner(NodeId),
    Remove(NodeId),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientResponse {
    Applied(Result<Applied, ProposeError>),
    /// (version, etag) of the object, if it exists.
    Object(Result<Option<(u64, String)>, ProposeError>),
    Status(StatusWire),
    Repair(Box<crate::repair::RepairStatus>),
    /// A page of lost blobs and the data id to go on from (`None`: the end).
    Lost(Vec<LostEntry>, Option<u128>),
    Failed(String),
    /// The answer to [`ClientRequest::Keys`], or the S3 error (code and message).
    Keys(Result<KeyResponse, (String, String)>),
}

/// [`raft_node::RaftStatus`] as it travels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusWire {
    pub id: NodeId,
    pub leader: NodeId,
    pub term: u64,
    pub role: String,
    pub commit: u64,
    pub applied: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// The engine's version (the workspace's).
    pub version: String,
    pub uptime_s: u64,
    /// The node's data disk (`None`: it could not be read).
    pub disk: Option<crate::env::DiskSpace>,
    /// Shard files held, voters reachable (from repair's last presence pass).
    pub shards_held: u64,
    pub members_reachable: u64,
    /// Has a leader and reaches at least the write floor of members.
    pub ready: bool,
}

/// Answers one client or admin request (the node endpoint and `hamster server`'s admin
/// socket both come here).
pub async fn client_request<E: Env>(
    env: &E,
    raft: &RaftHandle,
    repair: Option<&Repair<E>>,
    s3: Option<&S3<E>>,
    request: ClientRequest,
) -> ClientResponse {
    match request {
        ClientRequest::Keys(request) => match s3 {
            Some(s3) => ClientResponse::Keys(
                s3.keys(&Caller::Root, request)
                    .await
                    .map_err(|e| (e.code().to_string(), e.message())),
            ),
            None => ClientResponse::Failed("this node serves no S3".into()),
        },
        ClientRequest::RepairStatus => match repair {
            Some(r) => ClientResponse::Repair(Box::new(r.status())),
            None => ClientResponse::Failed("this node runs no repair".into()),
        },
        ClientRequest::RepairStart => match repair {
            Some(r) => {
                r.start_scrub();
                ClientResponse::Applied(Ok(Applied::Done))
            }
            None => ClientResponse::Failed("this node runs no repair".into()),
        },
        ClientRequest::Lost { after, limit } => {
            let read = async {
                raft.read_index().await?;
                lost_page(raft, after, limit.min(LOST_PAGE_MAX))
            };
            match crate::env::timeout(env.clock(), CLIENT_REQUEST_TIMEOUT, read).await {
                Ok(Ok((page, next))) => ClientResponse::Lost(page, next),
                Ok(Err(e)) => ClientResponse::Failed(e.to_string()),
                Err(_) => ClientResponse::Failed("no answer from the leader in time".into()),
            }
        }
        ClientRequest::Propose(command) => ClientResponse::Applied(
            propose_anywhere(env, raft, *command, CLIENT_REQUEST_TIMEOUT).await,
        ),
        ClientRequest::ChangeMembers(changes) => {
            let changes = changes
                .into_iter()
                .map(|c| match c {
                    MemberChangeWire::AddVoter(n) => raft_node::MemberChange::AddVoter(n),
                    MemberChangeWire::AddLearner(n) => raft_node::MemberChange::AddLearner(n),
                    MemberChangeWire::Remove(n) => raft_node::MemberChange::Remove(n),
                })
                .collect();
            let attempt = raft.change_members(changes);
            let result = crate::env::timeout(env.clock(), CLIENT_REQUEST_TIMEOUT, attempt).await;
            ClientResponse::Applied(result.unwrap_or(Err(ProposeError::Timeout)))
        }
        ClientRequest::GetObject { bucket, key } => {
            let read = async {
                raft.read_index().await?;
                local_object(raft, &bucket, &key)
            };
            let result = crate::env::timeout(env.clock(), CLIENT_REQUEST_TIMEOUT, read).await;
            ClientResponse::Object(result.unwrap_or(Err(ProposeError::Timeout)))
        }
        ClientRequest::ReadLocal { bucket, key } => {
            ClientResponse::Object(local_object(raft, &bucket, &key))
        }
        ClientRequest::Status => ClientResponse::Status(status(env, raft, repair).await),
    }
}

/// This node as `hamster admin status` shows it.
pub async fn status<E: Env>(env: &E, raft: &RaftHandle, repair: Option<&Repair<E>>) -> StatusWire {
    let s = raft.status();
    let r = repair.map(Repair::status).unwrap_or_default();
    let members = s.voters.len().max(1);
    // Before the first presence pass only this node is known to answer.
    let reachable = if r.members == 0 {
        1
    } else {
        r.members_reachable as usize
    };
    let ready = s.leader != 0
        && s.stopped.is_none()
        && reachable >= crate::placement::ladder(members).write_floor();
    StatusWire {
        id: s.id,
        leader: s.leader,
        term: s.term,
        role: format!("{:?}", s.role),
        commit: s.commit,
        applied: s.applied,
        voters: s.voters,
        learners: s.learners,
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s: repair.map_or(0, |r| r.uptime().as_secs()),
        disk: env.disk().space().await.ok(),
        shards_held: r.shards_held,
        members_reachable: reachable as u64,
        ready,
    }
}

/// Walks the data refs after `after` for lost blobs: up to `limit` of them, and where
/// to go on from. Reads at most `LOST_SCAN_REFS` refs per call, so one call is bounded
/// however large the index.
fn lost_page(
    raft: &RaftHandle,
    after: Option<u128>,
    limit: u32,
) -> Result<(Vec<LostEntry>, Option<u128>), ProposeError> {
    const LOST_SCAN_REFS: usize = 100_000;
    raft.read(|r| {
        let refs = r.data_refs_after(after, LOST_SCAN_REFS)?;
        let sites = r.sites()?;
        let mut out = Vec::new();
        let mut next = None;
        for (data_id, data_ref) in &refs {
            next = Some(*data_id);
            let Some(mark) = &data_ref.lost else { continue };
            let size =
                crate::meta::repair::layout_at(&sites, *data_id, data_ref)?.map_or(0, |l| l.size);
            out.push(LostEntry {
                data_id: *data_id,
                bucket: data_ref.bucket.clone(),
                key: data_ref.key.clone(),
                size,
                good: mark.good,
                needed: mark.needed,
                since_ms: mark.since_ms,
            });
            if out.len() as u32 == limit {
                break;
            }
        }
        let done = refs.len() < LOST_SCAN_REFS && out.len() < limit as usize;
        Ok((out, if done { None } else { next }))
    })
}

/// (version, etag) of an object in the local replica.
fn local_object(
    raft: &RaftHandle,
    bucket: &str,
    key: &str,
) -> Result<Option<(u64, String)>, ProposeError> {
    raft.read(|r| Ok(r.object(bucket, key)?.map(|o| (o.version, o.meta.etag))))
}
