//! The metadata state machine: buckets, objects, multipart uploads and members.
//!
//! Every mutation is a [`Command`] committed through Raft; `apply` is a pure function of
//! the state and the command, so every replica that applies the same log reaches the
//! same state. Object data never appears here, only where its shards are
//! ([`DataLayout`]).
//!
//! Commands are versioned (`Command::V1`): a newer node can still apply an older log.
//! `apply` runs on [`MetaTables`]: the redb tables of `crate::meta::store` on a node,
//! and [`MetaState`], ordered maps in memory, which is the simulator's model and the
//! snapshot digest's input.
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

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::env::NodeId;
use crate::erasure::CodecId;
use versions::NewVersion;

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

/// Removes an upload, its parts and their data refs.
fn drop_upload<T: MetaTables>(t: &mut T, id: &str) -> Result<bool, T::Error> {
    let Some(head) = t.upload(id)? else {
        return Ok(false);
    };
    access::upload_dropped(t, &head.bucket, id)?;
    for (_, info) in t.parts(id)? {
        if let Some(layout) = &info.data {
            t.remove_data_ref(layout.data_id)?;
        }
    }
    t.remove_parts(id)?;
    t.remove_upload(id)?;
    Ok(true)
}

/// Applies `command`, committed at log `index`, to `t`. Only storage errors fail it.
pub fn apply<T: MetaTables>(t: &mut T, index: u64, command: &Command) -> Result<Applied, T::Error> {
    let Command::V1(c) = command;
    Ok(match c {
        CommandV1::CreateBucket {
            name,
            owner,
            created_ms,
        } => create_bucket(t, name, owner, *created_ms, &[])?,
        CommandV1::CreateBucketWith {
            name,
            owner,
            created_ms,
            settings,
        } => create_bucket(t, name, owner, *created_ms, settings)?,
        CommandV1::DeleteBucket { name } => {
            if t.bucket(name)?.is_none() {
                return Ok(Applied::NoSuchBucket);
            }
            if !t.bucket_is_empty(name)? {
                return Ok(Applied::BucketNotEmpty);
            }
            for id in t.upload_ids()? {
                if t.upload(&id)?.is_some_and(|u| &u.bucket == name) {
                    drop_upload(t, &id)?;
                }
            }
            t.remove_bucket(name)?;
            keys::bucket_deleted(t, name)?;
            access::bucket_deleted(t, name)?;
            Applied::Done
        }
        CommandV1::PutObject {
            bucket,
            key,
            meta,
            condition,
        } => put_object(t, index, bucket, key, meta, condition)?,
        CommandV1::DeleteObject { bucket, key } => {
            if t.bucket(bucket)?.is_none() {
                return Ok(Applied::NoSuchBucket);
            }
            let marker = NewVersion::Marker { created_ms: 0 };
            versions::replace_current(t, (bucket, key), index, marker)?
        }
        CommandV1::DeleteObjects { bucket, keys } => delete_keys(t, index, bucket, keys, 0)?,
        CommandV1::DeleteObjectsAt {
            bucket,
            keys,
            now_ms,
        } => delete_keys(t, index, bucket, keys, *now_ms)?,
        CommandV1::CreateUpload { upload_id, head } => {
            if t.bucket(&head.bucket)?.is_none() {
                return Ok(Applied::NoSuchBucket);
            }
            // A reused id starts over, without the parts of the old upload.
            drop_upload(t, upload_id)?;
            t.put_upload(upload_id, head)?;
            Applied::Done
        }
        CommandV1::PutPart {
            upload_id,
            part,
            info,
        } => {
            let Some(head) = t.upload(upload_id)? else {
                return Ok(Applied::NoSuchUpload);
            };
            if info.data.as_ref().is_some_and(|l| !repair::distinct(l)) {
                return Ok(Applied::Stale);
            }
            if let Some(old) = t.part(upload_id, *part)?
                && let Some(layout) = &old.data
            {
                t.remove_data_ref(layout.data_id)?;
            }
            if let Some(layout) = &info.data {
                let site = Site::UploadPart {
                    upload_id: upload_id.clone(),
                    part: *part,
                };
                t.put_data_ref(layout.data_id, &DataRef::new(&head.bucket, &head.key, site))?;
            }
            t.put_part(upload_id, *part, info)?;
            Applied::Done
        }
        CommandV1::CompleteUpload {
            upload_id,
            parts,
            meta,
            part_size_min,
        } => complete_upload(t, index, upload_id, parts, meta, *part_size_min)?,
        CommandV1::AbortUpload { upload_id } => {
            if drop_upload(t, upload_id)? {
                Applied::Done
            } else {
                Applied::NoSuchUpload
            }
        }
        CommandV1::SetMember { node, member } => {
            t.put_member(*node, member)?;
            Applied::Done
        }
        CommandV1::RemoveMember { node } => {
            t.remove_member(*node)?;
            Applied::Done
        }
        CommandV1::RepairShard {
            data_id,
            index,
            expected,
            placement,
        } => repair::repair_shard(t, *data_id, *index, expected, placement)?,
        CommandV1::MarkLost {
            data_id,
            shards,
            mark,
        } => repair::mark_lost(t, *data_id, shards, mark)?,
        CommandV1::ClearLost { data_id } => repair::clear_lost(t, *data_id)?,
        CommandV1::CreateKey { access_key, key } => keys::create(t, access_key, key)?,
        CommandV1::DeleteKey { access_key } => keys::delete(t, access_key)?,
        CommandV1::GrantKey {
            access_key,
            bucket,
            perms,
            allow,
        } => keys::grant(t, access_key, bucket, *perms, *allow)?,
        CommandV1::PutSetting {
            bucket,
            name,
            setting,
        } => {
            if !lock::setting_allowed(t, bucket, name, Some(setting))? {
                return Ok(Applied::InvalidBucketState);
            }
            access::put(t, bucket, name, setting)?
        }
        CommandV1::DeleteSetting { bucket, name } => {
            if !lock::setting_allowed(t, bucket, name, None)? {
                return Ok(Applied::InvalidBucketState);
            }
            access::delete(t, bucket, name)?
        }
        CommandV1::PutObjectAcl {
            bucket,
            key,
            version,
            acl,
        } => access::put_object_acl(t, bucket, key, *version, acl)?,
        CommandV1::PutObjectWith {
            bucket,
            key,
            meta,
            condition,
            settings,
        } => {
            let applied = put_object(t, index, bucket, key, meta, condition)?;
            if let Applied::Version(v) | Applied::Versioned { version: v, .. } = applied {
                access::version_created(t, bucket, v, settings)?;
            }
            applied
        }
        CommandV1::PutObjectLocked {
            bucket,
            key,
            meta,
            condition,
            settings,
            lock: asked,
        } => put_object_given(
            t,
            index,
            (bucket, key, meta, condition),
            settings,
            Some(asked),
        )?,
        CommandV1::PutObjectTags {
            bucket,
            key,
            version,
            tags,
        } => access::put_object_tags(t, bucket, key, *version, tags.as_deref())?,
        CommandV1::DeleteVersions { bucket, targets } => {
            if t.bucket(bucket)?.is_none() {
                return Ok(Applied::NoSuchBucket);
            }
            let mut removed = Vec::with_capacity(targets.len());
            for (key, which) in targets {
                removed.push(versions::remove(t, (bucket, key), *which)?);
            }
            Applied::Removed(removed)
        }
        CommandV1::DeleteVersionsAt {
            bucket,
            targets,
            now_ms,
            bypass,
        } => {
            if t.bucket(bucket)?.is_none() {
                return Ok(Applied::NoSuchBucket);
            }
            let mut outcomes = Vec::with_capacity(targets.len());
            for (key, which) in targets {
                let found = versions::find(t, (bucket, key), *which)?;
                let outcome = match found {
                    Some(s) if !lock::removable(t, bucket, &s, *now_ms, *bypass)? => {
                        versions::Outcome::Locked
                    }
                    _ => versions::remove(t, (bucket, key), *which)?.into(),
                };
                outcomes.push(outcome);
            }
            Applied::Outcomes(outcomes)
        }
        CommandV1::ChangeLock {
            bucket,
            key,
            version,
            change,
            now_ms,
        } => lock::change(t, (bucket, key), *version, *change, *now_ms)?,
        CommandV1::Expire {
            bucket,
            keys,
            uploads,
            at,
        } => lifecycle::expire(t, index, bucket, (keys, uploads), *at)?,
        CommandV1::CreateUploadWith {
            upload_id,
            head,
            settings,
        } => {
            if t.bucket(&head.bucket)?.is_none() {
                return Ok(Applied::NoSuchBucket);
            }
            drop_upload(t, upload_id)?;
            t.put_upload(upload_id, head)?;
            for (name, setting) in settings {
                t.put_setting(&head.bucket, name, setting)?;
            }
            Applied::Done
        }
        CommandV1::PutObjectSealed {
            bucket,
            key,
            meta,
            condition,
            settings,
            lock,
            encryption,
        } => {
            let put = (bucket.as_str(), key.as_str(), meta, condition);
            let applied = put_object_given(t, index, put, settings, lock.as_ref())?;
            if let Applied::Version(v) | Applied::Versioned { version: v, .. } = applied {
                let row = encryption::object_encryption(v);
                t.put_setting(
                    bucket,
                    &row,
                    &access::Setting::Encryption(encryption.clone()),
                )?;
            }
            applied
        }
    })
}

