//! The metadata state machine: buckets, objects, multipart uploads and members.
//!
//! Every mutation is a [`Command`] committed through Raft; `apply` is a pure function of
//! the state and the command, so every replica that applies the same log reaches the
//! same state. Object data never appears here, only where its shards are
//! ([`DataLayout`]).
//!
//! Commands are versioned (`Command::V1`): a newer node can still apply an older log.
//! `apply` (in `meta::apply`) runs on [`MetaTables`]: the redb tables of
//! `crate::meta::store` on a node, and [`MetaState`] (in `meta::state`), ordered maps in
//! memory, which is the simulator's model and the snapshot digest's input.
//!
//! Tables, and why each exists:
//! - buckets: name -> [`Bucket`];
//! - objects: (bucket, key) -> [`Stored`], the current version; listing is a range scan
//!   of this ordered index, never a walk over per-object files;
//! - versions: (bucket, key, version) -> [`Stored`], the noncurrent versions of
//!   buckets with versioning ([`versions`]);
//! - object parts: (version, index) -> [`ObjectPart`], the parts of a completed
//!   multipart object, one row each, written once at completion (an object's part list
//!   never grows inside one record);
//! - uploads: id -> [`UploadHead`]; parts: (id, number) -> [`PartInfo`];
//! - members: node -> [`Member`];
//! - data refs: data id -> [`DataRef`], for every blob some object, part or upload
//!   refers to: where its layout is kept (so repair finds and updates it in place) and
//!   whether it is lost. A shard whose data id is not here is an orphan (a write that
//!   never committed, an overwritten or deleted object), which the holders' sweep removes.
//!
//! Repair's commands (`RepairShard`, `MarkLost`, `ClearLost`) are in [`repair`]; each is
//! guarded by the layout it was computed from, so a repair racing an overwrite, a delete
//! or another repair changes nothing.

pub mod access;
pub mod encryption;
pub mod keys;
pub mod lifecycle;
pub mod lifecycle_rules;
pub mod lock;
pub mod repair;
pub mod retention;
pub mod store;
pub mod tag;
pub mod versions;

mod apply;
mod state;

pub use apply::apply;
use apply::drop_upload;
pub use state::{MetaState, decode_command, decode_state, encode_command, encode_state};

pub(crate) use crate::wire::{decode_record as decode, encode_record as encode};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::env::NodeId;
use crate::erasure::CodecId;

/// Where one shard of a blob lives and what its data hashes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlacement {
    pub node: NodeId,
    /// sha256 of the shard's data, as its holder reported at seal.
    pub sha256: [u8; 32],
    /// False for a shard a degraded write could not seal: repair owes it.
    pub sealed: bool,
}

/// One erasure-coded blob: a simple object's data or one multipart part's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLayout {
    /// Names the shard files (`ShardId::object`); unique per write.
    pub data_id: u128,
    pub size: u64,
    pub codec: CodecId,
    pub k: u16,
    pub m: u16,
    pub chunk_size_bytes: u32,
    /// `k + m` placements; position = shard index.
    pub shards: Vec<ShardPlacement>,
}

impl DataLayout {
    pub fn sealed_shards(&self) -> usize {
        self.shards.iter().filter(|s| s.sealed).count()
    }
}

/// Where a blob's layout is kept; the data-refs table maps each data id to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Site {
    /// The current version of (bucket, key) is this one blob.
    Object,
    /// Row `index` of the object-parts table of the completed object at `version`.
    ObjectPart { version: u64, index: u32 },
    /// Part `part` of an upload in progress.
    UploadPart { upload_id: String, part: u32 },
    /// The noncurrent version `version` of (bucket, key) is this one blob.
    Version { version: u64 },
}

/// A blob that a repair found with fewer than k good shards: it cannot be read until
/// holders come back. Recorded, not inferred per GET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostMark {
    /// Shards found readable and verified when it was marked.
    pub good: u16,
    /// Shards needed (k).
    pub needed: u16,
    pub since_ms: u64,
}

/// A row of the data-refs table: which object a blob belongs to and where its layout is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRef {
    pub bucket: String,
    pub key: String,
    pub site: Site,
    pub lost: Option<LostMark>,
}

