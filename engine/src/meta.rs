//! The metadata state machine: buckets, objects, multipart uploads and members.
//!
//! Every mutation is a [`Command`] committed through Raft; `apply` is a pure function of
//! the state and the command, so every replica that applies the same log reaches the
//! same state. Object data never appears here, only where its shards are.
//!
//! Commands are versioned (`Command::V1`): a newer node can still apply an older log.
//! `apply` runs on [`MetaTables`]: the redb tables of `crate::meta_store` on a node,
//! and [`MetaState`], ordered maps in memory, which is the simulator's model and the
//! snapshot format (serialised whole).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::env::NodeId;

/// Where one shard of an object lives and what its data hashes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlacement {
    pub node: NodeId,
    pub sha256: [u8; 32],
}

/// The current version of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub user_meta: BTreeMap<String, String>,
    pub checksums: BTreeMap<String, String>,
    pub k: u32,
    pub m: u32,
    pub shards: Vec<ShardPlacement>,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub owner: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub created_ms: u64,
    pub parts: BTreeMap<u32, ObjectMeta>,
}

/// An upload without its parts (the store keeps parts in their own table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadHead {
    pub bucket: String,
    pub key: String,
    pub created_ms: u64,
}

impl Upload {
    pub fn head(&self) -> UploadHead {
        UploadHead {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            created_ms: self.created_ms,
        }
    }

    pub fn from_head(h: UploadHead) -> Self {
        Self {
            bucket: h.bucket,
            key: h.key,
            created_ms: h.created_ms,
            parts: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub rpc_addr: String,
}

/// A stored object version: its metadata and the log index that wrote it (the
/// version id: unique, ordered, the same on every replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub version: u64,
    pub meta: ObjectMeta,
}

/// Version 1 of the command set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandV1 {
    CreateBucket {
        name: String,
        owner: String,
        created_ms: u64,
    },
    DeleteBucket {
        name: String,
    },
    /// Sets the object's current version; with `if_none_match`, only if it has none.
    PutObject {
        bucket: String,
        key: String,
        meta: ObjectMeta,
        if_none_match: bool,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    CreateUpload {
        upload_id: String,
        bucket: String,
        key: String,
        created_ms: u64,
    },
    PutPart {
        upload_id: String,
        part: u32,
        meta: ObjectMeta,
    },
    /// Completes an upload into an object made of the listed parts.
    CompleteUpload {
        upload_id: String,
        parts: Vec<u32>,
        meta: ObjectMeta,
    },
    AbortUpload {
        upload_id: String,
    },
    SetMember {
        node: NodeId,
        member: Member,
    },
    RemoveMember {
        node: NodeId,
    },
}

/// A command as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    V1(CommandV1),
}

/// What applying a command did. Refusals are results, not errors: they are part of
/// the replicated history and every replica reaches the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    Done,
    /// An object version was written at this log index.
    Version(u64),
    BucketExists,
    NoSuchBucket,
    BucketNotEmpty,
    NoSuchKey,
    NoSuchUpload,
    /// A conditional write found its condition false.
    PreconditionFailed,
    /// A part named in a completion was never uploaded.
    InvalidPart(u32),
}

/// The replicated metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub buckets: BTreeMap<String, Bucket>,
    /// (bucket, key) -> current version.
    pub objects: BTreeMap<(String, String), Stored>,
    pub uploads: BTreeMap<String, Upload>,
    pub members: BTreeMap<NodeId, Member>,
}

/// The tables `apply` works on: [`MetaState`] in memory (the model, and the snapshot
/// format), and the redb tables of `crate::meta_store`.
pub trait MetaTables {
    type Error;
    fn has_bucket(&self, name: &str) -> Result<bool, Self::Error>;
    fn insert_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), Self::Error>;
    fn remove_bucket(&mut self, name: &str) -> Result<(), Self::Error>;
    fn bucket_is_empty(&self, name: &str) -> Result<bool, Self::Error>;
    fn has_object(&self, bucket: &str, key: &str) -> Result<bool, Self::Error>;
    fn insert_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error>;
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<bool, Self::Error>;
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, Self::Error>;
    fn insert_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), Self::Error>;
    fn insert_part(&mut self, id: &str, part: u32, meta: &ObjectMeta) -> Result<(), Self::Error>;
    fn has_part(&self, id: &str, part: u32) -> Result<bool, Self::Error>;
    /// Removes the upload and its parts; whether it existed.
    fn remove_upload(&mut self, id: &str) -> Result<bool, Self::Error>;
    fn insert_member(&mut self, node: NodeId, member: &Member) -> Result<(), Self::Error>;
    fn remove_member(&mut self, node: NodeId) -> Result<(), Self::Error>;
}