/// Writes a version with the settings its request gave, and its lock (refused when the
/// bucket has no object lock: the proposer saw it locked, but a bucket made again since
/// is not).
fn put_object_given<T: MetaTables>(
    t: &mut T,
    index: u64,
    (bucket, key, meta, condition): (&str, &str, &ObjectMeta, &PutCondition),
    settings: &access::VersionSettings,
    asked: Option<&lock::VersionLock>,
) -> Result<Applied, T::Error> {
    if asked.is_some() && t.bucket(bucket)?.is_some() && lock::config(t, bucket)?.is_none() {
        return Ok(Applied::InvalidBucketState);
    }
    let applied = put_object(t, index, bucket, key, meta, condition)?;
    if let Applied::Version(v) | Applied::Versioned { version: v, .. } = applied {
        access::version_created(t, bucket, v, settings)?;
        if let Some(asked) = asked {
            lock::version_created(t, bucket, v, meta.created_ms, Some(asked))?;
        }
    }
    Ok(applied)
}

/// Makes bucket `name` with `settings`, unless it exists.
fn create_bucket<T: MetaTables>(
    t: &mut T,
    name: &str,
    owner: &str,
    created_ms: u64,
    settings: &[(String, access::Setting)],
) -> Result<Applied, T::Error> {
    if t.bucket(name)?.is_some() {
        return Ok(Applied::BucketExists);
    }
    let bucket = Bucket {
        owner: owner.to_string(),
        created_ms,
    };
    t.put_bucket(name, &bucket)?;
    keys::bucket_created(t, owner, name)?;
    for (setting_name, setting) in settings {
        t.put_setting(name, setting_name, setting)?;
    }
    Ok(Applied::Done)
}