impl DataRef {
    pub fn new(bucket: &str, key: &str, site: Site) -> Self {
        Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
            site,
            lost: None,
        }
    }
}

/// The standard headers stored with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// An `x-amz-checksum-*` value: the base64 of the digest, and for a multipart object
/// the number of parts it was composed from (shown as `-N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
    pub parts: Option<u32>,
}

/// Where an object's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectData {
    /// A zero-length object: no shards at all.
    Empty,
    /// One blob (PutObject, CopyObject).
    Blob(DataLayout),
    /// A completed multipart upload: `count` rows in the object-parts table.
    Parts { count: u32 },
}

/// The current version of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// The ETag as S3 computes it, without quotes.
    pub etag: String,
    pub created_ms: u64,
    pub headers: ContentHeaders,
    /// `x-amz-meta-*`, names lower-case, without the prefix.
    pub user_meta: BTreeMap<String, String>,
    pub checksum: Option<Checksum>,
    pub data: ObjectData,
}

impl ObjectMeta {
    /// Metadata of an object without data (`size` is what it claims, e.g. a test's).
    pub fn without_data(size: u64, etag: String) -> Self {
        Self {
            size,
            etag,
            created_ms: 0,
            headers: ContentHeaders::default(),
            user_meta: BTreeMap::new(),
            checksum: None,
            data: ObjectData::Empty,
        }
    }
}

/// One part of a multipart upload, or of the object it completed into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub size: u64,
    /// MD5 of the part, hex, without quotes.
    pub etag: String,
    pub checksum: Option<Checksum>,
    pub created_ms: u64,
    /// `None` for an empty part.
    pub data: Option<DataLayout>,
}

/// A row of the object-parts table: part `number` of a completed object, at `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPart {
    pub number: u32,
    pub offset: u64,
    pub info: PartInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub owner: String,
    pub created_ms: u64,
}

/// A multipart upload in progress (its parts are rows of their own table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadHead {
    pub bucket: String,
    pub key: String,
    pub created_ms: u64,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
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
    /// S3's `null` version: written while the bucket's versioning was off or suspended.
    pub null: bool,
    /// A delete marker (its `meta` is empty).
    pub marker: bool,
}

/// The condition of a conditional PUT, checked at apply time (the commit is the
/// linearization point, so two racing `If-None-Match: *` PUTs cannot both win).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutCondition {
    Always,
    /// `If-None-Match: *`: only if the key has no current version.
    IfAbsent,
    /// `If-Match: etag`: only if the current version has this ETag.
    IfEtag(String),
}

/// S3's smallest part, except the last (5 MiB).
pub const PART_SIZE_MIN_BYTES: u64 = 5 << 20;