/// Applies `command`, committed at log `index`, to `t`. Only storage errors fail it.
pub fn apply<T: MetaTables>(t: &mut T, index: u64, command: &Command) -> Result<Applied, T::Error> {
    let Command::V1(c) = command;
    let stored = |meta: &ObjectMeta| Stored {
        version: index,
        meta: meta.clone(),
    };
    Ok(match c {
        CommandV1::CreateBucket {
            name,
            owner,
            created_ms,
        } => {
            if t.has_bucket(name)? {
                return Ok(Applied::BucketExists);
            }
            let bucket = Bucket {
                owner: owner.clone(),
                created_ms: *created_ms,
            };
            t.insert_bucket(name, &bucket)?;
            Applied::Done
        }
        CommandV1::DeleteBucket { name } => {
            if !t.has_bucket(name)? {
                return Ok(Applied::NoSuchBucket);
            }
            if !t.bucket_is_empty(name)? {
                return Ok(Applied::BucketNotEmpty);
            }
            t.remove_bucket(name)?;
            Applied::Done
        }
        CommandV1::PutObject {
            bucket,
            key,
            meta,
            if_none_match,
        } => {
            if !t.has_bucket(bucket)? {
                return Ok(Applied::NoSuchBucket);
            }
            if *if_none_match && t.has_object(bucket, key)? {
                return Ok(Applied::PreconditionFailed);
            }
            t.insert_object(bucket, key, &stored(meta))?;
            Applied::Version(index)
        }
        CommandV1::DeleteObject { bucket, key } => {
            if !t.has_bucket(bucket)? {
                return Ok(Applied::NoSuchBucket);
            }
            if t.remove_object(bucket, key)? {
                Applied::Done
            } else {
                Applied::NoSuchKey
            }
        }
        CommandV1::CreateUpload {
            upload_id,
            bucket,
            key,
            created_ms,
        } => {
            if !t.has_bucket(bucket)? {
                return Ok(Applied::NoSuchBucket);
            }
            let head = UploadHead {
                bucket: bucket.clone(),
                key: key.clone(),
                created_ms: *created_ms,
            };
            // A reused id starts over, without the parts of the old upload.
            t.remove_upload(upload_id)?;
            t.insert_upload(upload_id, &head)?;
            Applied::Done
        }
        CommandV1::PutPart {
            upload_id,
            part,
            meta,
        } => {
            if t.upload(upload_id)?.is_none() {
                return Ok(Applied::NoSuchUpload);
            }
            t.insert_part(upload_id, *part, meta)?;
            Applied::Done
        }
        CommandV1::CompleteUpload {
            upload_id,
            parts,
            meta,
        } => {
            let Some(head) = t.upload(upload_id)? else {
                return Ok(Applied::NoSuchUpload);
            };
            for p in parts {
                if !t.has_part(upload_id, *p)? {
                    return Ok(Applied::InvalidPart(*p));
                }
            }
            t.remove_upload(upload_id)?;
            t.insert_object(&head.bucket, &head.key, &stored(meta))?;
            Applied::Version(index)
        }
        CommandV1::AbortUpload { upload_id } => {
            if t.remove_upload(upload_id)? {
                Applied::Done
            } else {
                Applied::NoSuchUpload
            }
        }
        CommandV1::SetMember { node, member } => {
            t.insert_member(*node, member)?;
            Applied::Done
        }
        CommandV1::RemoveMember { node } => {
            t.remove_member(*node)?;
            Applied::Done
        }
    })
}

impl MetaTables for MetaState {
    type Error = std::convert::Infallible;

