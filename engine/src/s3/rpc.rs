//! S3 operations over a node's Net endpoint (tag [`TAG_S3`]): how the simulator's
//! clients reach a node's S3 service, so that the operation runs inside that node and
//! dies with it (a coordinator lost mid-PUT is a real schedule, not a special case).
//! Production clients use HTTP; this tag answers cluster members only.
//!
//! A PUT is a streamed call (its body follows the request); every other call is one
//! message each way. Answers carry the S3 error code and status, as HTTP would.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::env::{BodyStream, Env, Net, NodeId};
use crate::meta::{ContentHeaders, DataLayout, ObjectData, PutCondition};
use crate::s3::{Conditions, NoTrailer, PutBody, PutObject, RangeSpec, S3, S3Error};
use crate::shard_rpc::{decode, encode};

/// Network tag of an S3 operation (see `crate::node`).
pub const TAG_S3: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum S3Request {
    CreateBucket {
        bucket: String,
    },
    /// The body follows as the streamed part of the call.
    Put {
        bucket: String,
        key: String,
        size: u64,
        if_absent: bool,
    },
    /// Bytes `[first, last]` when a range is given.
    Get {
        bucket: String,
        key: String,
        range: Option<(u64, u64)>,
    },
    Delete {
        bucket: String,
        key: String,
    },
    /// Where an object's shards are (the durability checker's input).
    Layout {
        bucket: String,
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum S3Response {
    Done,
    Put {
        etag: String,
        version: u64,
        /// Shards the write could not seal (degraded; repair owes them).
        unsealed: u16,
    },
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Each blob's layout, and whether repair has recorded it lost.
    Layout(Vec<(DataLayout, bool)>),
    Failed {
        code: String,
        status: u16,
        message: String,
        /// The operation may have taken effect (see `S3Error::outcome_unknown`).
        unknown: bool,
    },
}

fn failed(e: S3Error) -> S3Response {
    S3Response::Failed {
        code: e.code().into(),
        status: e.status(),
        message: e.message(),
        unknown: e.outcome_unknown(),
    }
}

/// Serves one S3 call (the tag already stripped).
pub async fn handle<E: Env>(s3: &S3<E>, payload: &[u8], body: Option<BodyStream>) -> Bytes {
    let Some(request) = decode::<S3Request>(payload) else {
        return encode(&failed(S3Error::InvalidRequest(
            "undecodable request".into(),
        )));
    };
    let answer = match request {
        S3Request::CreateBucket { bucket } => {
            s3.create_bucket(&bucket).await.map(|()| S3Response::Done)
        }
        S3Request::Put {
            bucket,
            key,
            size,
            if_absent,
        } => match body {
            None => Err(S3Error::InvalidRequest("a PUT needs a body".into())),
            Some(body) => {
                let put = PutObject {
                    bucket,
                    key,
                    headers: ContentHeaders::default(),
                    user_meta: BTreeMap::new(),
                    condition: if if_absent {
                        PutCondition::IfAbsent
                    } else {
                        PutCondition::Always
                    },
                    body: PutBody {
                        source: body,
                        size,
                        content_md5: None,
                        checksum: None,
                    },
                };
                s3.put_object(put, &NoTrailer)
                    .await
                    .map(|o| S3Response::Put {
                        etag: o.etag,
                        version: o.version,
                        unsealed: o.unsealed,
                    })
            }
        },
        S3Request::Get { bucket, key, range } => {
            let range = range.map(|(first, last)| RangeSpec::From {
                first,
                last: Some(last),
            });
            match s3
                .get_object(&bucket, &key, range, &Conditions::default())
                .await
            {
                Ok(out) => out.body.collect().await.map(S3Response::Data),
                Err(e) => Err(e),
            }
        }
        S3Request::Delete { bucket, key } => s3
            .delete_object(&bucket, &key)
            .await
            .map(|()| S3Response::Done),
        S3Request::Layout { bucket, key } => {
            s3.layouts(&bucket, &key).await.map(S3Response::Layout)
        }
    };
    encode(&answer.unwrap_or_else(failed))
}

/// The outcome of an S3 call made over the Net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Answer(S3Response),
    /// No answer (timeout, broken connection, node died mid-call): the outcome is
    /// unknown.
    Lost,
    /// The node could not be reached at all: the request never arrived.
    Unreachable,
}

fn tagged(request: &S3Request) -> Bytes {
    let mut bytes = vec![TAG_S3];
    bytes.extend_from_slice(&encode(request));
    bytes.into()
}

fn outcome(answer: Result<Bytes, crate::env::NetError>) -> CallOutcome {
    match answer {
        Ok(bytes) => match decode::<S3Response>(&bytes) {
            Some(r) => CallOutcome::Answer(r),
            None => CallOutcome::Lost,
        },
        Err(crate::env::NetError::Unreachable { .. }) => CallOutcome::Unreachable,
        Err(_) => CallOutcome::Lost,
    }
}

/// One S3 call without a body to node `to`.
pub async fn call<E: Env>(
    env: &E,
    to: NodeId,
    request: &S3Request,
    timeout: std::time::Duration,
) -> CallOutcome {
    outcome(env.net().call(to, tagged(request), timeout).await)
}

/// A PUT of `data` through node `to`, the body streamed in frames of `frame_bytes`.
pub async fn put<E: Env>(
    env: &E,
    to: NodeId,
    request: &S3Request,
    data: Bytes,
    frame_bytes: usize,
    timeout: std::time::Duration,
) -> CallOutcome {
    let (mut tx, rx) = crate::env::body_channel(4);
    let produce = async move {
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + frame_bytes.max(1)).min(data.len());
            if tx.send(data.slice(pos..end)).await.is_err() {
                return;
            }
            pos = end;
        }
        let _ = tx.finish().await;
    };
    let send = env.net().call_streamed(to, tagged(request), rx, timeout);
    let ((), answer) = futures::join!(produce, send);
    outcome(answer)
}

impl<E: Env> S3<E> {
    /// The blobs an object's data lives in (a simple object: one; a multipart one:
    /// one per non-empty part), from an up-to-date replica.
    pub async fn layouts(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<(DataLayout, bool)>, S3Error> {
        let r = self.reader().await?;
        let stored = self.current(&r, bucket, key).await?;
        let blobs: Vec<DataLayout> = match &stored.meta.data {
            ObjectData::Empty => Vec::new(),
            ObjectData::Blob(l) => vec![l.clone()],
            ObjectData::Parts { .. } => r
                .object_parts(stored.version)
                .map_err(|e| S3Error::Internal(e.to_string()))?
                .into_iter()
                .filter_map(|p| p.info.data)
                .collect(),
        };
        blobs
            .into_iter()
            .map(|l| {
                let lost = r
                    .data_ref(l.data_id)
                    .map_err(|e| S3Error::Internal(e.to_string()))?
                    .is_some_and(|d| d.lost.is_some());
                Ok((l, lost))
            })
            .collect()
    }
}