/// Version 1 of the command set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandV1 {
    CreateBucket {
        name: String,
        owner: String,
        created_ms: u64,
    },
    /// Removes an empty bucket and any multipart uploads left in it.
    DeleteBucket {
        name: String,
    },
    /// Sets the object's current version, if `condition` holds.
    PutObject {
        bucket: String,
        key: String,
        meta: ObjectMeta,
        condition: PutCondition,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    /// DeleteObjects: every key, in one command.
    DeleteObjects {
        bucket: String,
        keys: Vec<String>,
    },
    CreateUpload {
        upload_id: String,
        head: UploadHead,
    },
    PutPart {
        upload_id: String,
        part: u32,
        info: PartInfo,
    },
    /// Completes an upload from the listed (part number, ETag) pairs, in order. `meta`
    /// is what the proposer computed from those parts (ETag, checksum, headers); apply
    /// checks every pair and computes size and offsets itself.
    CompleteUpload {
        upload_id: String,
        parts: Vec<(u32, String)>,
        meta: ObjectMeta,
        /// Smallest size of a part other than the last ([`PART_SIZE_MIN_BYTES`]; the
        /// simulator's small objects use less).
        part_size_min: u64,
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
    /// Records shard `index` of blob `data_id` as `placement` (rebuilt and sealed), if
    /// the layout still has `expected` there.
    RepairShard {
        data_id: u128,
        index: u16,
        expected: ShardPlacement,
        placement: ShardPlacement,
    },
    /// Marks blob `data_id` lost, if its shards are still `shards`.
    MarkLost {
        data_id: u128,
        shards: Vec<ShardPlacement>,
        mark: LostMark,
    },
    /// Blob `data_id` is readable again.
    ClearLost {
        data_id: u128,
    },
    /// A new access key (`meta::keys`).
    CreateKey {
        access_key: String,
        key: keys::AccessKey,
    },
    DeleteKey {
        access_key: String,
    },
    /// Adds (`allow`) or takes away rights of a key on a bucket.
    GrantKey {
        access_key: String,
        bucket: String,
        perms: keys::Perms,
        allow: bool,
    },
    /// Sets a bucket's setting `name` (`meta::access`: policy, ACL, public access block,
    /// ownership).
    PutSetting {
        bucket: String,
        name: String,
        setting: access::Setting,
    },
    DeleteSetting {
        bucket: String,
        name: String,
    },
    /// Sets the ACL of an object's current version, if it is `version` (`None`: any).
    PutObjectAcl {
        bucket: String,
        key: String,
        version: Option<u64>,
        acl: access::Acl,
    },
    /// A `PutObject` whose new version gets its own settings (its ACL, its tags) in the
    /// same commit, so that no reader sees the version without them.
    PutObjectWith {
        bucket: String,
        key: String,
        meta: ObjectMeta,
        condition: PutCondition,
        settings: access::VersionSettings,
    },
    /// Sets (`None`: removes) the tags of an object's current version, if it is
    /// `version` (`None`: any).
    PutObjectTags {
        bucket: String,
        key: String,
        version: Option<u64>,
        tags: Option<Vec<access::Tag>>,
    },
    /// Removes each named version (`versions::remove`); answered with
    /// [`Applied::Removed`].
    DeleteVersions {
        bucket: String,
        targets: Vec<(String, versions::VersionRef)>,
    },
    /// A `DeleteObjects` whose delete markers (in buckets with versioning) say when
    /// they were made.
    DeleteObjectsAt {
        bucket: String,
        keys: Vec<String>,
        now_ms: u64,
    },
    /// A `CreateBucket` whose bucket gets these settings in the same commit (S3's
    /// object lock at creation: versioning Enabled and the lock configuration).
    CreateBucketWith {
        name: String,
        owner: String,
        created_ms: u64,
        settings: Vec<(String, access::Setting)>,
    },
    /// A `PutObjectWith` whose new version also gets the lock its request gave
    /// (`meta::lock`; the bucket must have object lock).
    PutObjectLocked {
        bucket: String,
        key: String,
        meta: ObjectMeta,
        condition: PutCondition,
        settings: access::VersionSettings,
        lock: lock::VersionLock,
    },
    /// A `DeleteVersions` that removes only the versions whose lock lets them go at
    /// `now_ms` (`bypass`: a GOVERNANCE retention yields); answered with
    /// [`Applied::Outcomes`].
    DeleteVersionsAt {
        bucket: String,
        targets: Vec<(String, versions::VersionRef)>,
        now_ms: u64,
        bypass: bool,
    },
    /// Changes the lock (retention, legal hold) of an object's version `version`
    /// (`None`: the current one) at `now_ms`, as the lock's rules allow.
    ChangeLock {
        bucket: String,
        key: String,
        version: Option<u64>,
        change: lock::LockChange,
        now_ms: u64,
    },
    /// The lifecycle task's expiry of `bucket`'s versions (per key, by log index) and
    /// uploads that its rules made due at `at`: apply does what is still due then
    /// (`meta::lifecycle`); answered with [`Applied::Expired`].
    Expire {
        bucket: String,
        keys: Vec<(String, Vec<u64>)>,
        uploads: Vec<String>,
        at: lifecycle::At,
    },
    /// A `CreateUpload` whose upload gets its settings (ACL, tags, lock, encryption) in
    /// the same commit, so that no replica holds the upload without them.
    CreateUploadWith {
        upload_id: String,
        head: UploadHead,
        settings: Vec<(String, access::Setting)>,
    },
    /// A `PutObjectWith` (or `PutObjectLocked`, with `lock`) whose new version's bytes
    /// are encrypted as `encryption` says, recorded in the same commit.
    PutObjectSealed {
        bucket: String,
        key: String,
        meta: ObjectMeta,
        condition: PutCondition,
        settings: access::VersionSettings,
        lock: Option<lock::VersionLock>,
        encryption: encryption::ObjectEncryption,
    },
}

/// A command as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    V1(CommandV1),
}

