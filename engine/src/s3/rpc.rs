//! S3 operations over a node's Net endpoint (tag `wire::Tag::S3`): how the simulator's
//! clients reach a node's S3 service, so that the operation runs inside that node and
//! dies with it (a coordinator lost mid-PUT is a real schedule, not a special case).
//! Production clients use HTTP; this tag answers cluster members only.
//!
//! The requests are the engine's own ([`Request`]), the ones the HTTP edge makes. A call
//! with a body is a streamed call (the body follows the request); every other call is
//! one message each way. A GET's bytes come back whole in the answer. Answers carry the
//! S3 error code and status, as HTTP would.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::env::{BodyStream, Env, Net, NodeId};
use crate::meta::encryption::ObjectEncryption;
use crate::meta::{DataLayout, ObjectData};
use crate::s3::access::{Caller, Origin};
use crate::s3::api::{Request, Response};
use crate::s3::keys::KeyRequest;
use crate::s3::{NoTrailer, S3, S3Error};
use crate::wire::{self, Tag, decode, encode};

/// An answer over the wire: the response and a GET's bytes, or the S3 error.
// One answer per call, matched on by value: boxing the response would only cost the
// callers their patterns.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Ok {
        response: Response,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Failed {
        code: String,
        status: u16,
        message: String,
        /// The operation may have taken effect (see `S3Error::outcome_unknown`).
        unknown: bool,
    },
}

fn failed(e: S3Error) -> Answer {
    Answer::Failed {
        code: e.code().into(),
        status: e.status(),
        message: e.message(),
        unknown: e.outcome_unknown(),
    }
}

/// What a call carries: an S3 request and whose it is (a cluster member may name any
/// principal: the simulator's clients make requests as keys), or an admin request
/// about keys (made as the root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    S3 { caller: Caller, request: Request },
    Keys(KeyRequest),
}

/// Serves one S3 call (the tag already stripped).
pub async fn handle<E: Env>(s3: &S3<E>, payload: &[u8], body: Option<BodyStream>) -> Bytes {
    let (caller, request) = match decode::<Call>(payload) {
        Some(Call::S3 { caller, request }) => (caller, request),
        Some(Call::Keys(request)) => {
            return encode(&match s3.keys(&Caller::Root, request).await {
                Ok(r) => Answer::Ok {
                    response: Response::Keys(r),
                    data: Vec::new(),
                },
                Err(e) => failed(e),
            });
        }
        None => {
            return encode(&failed(S3Error::InvalidRequest(
                "undecodable request".into(),
            )));
        }
    };
    let answer = match s3
        .execute(&caller, &Origin::default(), request, body, &NoTrailer)
        .await
    {
        Ok(reply) => match reply.body {
            None => Answer::Ok {
                response: reply.response,
                data: Vec::new(),
            },
            Some(body) => match body.collect().await {
                Ok(data) => Answer::Ok {
                    response: reply.response,
                    data,
                },
                Err(e) => failed(e),
            },
        },
        Err(e) => failed(e),
    };
    encode(&answer)
}

/// The outcome of an S3 call made over the Net.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum CallOutcome {
    Answer(Answer),
    /// No answer (timeout, broken connection, node died mid-call): the outcome is
    /// unknown.
    Lost,
    /// The node could not be reached at all: the request never arrived.
    Unreachable,
}

fn tagged(request: &Request) -> Bytes {
    tagged_call(&Call::S3 {
        caller: Caller::Root,
        request: request.clone(),
    })
}

fn tagged_call(call: &Call) -> Bytes {
    wire::request(Tag::S3, call)
}

fn outcome(answer: Result<Bytes, crate::env::NetError>) -> CallOutcome {
    match answer {
        Ok(bytes) => match decode::<Answer>(&bytes) {
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
    request: &Request,
    timeout: std::time::Duration,
) -> CallOutcome {
    outcome(env.net().call(to, tagged(request), timeout).await)
}

/// One call (`Call`) without a body to node `to`: a request as a key, or a key admin
/// request.
pub async fn call_as<E: Env>(
    env: &E,
    to: NodeId,
    call: &Call,
    timeout: std::time::Duration,
) -> CallOutcome {
    outcome(env.net().call(to, tagged_call(call), timeout).await)
}

/// A call with a body (PutObject, UploadPart) of `data` through node `to`, the body streamed in frames of `frame_bytes`.
pub async fn put<E: Env>(
    env: &E,
    to: NodeId,
    request: &Request,
    data: Bytes,
    frame_bytes: usize,
    timeout: std::time::Duration,
) -> CallOutcome {
    let call = Call::S3 {
        caller: Caller::Root,
        request: request.clone(),
    };
    put_as(env, to, &call, data, frame_bytes, timeout).await
}

/// [`put`] of any [`Call`] (a PUT as a key).
pub async fn put_as<E: Env>(
    env: &E,
    to: NodeId,
    call: &Call,
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
    let send = env.net().call_streamed(to, tagged_call(call), rx, timeout);
    let ((), answer) = futures::join!(produce, send);
    outcome(answer)
}

impl<E: Env> S3<E> {
    /// The blobs an object's data lives in (a simple object: one; a multipart one:
    /// one per non-empty part), each with whether it is lost, and how the bytes are
    /// encrypted, from an up-to-date replica.
    pub async fn layouts(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Vec<(DataLayout, bool)>, Option<ObjectEncryption>), S3Error> {
        let r = self.reader().await?;
        let stored = self.resolve(&r, bucket, key, version_id).await?;
        let encryption = self.version_encryption(&r, bucket, stored.version)?;
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
            .collect::<Result<_, _>>()
            .map(|blobs| (blobs, encryption))
    }
}