    fn has_bucket(&self, name: &str) -> Result<bool, Self::Error> {
        Ok(self.buckets.contains_key(name))
    }
    fn insert_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), Self::Error> {
        self.buckets.insert(name.to_string(), bucket.clone());
        Ok(())
    }
    fn remove_bucket(&mut self, name: &str) -> Result<(), Self::Error> {
        self.buckets.remove(name);
        Ok(())
    }
    fn bucket_is_empty(&self, name: &str) -> Result<bool, Self::Error> {
        Ok(self.objects_in(name).next().is_none())
    }
    fn has_object(&self, bucket: &str, key: &str) -> Result<bool, Self::Error> {
        Ok(self.object(bucket, key).is_some())
    }
    fn insert_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error> {
        self.objects
            .insert((bucket.to_string(), key.to_string()), s.clone());
        Ok(())
    }
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<bool, Self::Error> {
        Ok(self
            .objects
            .remove(&(bucket.to_string(), key.to_string()))
            .is_some())
    }
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, Self::Error> {
        Ok(self.uploads.get(id).map(Upload::head))
    }
    fn insert_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), Self::Error> {
        self.uploads
            .insert(id.to_string(), Upload::from_head(head.clone()));
        Ok(())
    }
    fn insert_part(&mut self, id: &str, part: u32, meta: &ObjectMeta) -> Result<(), Self::Error> {
        if let Some(u) = self.uploads.get_mut(id) {
            u.parts.insert(part, meta.clone());
        }
        Ok(())
    }
    fn has_part(&self, id: &str, part: u32) -> Result<bool, Self::Error> {
        Ok(self
            .uploads
            .get(id)
            .is_some_and(|u| u.parts.contains_key(&part)))
    }
    fn remove_upload(&mut self, id: &str) -> Result<bool, Self::Error> {
        Ok(self.uploads.remove(id).is_some())
    }
    fn insert_member(&mut self, node: NodeId, member: &Member) -> Result<(), Self::Error> {
        self.members.insert(node, member.clone());
        Ok(())
    }
    fn remove_member(&mut self, node: NodeId) -> Result<(), Self::Error> {
        self.members.remove(&node);
        Ok(())
    }
}

impl MetaState {
    /// Applies `command`, committed at log `index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> Applied {
        match apply(self, index, command) {
            Ok(applied) => applied,
            Err(never) => match never {},
        }
    }

    /// The objects of `bucket`, in key order (an ordered index, not a scan of all).
    pub fn objects_in<'a>(
        &'a self,
        bucket: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Stored)> + 'a {
        let start = (bucket.to_string(), String::new());
        self.objects
            .range(start..)
            .take_while(move |((b, _), _)| b == bucket)
            .map(|((_, k), v)| (k.as_str(), v))
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<&Stored> {
        self.objects.get(&(bucket.to_string(), key.to_string()))
    }
}

// No message limit here: a snapshot of the state can be large. The wire limits apply
// where bytes come from peers (`shard_rpc::MESSAGE_BYTES_MAX`).
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("metadata encodes")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .ok()
        .map(|(v, _)| v)
}

pub fn encode_command(c: &Command) -> Vec<u8> {
    encode(c)
}

pub fn decode_command(b: &[u8]) -> Option<Command> {
    decode(b)
}

pub fn encode_state(s: &MetaState) -> Vec<u8> {
    encode(s)
}