impl Command {
    /// Whether applying it may change who may do what: keys and grants, buckets (their
    /// owners) and bucket settings. Object and upload settings (ACLs, tags) are read
    /// per object, never cached.
    pub fn changes_access(&self) -> bool {
        let Command::V1(c) = self;
        match c {
            CommandV1::CreateBucket { .. }
            | CommandV1::DeleteBucket { .. }
            | CommandV1::CreateKey { .. }
            | CommandV1::DeleteKey { .. }
            | CommandV1::GrantKey { .. } => true,
            // A bucket's own settings; an upload's ACL or tags are read per request.
            CommandV1::PutSetting { name, .. } | CommandV1::DeleteSetting { name, .. } => {
                name.starts_with(access::BUCKET_SETTINGS)
            }
            _ => false,
        }
    }
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
    /// A part named in a completion is missing or has another ETag.
    InvalidPart(u32),
    /// The parts of a completion are not in ascending order.
    InvalidPartOrder,
    /// A part other than the last is smaller than [`PART_SIZE_MIN_BYTES`].
    EntityTooSmall(u32),
    /// A repair's guard failed: the blob is gone or its layout changed; nothing done.
    Stale,
    /// A key with this access key id exists.
    KeyExists,
    NoSuchAccessKey,
    /// An object version was written at this log index in a bucket with versioning;
    /// `null`: it is S3's `null` version (versioning suspended).
    Versioned {
        version: u64,
        null: bool,
    },
    /// A DELETE (or each key of a DeleteObjects) in a bucket with versioning wrote a
    /// delete marker at this log index.
    Marker {
        version: u64,
        null: bool,
    },
    /// A `DeleteVersions`: per target, whether it was a delete marker, if it was there.
    Removed(Vec<Option<bool>>),
    /// A `DeleteVersionsAt`: per target, what became of it.
    Outcomes(Vec<versions::Outcome>),
    /// An object version's lock refused the command.
    Locked,
    /// The bucket's state refuses the command: object lock needs versioning Enabled,
    /// then neither changes; a lock change needs a bucket with object lock.
    InvalidBucketState,
    /// What an `Expire` did.
    Expired(lifecycle::Expired),
}