/// Sets the current version of (bucket, key) to `meta`, written at log `index`, if
/// `condition` holds.
fn put_object<T: MetaTables>(
    t: &mut T,
    index: u64,
    bucket: &str,
    key: &str,
    meta: &ObjectMeta,
    condition: &PutCondition,
) -> Result<Applied, T::Error> {
    if t.bucket(bucket)?.is_none() {
        return Ok(Applied::NoSuchBucket);
    }
    // A delete marker is no object: the key is absent, and has no ETag.
    let current = t.object(bucket, key)?.filter(|c| !c.marker);
    let holds = match condition {
        PutCondition::Always => true,
        PutCondition::IfAbsent => current.is_none(),
        PutCondition::IfEtag(etag) => current.is_some_and(|c| &c.meta.etag == etag),
    };
    if !holds {
        return Ok(Applied::PreconditionFailed);
    }
    assert!(
        !matches!(meta.data, ObjectData::Parts { .. }),
        "a PUT writes one blob"
    );
    if let ObjectData::Blob(layout) = &meta.data
        && !repair::distinct(layout)
    {
        return Ok(Applied::Stale);
    }
    let applied = versions::replace_current(t, (bucket, key), index, NewVersion::Object(meta))?;
    if let Applied::Version(v) | Applied::Versioned { version: v, .. } = applied {
        lock::version_created(t, bucket, v, meta.created_ms, None)?;
    }
    Ok(applied)
}