pub fn decode_state(b: &[u8]) -> Option<MetaState> {
    decode(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn meta(size: u64) -> ObjectMeta {
        ObjectMeta {
            size,
            etag: format!("e{size}"),
            content_type: "application/octet-stream".into(),
            user_meta: BTreeMap::new(),
            checksums: BTreeMap::new(),
            k: 1,
            m: 0,
            shards: vec![ShardPlacement {
                node: 1,
                sha256: [0; 32],
            }],
            created_ms: 0,
        }
    }

    fn v1(c: CommandV1) -> Command {
        Command::V1(c)
    }

    #[test]
    fn a_table_of_commands_and_their_results() {
        let mut s = MetaState::default();
        let bucket = |n: &str| {
            v1(CommandV1::CreateBucket {
                name: n.into(),
                owner: "o".into(),
                created_ms: 1,
            })
        };
        let put = |b: &str, k: &str, inm: bool| {
            v1(CommandV1::PutObject {
                bucket: b.into(),
                key: k.into(),
                meta: meta(3),
                if_none_match: inm,
            })
        };
        let steps: Vec<(Command, Applied)> = vec![
            (put("b", "k", false), Applied::NoSuchBucket),
            (bucket("b"), Applied::Done),
            (bucket("b"), Applied::BucketExists),
            (put("b", "k", false), Applied::Version(4)),
            (put("b", "k", true), Applied::PreconditionFailed),
            (put("b", "k2", true), Applied::Version(6)),
            (
                v1(CommandV1::DeleteBucket { name: "b".into() }),
                Applied::BucketNotEmpty,
            ),
            (
                v1(CommandV1::DeleteObject {
                    bucket: "b".into(),
                    key: "k".into(),
                }),
                Applied::Done,
            ),
            (
                v1(CommandV1::DeleteObject {
                    bucket: "b".into(),
                    key: "k".into(),
                }),
                Applied::NoSuchKey,
            ),
            (
                v1(CommandV1::DeleteObject {
                    bucket: "b".into(),
                    key: "k2".into(),
                }),
                Applied::Done,
            ),
            (
                v1(CommandV1::DeleteBucket { name: "b".into() }),
                Applied::Done,
            ),
            (
                v1(CommandV1::DeleteBucket { name: "b".into() }),
                Applied::NoSuchBucket,
            ),
        ];
        for (i, (cmd, want)) in steps.into_iter().enumerate() {
            assert_eq!(s.apply(i as u64 + 1, &cmd), want, "step {}", i + 1);
        }
    }

    #[test]
    fn multipart_and_listing_order() {
        let mut s = MetaState::default();
        s.apply(
            1,
            &v1(CommandV1::CreateBucket {
                name: "b".into(),
                owner: "o".into(),
                created_ms: 0,
            }),
        );
        s.apply(
            2,
            &v1(CommandV1::CreateBucket {
                name: "c".into(),
                owner: "o".into(),
                created_ms: 0,
            }),
        );
        for (i, k) in ["z", "a", "m"].iter().enumerate() {
            let c = v1(CommandV1::PutObject {
                bucket: "b".into(),
                key: (*k).into(),
                meta: meta(1),
                if_none_match: false,
            });
            s.apply(3 + i as u64, &c);
        }
        let c = v1(CommandV1::PutObject {
            bucket: "c".into(),
            key: "a".into(),
            meta: meta(1),
            if_none_match: false,
        });
        s.apply(9, &c);
        let keys: Vec<&str> = s.objects_in("b").map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "m", "z"]);

        let up = |c| s.clone().apply(20, &v1(c));
        assert_eq!(
            up(CommandV1::PutPart {
                upload_id: "u".into(),
                part: 1,
                meta: meta(1)
            }),
            Applied::NoSuchUpload
        );
        s.apply(
            10,
            &v1(CommandV1::CreateUpload {
                upload_id: "u".into(),
                bucket: "b".into(),
                key: "big".into(),
                created_ms: 0,
            }),
        );
        s.apply(
            11,
            &v1(CommandV1::PutPart {
                upload_id: "u".into(),
                part: 1,
                meta: meta(5),
            }),
        );
        let complete = |parts: Vec<u32>| {
            v1(CommandV1::CompleteUpload {
                upload_id: "u".into(),
                parts,
                meta: meta(5),
            })
        };
        assert_eq!(s.apply(12, &complete(vec![1, 2])), Applied::InvalidPart(2));
        assert_eq!(s.apply(13, &complete(vec![1])), Applied::Version(13));
        assert_eq!(s.object("b", "big").map(|o| o.version), Some(13));
        assert!(s.uploads.is_empty());
    }

    #[test]
    fn commands_and_state_round_trip() {
        let c = v1(CommandV1::SetMember {
            node: 3,
            member: Member {
                rpc_addr: "127.0.0.1:1".into(),
            },
        });
        assert_eq!(decode_command(&encode_command(&c)), Some(c.clone()));
        let mut s = MetaState::default();
        s.apply(1, &c);
        assert_eq!(decode_state(&encode_state(&s)), Some(s));
        assert_eq!(decode_command(&[0xff, 0xff, 0xff]), None);
    }
}