/// The tables `apply` works on: [`MetaState`] in memory, and the redb tables of
/// `crate::meta::store`.
pub trait MetaTables {
    type Error;
    fn bucket(&self, name: &str) -> Result<Option<Bucket>, Self::Error>;
    fn put_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), Self::Error>;
    fn remove_bucket(&mut self, name: &str) -> Result<(), Self::Error>;
    fn bucket_is_empty(&self, name: &str) -> Result<bool, Self::Error>;
    fn object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error>;
    fn put_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error>;
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<(), Self::Error>;
    /// The noncurrent version `version` of (bucket, key).
    fn version(&self, bucket: &str, key: &str, version: u64)
    -> Result<Option<Stored>, Self::Error>;
    fn put_version(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error>;
    fn remove_version(&mut self, bucket: &str, key: &str, version: u64) -> Result<(), Self::Error>;
    /// The noncurrent versions of (bucket, key), oldest first.
    fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, Self::Error>;
    /// The newest noncurrent version of (bucket, key).
    fn newest_version(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error>;
    fn put_object_part(&mut self, version: u64, i: u32, p: &ObjectPart) -> Result<(), Self::Error>;
    fn object_parts(&self, version: u64) -> Result<Vec<ObjectPart>, Self::Error>;
    /// Row `index` of the object-parts table of the object at `version`.
    fn object_part(&self, version: u64, index: u32) -> Result<Option<ObjectPart>, Self::Error>;
    fn remove_object_parts(&mut self, version: u64) -> Result<(), Self::Error>;
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, Self::Error>;
    fn put_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), Self::Error>;
    fn remove_upload(&mut self, id: &str) -> Result<(), Self::Error>;
    fn upload_ids(&self) -> Result<Vec<String>, Self::Error>;
    fn part(&self, id: &str, part: u32) -> Result<Option<PartInfo>, Self::Error>;
    fn put_part(&mut self, id: &str, part: u32, info: &PartInfo) -> Result<(), Self::Error>;
    fn parts(&self, id: &str) -> Result<Vec<(u32, PartInfo)>, Self::Error>;
    fn remove_parts(&mut self, id: &str) -> Result<(), Self::Error>;
    fn put_member(&mut self, node: NodeId, member: &Member) -> Result<(), Self::Error>;
    fn remove_member(&mut self, node: NodeId) -> Result<(), Self::Error>;
    fn data_ref(&self, data_id: u128) -> Result<Option<DataRef>, Self::Error>;
    /// Inserts or replaces the row of `data_id`.
    fn put_data_ref(&mut self, data_id: u128, r: &DataRef) -> Result<(), Self::Error>;
    fn remove_data_ref(&mut self, data_id: u128) -> Result<(), Self::Error>;
    fn access_key(&self, id: &str) -> Result<Option<keys::AccessKey>, Self::Error>;
    fn put_access_key(&mut self, id: &str, key: &keys::AccessKey) -> Result<(), Self::Error>;
    fn remove_access_key(&mut self, id: &str) -> Result<(), Self::Error>;
    /// Every key, in id order.
    fn access_keys(&self) -> Result<Vec<(String, keys::AccessKey)>, Self::Error>;
    fn setting(&self, bucket: &str, name: &str) -> Result<Option<access::Setting>, Self::Error>;
    fn put_setting(
        &mut self,
        bucket: &str,
        name: &str,
        setting: &access::Setting,
    ) -> Result<(), Self::Error>;
    fn remove_setting(&mut self, bucket: &str, name: &str) -> Result<(), Self::Error>;
    /// Every setting of `bucket`, in name order.
    fn settings(&self, bucket: &str) -> Result<Vec<(String, access::Setting)>, Self::Error>;
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn refs(s: &MetaState) -> BTreeSet<u128> {
        s.data_refs.keys().copied().collect()
    }

    /// A blob of `size` bytes on node 1 (1+0), with data id `id`.
    pub(crate) fn layout(id: u128, size: u64) -> DataLayout {
        DataLayout {
            data_id: id,
            size,
            codec: CodecId::ReedSolomonGf8,
            k: 1,
            m: 0,
            chunk_size_bytes: 1 << 20,
            shards: vec![ShardPlacement {
                node: 1,
                sha256: [0; 32],
                sealed: true,
            }],
        }
    }

    /// Object metadata of `size` bytes stored as one blob with data id `size`.
    pub(crate) fn meta(size: u64) -> ObjectMeta {
        ObjectMeta {
            size,
            etag: format!("e{size}"),
            created_ms: 0,
            headers: ContentHeaders::default(),
            user_meta: BTreeMap::new(),
            checksum: None,
            data: ObjectData::Blob(layout(u128::from(size), size)),
        }
    }

    pub(crate) fn part(id: u128, size: u64) -> PartInfo {
        PartInfo {
            size,
            etag: format!("p{id}"),
            checksum: None,
            created_ms: 0,
            data: Some(layout(id, size)),
        }
    }

    /// State with bucket `b`, owned by `o`, made at log index 1.
    pub(crate) fn with_bucket() -> MetaState {
        let mut s = MetaState::default();
        let create = CommandV1::CreateBucket {
            name: "b".into(),
            owner: "o".into(),
            created_ms: 0,
        };
        assert_eq!(s.apply(1, &Command::V1(create)), Applied::Done);
        s
    }

    pub(crate) fn head(bucket: &str, key: &str) -> UploadHead {
        UploadHead {
            bucket: bucket.into(),
            key: key.into(),
            created_ms: 0,
            headers: ContentHeaders::default(),
            user_meta: BTreeMap::new(),
            checksum_algorithm: None,
        }
    }

    fn v1(c: CommandV1) -> Command {
        Command::V1(c)
    }

    fn bucket(n: &str) -> Command {
        v1(CommandV1::CreateBucket {
            name: n.into(),
            owner: "o".into(),
            created_ms: 1,
        })
    }

    fn put(b: &str, k: &str, size: u64, condition: PutCondition) -> Command {
        v1(CommandV1::PutObject {
            bucket: b.into(),
            key: k.into(),
            meta: meta(size),
            condition,
        })
    }

    #[test]
    fn a_table_of_commands_and_their_results() {
        let mut s = MetaState::default();
        let del = |k: &str| {
            v1(CommandV1::DeleteObject {
                bucket: "b".into(),
                key: k.into(),
            })
        };
        let del_bucket = || v1(CommandV1::DeleteBucket { name: "b".into() });
        use PutCondition::*;
        let steps: Vec<(Command, Applied)> = vec![
            (put("b", "k", 3, Always), Applied::NoSuchBucket),
            (bucket("b"), Applied::Done),
            (bucket("b"), Applied::BucketExists),
            (put("b", "k", 3, Always), Applied::Version(4)),
            (put("b", "k", 4, IfAbsent), Applied::PreconditionFailed),
            (put("b", "k2", 5, IfAbsent), Applied::Version(6)),
            (
                put("b", "k", 6, IfEtag("e4".into())),
                Applied::PreconditionFailed,
            ),
            (put("b", "k", 7, IfEtag("e3".into())), Applied::Version(8)),
            (del_bucket(), Applied::BucketNotEmpty),
            (del("k"), Applied::Done),
            (del("k"), Applied::NoSuchKey),
            (del("k2"), Applied::Done),
            (del_bucket(), Applied::Done),
            (del_bucket(), Applied::NoSuchBucket),
        ];
        for (i, (cmd, want)) in steps.into_iter().enumerate() {
            assert_eq!(s.apply(i as u64 + 1, &cmd), want, "step {}", i + 1);
        }
        assert!(refs(&s).is_empty(), "deleted objects hold no data refs");
    }

    /// Data refs follow every blob in and out: overwrite, delete, DeleteObjects.
    #[test]
    fn data_refs_name_exactly_the_live_blobs() {
        let mut s = MetaState::default();
        s.apply(1, &bucket("b"));
        s.apply(2, &put("b", "x", 10, PutCondition::Always));
        s.apply(3, &put("b", "y", 11, PutCondition::Always));
        assert_eq!(refs(&s), BTreeSet::from([10, 11]));
        s.apply(4, &put("b", "x", 12, PutCondition::Always));
        assert_eq!(refs(&s), BTreeSet::from([11, 12]));
        let failed = s.apply(5, &put("b", "x", 13, PutCondition::IfAbsent));
        assert_eq!(failed, Applied::PreconditionFailed);
        assert_eq!(
            refs(&s),
            BTreeSet::from([11, 12]),
            "a refused PUT adds none"
        );
        s.apply(
            6,
            &v1(CommandV1::DeleteObjects {
                bucket: "b".into(),
                keys: vec!["x".into(), "y".into(), "never".into()],
            }),
        );
        assert!(refs(&s).is_empty());
        assert!(s.objects.is_empty());
    }

    #[test]
    fn multipart_completion_checks_parts_and_moves_them() {
        let mut s = MetaState::default();
        s.apply(1, &bucket("b"));
        let create = v1(CommandV1::CreateUpload {
            upload_id: "u".into(),
            head: head("b", "big"),
        });
        let put_part = |n: u32, id: u128, size: u64| {
            v1(CommandV1::PutPart {
                upload_id: "u".into(),
                part: n,
                info: part(id, size),
            })
        };
        let complete = |parts: Vec<(u32, &str)>| {
            v1(CommandV1::CompleteUpload {
                upload_id: "u".into(),
                parts: parts.into_iter().map(|(n, e)| (n, e.to_string())).collect(),
                meta: ObjectMeta {
                    etag: "m-2".into(),
                    ..meta(0)
                },
                part_size_min: PART_SIZE_MIN_BYTES,
            })
        };
        assert_eq!(
            s.clone().apply(2, &put_part(1, 100, 1)),
            Applied::NoSuchUpload
        );
        s.apply(2, &create);
        let big = PART_SIZE_MIN_BYTES;
        s.apply(3, &put_part(1, 100, 1));
        s.apply(4, &put_part(1, 101, big)); // a re-upload replaces part 1
        s.apply(5, &put_part(2, 102, 7));
        s.apply(6, &put_part(3, 103, big));
        assert_eq!(refs(&s), BTreeSet::from([101, 102, 103]));
        assert_eq!(
            s.apply(7, &complete(vec![(2, "p102"), (1, "p101")])),
            Applied::InvalidPartOrder
        );
        assert_eq!(
            s.apply(8, &complete(vec![(1, "p100"), (3, "p103")])),
            Applied::InvalidPart(1),
            "part 1's ETag is the re-upload's now"
        );
        assert_eq!(
            s.apply(9, &complete(vec![(2, "p102"), (3, "p103")])),
            Applied::EntityTooSmall(2)
        );
        assert_eq!(
            s.apply(10, &complete(vec![(1, "p101"), (2, "p102")])),
            Applied::Version(10)
        );
        let o = s.object("b", "big").expect("completed");
        assert_eq!(o.meta.size, big + 7);
        assert_eq!(o.meta.etag, "m-2");
        assert_eq!(o.meta.data, ObjectData::Parts { count: 2 });
        let rows = MetaTables::object_parts(&s, 10).unwrap();
        assert_eq!(
            rows.iter()
                .map(|p| (p.number, p.offset))
                .collect::<Vec<_>>(),
            [(1, 0), (2, big)]
        );
        assert!(s.uploads.is_empty() && s.parts.is_empty());
        assert_eq!(refs(&s), BTreeSet::from([101, 102]), "part 3 is garbage");
        // Deleting the object drops its part rows and refs.
        s.apply(
            11,
            &v1(CommandV1::DeleteObject {
                bucket: "b".into(),
                key: "big".into(),
            }),
        );
        assert!(s.object_parts.is_empty() && refs(&s).is_empty());
    }

    #[test]
    fn deleting_a_bucket_drops_its_uploads() {
        let mut s = MetaState::default();
        s.apply(1, &bucket("b"));
        s.apply(2, &bucket("c"));
        for (i, (id, b)) in [("u1", "b"), ("u2", "c")].iter().enumerate() {
            s.apply(
                3 + i as u64,
                &v1(CommandV1::CreateUpload {
                    upload_id: (*id).into(),
                    head: head(b, "k"),
                }),
            );
            s.apply(
                5 + i as u64,
                &v1(CommandV1::PutPart {
                    upload_id: (*id).into(),
                    part: 1,
                    info: part(50 + i as u128, 1),
                }),
            );
        }
        assert_eq!(
            s.apply(7, &v1(CommandV1::DeleteBucket { name: "b".into() })),
            Applied::Done
        );
        assert_eq!(s.uploads.keys().collect::<Vec<_>>(), ["u2"]);
        assert_eq!(refs(&s), BTreeSet::from([51]));
    }

    #[test]
    fn listing_is_in_key_order_per_bucket() {
        let mut s = MetaState::default();
        s.apply(1, &bucket("b"));
        s.apply(2, &bucket("c"));
        for (i, k) in ["z", "a", "m"].iter().enumerate() {
            s.apply(
                3 + i as u64,
                &put("b", k, 1 + i as u64, PutCondition::Always),
            );
        }
        s.apply(9, &put("c", "a", 9, PutCondition::Always));
        let keys: Vec<&str> = s.objects_in("b").map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "m", "z"]);
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
        s.apply(2, &bucket("b"));
        s.apply(3, &put("b", "k", 4, PutCondition::Always));
        assert_eq!(decode_state(&encode_state(&s)), Some(s));
        assert_eq!(decode_command(&[0xff, 0xff, 0xff]), None);
    }
}