/// Deletes the current version of each key (where the bucket has versioning, writes a
/// delete marker made at `now_ms` instead).
fn delete_keys<T: MetaTables>(
    t: &mut T,
    index: u64,
    bucket: &str,
    keys: &[String],
    now_ms: u64,
) -> Result<Applied, T::Error> {
    if t.bucket(bucket)?.is_none() {
        return Ok(Applied::NoSuchBucket);
    }
    // A key named twice gets one marker (both would be this index's version).
    let keys: BTreeSet<&String> = keys.iter().collect();
    let mut applied = Applied::Done;
    for key in keys {
        let marker = NewVersion::Marker { created_ms: now_ms };
        if let m @ Applied::Marker { .. } =
            versions::replace_current(t, (bucket, key), index, marker)?
        {
            applied = m;
        }
    }
    Ok(applied)
}

fn complete_upload<T: MetaTables>(
    t: &mut T,
    index: u64,
    upload_id: &str,
    listed: &[(u32, String)],
    meta: &ObjectMeta,
    part_size_min: u64,
) -> Result<Applied, T::Error> {
    let Some(head) = t.upload(upload_id)? else {
        return Ok(Applied::NoSuchUpload);
    };
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Ok(Applied::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (number, etag) in listed {
        match t.part(upload_id, *number)? {
            Some(info) if &info.etag == etag => chosen.push((*number, info)),
            _ => return Ok(Applied::InvalidPart(*number)),
        }
    }
    if chosen.is_empty() {
        return Ok(Applied::InvalidPart(0));
    }
    let last = chosen.len() - 1;
    if let Some((number, _)) = chosen[..last]
        .iter()
        .find(|(_, info)| info.size < part_size_min)
    {
        return Ok(Applied::EntityTooSmall(*number));
    }
    // The parts not chosen are garbage now; the chosen ones move to the object.
    let chosen_numbers: BTreeSet<u32> = chosen.iter().map(|(n, _)| *n).collect();
    for (number, info) in t.parts(upload_id)? {
        if !chosen_numbers.contains(&number)
            && let Some(layout) = &info.data
        {
            t.remove_data_ref(layout.data_id)?;
        }
    }
    t.remove_parts(upload_id)?;
    t.remove_upload(upload_id)?;
    access::upload_completed(t, &head.bucket, upload_id, index)?;
    let mut offset = 0;
    for (i, (number, info)) in chosen.into_iter().enumerate() {
        let size = info.size;
        if let Some(layout) = &info.data {
            let site = Site::ObjectPart {
                version: index,
                index: i as u32,
            };
            t.put_data_ref(layout.data_id, &DataRef::new(&head.bucket, &head.key, site))?;
        }
        let row = ObjectPart {
            number,
            offset,
            info,
        };
        t.put_object_part(index, i as u32, &row)?;
        offset += size;
    }
    let mut meta = meta.clone();
    meta.size = offset;
    meta.data = ObjectData::Parts {
        count: listed.len() as u32,
    };
    let applied = versions::replace_current(
        t,
        (&head.bucket, &head.key),
        index,
        NewVersion::Object(&meta),
    )?;
    // An upload's own lock moved to the version above; else the bucket's default.
    lock::version_created(t, &head.bucket, index, meta.created_ms, None)?;
    Ok(applied)
}

/// The replicated metadata in memory: the simulator's model, and the input of the
/// applied-log digest. The same tables as `crate::meta::store`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub buckets: BTreeMap<String, Bucket>,
    /// (bucket, key) -> current version.
    pub objects: BTreeMap<(String, String), Stored>,
    /// (bucket, key, version) -> noncurrent version.
    pub versions: BTreeMap<(String, String, u64), Stored>,
    /// (version, index) -> part of a completed multipart object.
    pub object_parts: BTreeMap<(u64, u32), ObjectPart>,
    pub uploads: BTreeMap<String, UploadHead>,
    /// (upload id, part number) -> part.
    pub parts: BTreeMap<(String, u32), PartInfo>,
    pub members: BTreeMap<NodeId, Member>,
    pub data_refs: BTreeMap<u128, DataRef>,
    /// Access key id -> key.
    pub keys: BTreeMap<String, keys::AccessKey>,
    /// (bucket, name) -> setting.
    pub settings: BTreeMap<(String, String), access::Setting>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

fn triple(a: &str, b: &str, v: u64) -> (String, String, u64) {
    (a.to_string(), b.to_string(), v)
}

impl MetaTables for MetaState {
    type Error = std::convert::Infallible;

    fn bucket(&self, name: &str) -> Result<Option<Bucket>, Self::Error> {
        Ok(self.buckets.get(name).cloned())
    }
    fn put_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), Self::Error> {
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
    fn object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error> {
        Ok(self.objects.get(&pair(bucket, key)).cloned())
    }
    fn put_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error> {
        self.objects.insert(pair(bucket, key), s.clone());
        Ok(())
    }
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<(), Self::Error> {
        self.objects.remove(&pair(bucket, key));
        Ok(())
    }
    fn version(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, Self::Error> {
        Ok(self.versions.get(&triple(bucket, key, v)).cloned())
    }
    fn put_version(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error> {
        self.versions
            .insert(triple(bucket, key, s.version), s.clone());
        Ok(())
    }
    fn remove_version(&mut self, bucket: &str, key: &str, v: u64) -> Result<(), Self::Error> {
        self.versions.remove(&triple(bucket, key, v));
        Ok(())
    }
    fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, Self::Error> {
        Ok(self
            .versions
            .range(triple(bucket, key, 0)..=triple(bucket, key, u64::MAX))
            .map(|(_, s)| s.clone())
            .collect())
    }
    fn newest_version(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error> {
        Ok(self
            .versions
            .range(triple(bucket, key, 0)..=triple(bucket, key, u64::MAX))
            .next_back()
            .map(|(_, s)| s.clone()))
    }
    fn put_object_part(&mut self, v: u64, i: u32, p: &ObjectPart) -> Result<(), Self::Error> {
        self.object_parts.insert((v, i), p.clone());
        Ok(())
    }
    fn object_parts(&self, version: u64) -> Result<Vec<ObjectPart>, Self::Error> {
        Ok(self
            .object_parts
            .range((version, 0)..=(version, u32::MAX))
            .map(|(_, p)| p.clone())
            .collect())
    }
    fn object_part(&self, version: u64, index: u32) -> Result<Option<ObjectPart>, Self::Error> {
        Ok(self.object_parts.get(&(version, index)).cloned())
    }
    fn remove_object_parts(&mut self, version: u64) -> Result<(), Self::Error> {
        self.object_parts.retain(|(v, _), _| *v != version);
        Ok(())
    }
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, Self::Error> {
        Ok(self.uploads.get(id).cloned())
    }
    fn put_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), Self::Error> {
        self.uploads.insert(id.to_string(), head.clone());
        Ok(())
    }
    fn remove_upload(&mut self, id: &str) -> Result<(), Self::Error> {
        self.uploads.remove(id);
        Ok(())
    }
    fn upload_ids(&self) -> Result<Vec<String>, Self::Error> {
        Ok(self.uploads.keys().cloned().collect())
    }
    fn part(&self, id: &str, part: u32) -> Result<Option<PartInfo>, Self::Error> {
        Ok(self.parts.get(&(id.to_string(), part)).cloned())
    }
    fn put_part(&mut self, id: &str, part: u32, info: &PartInfo) -> Result<(), Self::Error> {
        self.parts.insert((id.to_string(), part), info.clone());
        Ok(())
    }
    fn parts(&self, id: &str) -> Result<Vec<(u32, PartInfo)>, Self::Error> {
        Ok(self
            .parts
            .range((id.to_string(), 0)..=(id.to_string(), u32::MAX))
            .map(|((_, n), p)| (*n, p.clone()))
            .collect())
    }
    fn remove_parts(&mut self, id: &str) -> Result<(), Self::Error> {
        self.parts.retain(|(u, _), _| u != id);
        Ok(())
    }
    fn put_member(&mut self, node: NodeId, member: &Member) -> Result<(), Self::Error> {
        self.members.insert(node, member.clone());
        Ok(())
    }
    fn remove_member(&mut self, node: NodeId) -> Result<(), Self::Error> {
        self.members.remove(&node);
        Ok(())
    }
    fn data_ref(&self, data_id: u128) -> Result<Option<DataRef>, Self::Error> {
        Ok(self.data_refs.get(&data_id).cloned())
    }
    fn put_data_ref(&mut self, data_id: u128, r: &DataRef) -> Result<(), Self::Error> {
        self.data_refs.insert(data_id, r.clone());
        Ok(())
    }
    fn remove_data_ref(&mut self, data_id: u128) -> Result<(), Self::Error> {
        self.data_refs.remove(&data_id);
        Ok(())
    }
    fn access_key(&self, id: &str) -> Result<Option<keys::AccessKey>, Self::Error> {
        Ok(self.keys.get(id).cloned())
    }
    fn put_access_key(&mut self, id: &str, key: &keys::AccessKey) -> Result<(), Self::Error> {
        self.keys.insert(id.to_string(), key.clone());
        Ok(())
    }
    fn remove_access_key(&mut self, id: &str) -> Result<(), Self::Error> {
        self.keys.remove(id);
        Ok(())
    }
    fn access_keys(&self) -> Result<Vec<(String, keys::AccessKey)>, Self::Error> {
        Ok(self
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn setting(&self, bucket: &str, name: &str) -> Result<Option<access::Setting>, Self::Error> {
        Ok(self.settings.get(&pair(bucket, name)).cloned())
    }
    fn put_setting(
        &mut self,
        bucket: &str,
        name: &str,
        setting: &access::Setting,
    ) -> Result<(), Self::Error> {
        self.settings.insert(pair(bucket, name), setting.clone());
        Ok(())
    }
    fn remove_setting(&mut self, bucket: &str, name: &str) -> Result<(), Self::Error> {
        self.settings.remove(&pair(bucket, name));
        Ok(())
    }
    fn settings(&self, bucket: &str) -> Result<Vec<(String, access::Setting)>, Self::Error> {
        Ok(self
            .settings
            .range(pair(bucket, "")..)
            .take_while(|((b, _), _)| b == bucket)
            .map(|((_, n), v)| (n.clone(), v.clone()))
            .collect())
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
        self.objects.get(&pair(bucket, key))
    }
}

// No message limit here: the state can be large. The wire limits apply where bytes
// come from peers (`wire::MESSAGE_BYTES_MAX`).
pub(crate) use crate::wire::{decode_record as decode, encode_record as encode};

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
