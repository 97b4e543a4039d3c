//! The state machine's home: the replicated metadata in redb, on a file of the node's
//! Disk (`Disk::storage_backend`: the real file in production, a SimDisk file under
//! simulation, with its crash model).
//!
//! Tables are those of `crate::meta` (buckets, objects, versions, object parts, uploads,
//! parts, members, data refs, keys, settings), each value bincode-encoded, plus `raft`, which holds the applied
//! mark: the index, term and configuration the tables reflect.
//!
//! Snapshots travel as a stream of [`Record`]s: a sender pages through one read
//! transaction with [`MetaReader::export_chunk`]; a receiver writes them into `incoming.*`
//! tables over several commits and swaps them in, with the new mark, in one durable
//! commit ([`MetaStore::finish_install`]). Until that commit readers see the old state;
//! a crash before it rolls back to the old state (the incoming commits are not durable).
//!
//! Architecture Invariant: the tables and the mark change only together, in one write
//! transaction. Most commits are not durable (no sync: the Raft log already holds the
//! entries); a crash rolls redb back to its last durable commit, mark included. So on
//! restart the tables are exactly the state after the marked index, and the Raft log
//! must hold everything after the last *durable* mark: the driver compacts only up to
//! it.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use protobuf::Message as _;
use raft::eraftpb::ConfState;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};

use crate::env::NodeId;
use crate::meta::access::Setting;
use crate::meta::keys::AccessKey;
use crate::meta::{
    self, Applied, Bucket, Command, DataLayout, DataRef, Member, MetaState, MetaTables, ObjectPart,
    PartInfo, Stored, UploadHead,
};

mod sites;
pub use sites::Sites;

/// One set of the state's tables (the live one, or a snapshot being received).
struct Tables {
    buckets: TableDefinition<'static, &'static str, &'static [u8]>,
    objects: TableDefinition<'static, (&'static str, &'static str), &'static [u8]>,
    object_parts: TableDefinition<'static, (u64, u32), &'static [u8]>,
    uploads: TableDefinition<'static, &'static str, &'static [u8]>,
    parts: TableDefinition<'static, (&'static str, u32), &'static [u8]>,
    members: TableDefinition<'static, u64, &'static [u8]>,
    data_refs: TableDefinition<'static, u128, &'static [u8]>,
    keys: TableDefinition<'static, &'static str, &'static [u8]>,
    settings: TableDefinition<'static, (&'static str, &'static str), &'static [u8]>,
    versions: TableDefinition<'static, (&'static str, &'static str, u64), &'static [u8]>,
}

/// Table names, in the order of [`Tables`]; a snapshot being received goes to `incoming.*`.
const LIVE_NAMES: [&str; 10] = [
    "buckets",
    "objects",
    "object_parts",
    "uploads",
    "parts",
    "members",
    "data_refs",
    "keys",
    "settings",
    "versions",
];
const INCOMING_NAMES: [&str; 10] = [
    "incoming.buckets",
    "incoming.objects",
    "incoming.object_parts",
    "incoming.uploads",
    "incoming.parts",
    "incoming.members",
    "incoming.data_refs",
    "incoming.keys",
    "incoming.settings",
    "incoming.versions",
];

const fn tables(names: [&'static str; 10]) -> Tables {
    Tables {
        buckets: TableDefinition::new(names[0]),
        objects: TableDefinition::new(names[1]),
        object_parts: TableDefinition::new(names[2]),
        uploads: TableDefinition::new(names[3]),
        parts: TableDefinition::new(names[4]),
        members: TableDefinition::new(names[5]),
        data_refs: TableDefinition::new(names[6]),
        keys: TableDefinition::new(names[7]),
        settings: TableDefinition::new(names[8]),
        versions: TableDefinition::new(names[9]),
    }
}

const LIVE: Tables = tables(LIVE_NAMES);
const INCOMING: Tables = tables(INCOMING_NAMES);

const RAFT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft");
const MARK_KEY: &str = "applied";

/// One row of the state, as a snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Record {
    Bucket(String, Bucket),
    Object(String, String, Stored),
    ObjectPart(u64, u32, ObjectPart),
    Upload(String, UploadHead),
    Part(String, u32, PartInfo),
    Member(NodeId, Member),
    DataRef(u128, DataRef),
    Key(String, AccessKey),
    Setting(String, String, Setting),
    Version(String, String, Stored),
}

/// Where an export stopped: the table it is in and the last key sent from it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cursor {
    #[default]
    Start,
    Bucket(Option<String>),
    Object(Option<(String, String)>),
    ObjectPart(Option<(u64, u32)>),
    Upload(Option<String>),
    Part(Option<(String, u32)>),
    Member(Option<NodeId>),
    DataRef(Option<u128>),
    Key(Option<String>),
    Setting(Option<(String, String)>),
    Version(Option<(String, String, u64)>),
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("metadata store: {0}")]
pub struct StoreError(pub String);

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        Self(e.into().to_string())
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError(format!("{what} does not decode"))
}

fn decoded<T: serde::de::DeserializeOwned>(what: &str, v: &[u8]) -> Result<T, StoreError> {
    meta::decode(v).ok_or_else(|| corrupt(what))
}

/// What the tables reflect: the state after log entry `index` of `term`, under `conf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mark {
    pub index: u64,
    pub term: u64,
    pub conf: ConfState,
}

impl Mark {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.term.to_le_bytes());
        out.extend_from_slice(&self.conf.write_to_bytes().expect("conf state encodes"));
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let index = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
        let term = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
        let conf = ConfState::parse_from_bytes(&b[16..]).ok()?;
        Some(Self { index, term, conf })
    }
}

/// One committed entry for the state machine: a command, or nothing (a leader's no-op,
/// a configuration change, an undecodable command) that still advances the mark.
pub struct Item {
    pub index: u64,
    pub command: Option<Command>,
}

/// redb's page cache: the bound on the state machine's resident memory, whatever the
/// number of objects (redb's default is 1 GiB). Pages beyond it are read from the file,
/// which the OS caches.
pub const CACHE_BYTES: usize = 64 << 20;

pub struct MetaStore {
    db: Database,
    /// Counts applied changes to who may do what (keys, grants, buckets and their
    /// settings), bumped after their commit: a cache of access state read at epoch `e`
    /// is still true for any reader that saw `e` (see [`MetaReader::access_epoch`]).
    access_epoch: AtomicU64,
}

/// One table set, open inside one write transaction.
struct Writer<'t> {
    buckets: redb::Table<'t, &'static str, &'static [u8]>,
    objects: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    object_parts: redb::Table<'t, (u64, u32), &'static [u8]>,
    uploads: redb::Table<'t, &'static str, &'static [u8]>,
    parts: redb::Table<'t, (&'static str, u32), &'static [u8]>,
    members: redb::Table<'t, u64, &'static [u8]>,
    data_refs: redb::Table<'t, u128, &'static [u8]>,
    keys: redb::Table<'t, &'static str, &'static [u8]>,
    settings: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    versions: redb::Table<'t, (&'static str, &'static str, u64), &'static [u8]>,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t redb::WriteTransaction, set: &Tables) -> Result<Self, StoreError> {
        Ok(Self {
            buckets: txn.open_table(set.buckets)?,
            objects: txn.open_table(set.objects)?,
            object_parts: txn.open_table(set.object_parts)?,
            uploads: txn.open_table(set.uploads)?,
            parts: txn.open_table(set.parts)?,
            members: txn.open_table(set.members)?,
            data_refs: txn.open_table(set.data_refs)?,
            keys: txn.open_table(set.keys)?,
            settings: txn.open_table(set.settings)?,
            versions: txn.open_table(set.versions)?,
        })
    }

    fn insert(&mut self, record: &Record) -> Result<(), StoreError> {
        match record {
            Record::Bucket(name, b) => self.put_bucket(name, b),
            Record::Object(bucket, key, s) => self.put_object(bucket, key, s),
            Record::ObjectPart(v, i, p) => self.put_object_part(*v, *i, p),
            Record::Upload(id, head) => self.put_upload(id, head),
            Record::Part(id, n, info) => self.put_part(id, *n, info),
            Record::Member(node, m) => self.put_member(*node, m),
            Record::DataRef(id, r) => self.put_data_ref(*id, r),
            Record::Key(id, k) => self.put_access_key(id, k),
            Record::Setting(bucket, name, v) => self.put_setting(bucket, name, v),
            Record::Version(bucket, key, s) => self.put_version(bucket, key, s),
        }
    }
}

impl MetaTables for Writer<'_> {
    type Error = StoreError;

    fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        self.buckets
            .get(name)?
            .map(|v| decoded("bucket", v.value()))
            .transpose()
    }
    fn put_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), StoreError> {
        self.buckets.insert(name, meta::encode(bucket).as_slice())?;
        Ok(())
    }
    fn remove_bucket(&mut self, name: &str) -> Result<(), StoreError> {
        self.buckets.remove(name)?;
        Ok(())
    }
    fn bucket_is_empty(&self, name: &str) -> Result<bool, StoreError> {
        let first = self.objects.range((name, "")..)?.next().transpose()?;
        Ok(first.is_none_or(|(k, _)| k.value().0 != name))
    }
    fn object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StoreError> {
        self.objects
            .get((bucket, key))?
            .map(|v| decoded("object", v.value()))
            .transpose()
    }
    fn put_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), StoreError> {
        self.objects
            .insert((bucket, key), meta::encode(s).as_slice())?;
        Ok(())
    }
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.objects.remove((bucket, key))?;
        Ok(())
    }
    fn version(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, StoreError> {
        self.versions
            .get((bucket, key, v))?
            .map(|v| decoded("version", v.value()))
            .transpose()
    }
    fn put_version(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), StoreError> {
        self.versions
            .insert((bucket, key, s.version), meta::encode(s).as_slice())?;
        Ok(())
    }
    fn remove_version(&mut self, bucket: &str, key: &str, v: u64) -> Result<(), StoreError> {
        self.versions.remove((bucket, key, v))?;
        Ok(())
    }
    fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, StoreError> {
        versions_of(&self.versions, bucket, key)
    }
    fn newest_version(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StoreError> {
        let mut rows = self
            .versions
            .range((bucket, key, 0)..=(bucket, key, u64::MAX))?;
        rows.next_back()
            .map(|row| decoded("version", row?.1.value()))
            .transpose()
    }
    fn put_object_part(&mut self, v: u64, i: u32, p: &ObjectPart) -> Result<(), StoreError> {
        self.object_parts
            .insert((v, i), meta::encode(p).as_slice())?;
        Ok(())
    }
    fn object_parts(&self, version: u64) -> Result<Vec<ObjectPart>, StoreError> {
        let mut out = Vec::new();
        for row in self
            .object_parts
            .range((version, 0)..=(version, u32::MAX))?
        {
            out.push(decoded("object part", row?.1.value())?);
        }
        Ok(out)
    }
    fn object_part(&self, version: u64, index: u32) -> Result<Option<ObjectPart>, StoreError> {
        self.object_parts
            .get((version, index))?
            .map(|v| decoded("object part", v.value()))
            .transpose()
    }
    fn remove_object_parts(&mut self, version: u64) -> Result<(), StoreError> {
        self.object_parts
            .retain_in((version, 0)..=(version, u32::MAX), |_, _| false)?;
        Ok(())
    }
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, StoreError> {
        self.uploads
            .get(id)?
            .map(|v| decoded("upload", v.value()))
            .transpose()
    }
    fn put_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), StoreError> {
        self.uploads.insert(id, meta::encode(head).as_slice())?;
        Ok(())
    }
    fn remove_upload(&mut self, id: &str) -> Result<(), StoreError> {
        self.uploads.remove(id)?;
        Ok(())
    }
    fn upload_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for row in self.uploads.iter()? {
            out.push(row?.0.value().to_string());
        }
        Ok(out)
    }
    fn part(&self, id: &str, part: u32) -> Result<Option<PartInfo>, StoreError> {
        self.parts
            .get((id, part))?
            .map(|v| decoded("part", v.value()))
            .transpose()
    }
    fn put_part(&mut self, id: &str, part: u32, info: &PartInfo) -> Result<(), StoreError> {
        self.parts
            .insert((id, part), meta::encode(info).as_slice())?;
        Ok(())
    }
    fn parts(&self, id: &str) -> Result<Vec<(u32, PartInfo)>, StoreError> {
        let mut out = Vec::new();
        for row in self.parts.range((id, 0)..=(id, u32::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, decoded("part", v.value())?));
        }
        Ok(out)
    }
    fn remove_parts(&mut self, id: &str) -> Result<(), StoreError> {
        self.parts
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        Ok(())
    }
    fn put_member(&mut self, node: NodeId, m: &Member) -> Result<(), StoreError> {
        self.members.insert(node, meta::encode(m).as_slice())?;
        Ok(())
    }
    fn remove_member(&mut self, node: NodeId) -> Result<(), StoreError> {
        self.members.remove(node)?;
        Ok(())
    }
    fn data_ref(&self, data_id: u128) -> Result<Option<DataRef>, StoreError> {
        self.data_refs
            .get(data_id)?
            .map(|v| decoded("data ref", v.value()))
            .transpose()
    }
    fn put_data_ref(&mut self, data_id: u128, r: &DataRef) -> Result<(), StoreError> {
        self.data_refs.insert(data_id, meta::encode(r).as_slice())?;
        Ok(())
    }
    fn remove_data_ref(&mut self, data_id: u128) -> Result<(), StoreError> {
        self.data_refs.remove(data_id)?;
        Ok(())
    }
    fn access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        self.keys
            .get(id)?
            .map(|v| decoded("access key", v.value()))
            .transpose()
    }
    fn put_access_key(&mut self, id: &str, key: &AccessKey) -> Result<(), StoreError> {
        self.keys.insert(id, meta::encode(key).as_slice())?;
        Ok(())
    }
    fn remove_access_key(&mut self, id: &str) -> Result<(), StoreError> {
        self.keys.remove(id)?;
        Ok(())
    }
    fn access_keys(&self) -> Result<Vec<(String, AccessKey)>, StoreError> {
        let mut out = Vec::new();
        for row in self.keys.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), decoded("access key", v.value())?));
        }
        Ok(out)
    }
    fn setting(&self, bucket: &str, name: &str) -> Result<Option<Setting>, StoreError> {
        self.settings
            .get((bucket, name))?
            .map(|v| decoded("setting", v.value()))
            .transpose()
    }
    fn put_setting(&mut self, bucket: &str, name: &str, v: &Setting) -> Result<(), StoreError> {
        self.settings
            .insert((bucket, name), meta::encode(v).as_slice())?;
        Ok(())
    }
    fn remove_setting(&mut self, bucket: &str, name: &str) -> Result<(), StoreError> {
        self.settings.remove((bucket, name))?;
        Ok(())
    }
    fn settings(&self, bucket: &str) -> Result<Vec<(String, Setting)>, StoreError> {
        settings_of(&self.settings, bucket)
    }
}

/// The noncurrent versions of (bucket, key), oldest first.
fn versions_of(
    table: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    bucket: &str,
    key: &str,
) -> Result<Vec<Stored>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((bucket, key, 0)..=(bucket, key, u64::MAX))? {
        out.push(decoded("version", row?.1.value())?);
    }
    Ok(out)
}

/// Every setting of `bucket`, in name order.
fn settings_of(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    bucket: &str,
) -> Result<Vec<(String, Setting)>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((bucket, "")..)? {
        let (k, v) = row?;
        let (b, name) = k.value();
        if b != bucket {
            break;
        }
        out.push((name.to_string(), decoded("setting", v.value())?));
    }
    Ok(out)
}

impl MetaStore {
    /// Opens (or creates) the store on `backend`; redb repairs an interrupted commit.
    pub fn open(backend: impl redb::StorageBackend) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)?;
        let txn = db.begin_write()?;
        drop(Writer::open(&txn, &LIVE)?);
        txn.open_table(RAFT)?;
        txn.commit()?;
        Ok(Self {
            db,
            access_epoch: AtomicU64::new(0),
        })
    }

    /// The applied mark (all zero for a new store).
    pub fn mark(&self) -> Result<Mark, StoreError> {
        self.reader()?.mark()
    }

    /// Applies `items` in order and moves the mark to `mark`, in one commit. A commit
    /// that is not `durable` costs no sync; a crash rolls the store back to the last
    /// durable one (mark included), and the Raft log replays what follows it.
    pub fn apply(
        &self,
        items: &[Item],
        mark: &Mark,
        durable: bool,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        let mut results = Vec::with_capacity(items.len());
        {
            let mut w = Writer::open(&txn, &LIVE)?;
            for item in items {
                if let Some(command) = &item.command {
                    results.push(meta::apply(&mut w, item.index, command)?);
                } else {
                    results.push(Applied::Done);
                }
            }
            txn.open_table(RAFT)?
                .insert(MARK_KEY, mark.encode().as_slice())?;
        }
        txn.commit()?;
        if items.iter().any(|i| {
            i.command
                .as_ref()
                .is_some_and(meta::Command::changes_access)
        }) {
            self.access_epoch.fetch_add(1, Ordering::SeqCst);
        }
        Ok(results)
    }

    /// Starts receiving a snapshot: empty `incoming.*` tables (a leftover of an earlier,
    /// interrupted receive is dropped).
    pub fn begin_install(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        for name in INCOMING_NAMES {
            txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new(name))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Adds received records to the `incoming.*` tables (not durable, not visible).
    pub fn install_chunk(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut w = Writer::open(&txn, &INCOMING)?;
            for record in records {
                w.insert(record)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces the state with the received one at `mark`, in one durable commit: a
    /// crash leaves either the old state or the new, never a mix.
    pub fn finish_install(&self, mark: &Mark) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        // Opening creates a table the snapshot had no rows for.
        drop(Writer::open(&txn, &INCOMING)?);
        for (live, incoming) in LIVE_NAMES.into_iter().zip(INCOMING_NAMES) {
            txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new(live))?;
            txn.rename_table(
                redb::TableDefinition::<&str, &[u8]>::new(incoming),
                redb::TableDefinition::<&str, &[u8]>::new(live),
            )?;
        }
        txn.open_table(RAFT)?
            .insert(MARK_KEY, mark.encode().as_slice())?;
        txn.commit()?;
        self.access_epoch.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// A consistent view of the tables (they do not change under it).
    pub fn reader(&self) -> Result<MetaReader, StoreError> {
        // The epoch before the view: the view holds at least every change it counts.
        let access_epoch = self.access_epoch.load(Ordering::SeqCst);
        Ok(MetaReader {
            txn: self.db.begin_read()?,
            access_epoch,
        })
    }
}

/// A read transaction on the store.
pub struct MetaReader {
    txn: ReadTransaction,
    access_epoch: u64,
}

impl MetaReader {
    /// The store's access epoch, read just before this view was opened: the view holds
    /// every access change that epoch counts (and perhaps later ones). Access state read
    /// through a view of epoch `e` may serve any later view of the same epoch.
    pub fn access_epoch(&self) -> u64 {
        self.access_epoch
    }

    pub fn mark(&self) -> Result<Mark, StoreError> {
        match self.txn.open_table(RAFT)?.get(MARK_KEY)? {
            Some(v) => Mark::decode(v.value()).ok_or_else(|| corrupt("applied mark")),
            None => Ok(Mark::default()),
        }
    }

    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        self.txn
            .open_table(LIVE.buckets)?
            .get(name)?
            .map(|v| decoded("bucket", v.value()))
            .transpose()
    }

    pub fn access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        self.txn
            .open_table(LIVE.keys)?
            .get(id)?
            .map(|v| decoded("access key", v.value()))
            .transpose()
    }

    /// A bucket's own settings (names beginning with `meta::access::BUCKET_SETTINGS`),
    /// in one range read.
    pub fn bucket_settings(&self, bucket: &str) -> Result<Vec<(String, Setting)>, StoreError> {
        let prefix = crate::meta::access::BUCKET_SETTINGS;
        let table = self.txn.open_table(LIVE.settings)?;
        let mut out = Vec::new();
        for row in table.range((bucket, prefix)..)? {
            let (k, v) = row?;
            let (b, name) = k.value();
            if b != bucket || !name.starts_with(prefix) {
                break;
            }
            out.push((name.to_string(), decoded("setting", v.value())?));
        }
        Ok(out)
    }

    /// A bucket's setting `name` (`meta::access`).
    pub fn setting(&self, bucket: &str, name: &str) -> Result<Option<Setting>, StoreError> {
        self.txn
            .open_table(LIVE.settings)?
            .get((bucket, name))?
            .map(|v| decoded("setting", v.value()))
            .transpose()
    }

    /// Every access key, in id order.
    pub fn access_keys(&self) -> Result<Vec<(String, AccessKey)>, StoreError> {
        let mut out = Vec::new();
        for row in self.txn.open_table(LIVE.keys)?.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), decoded("access key", v.value())?));
        }
        Ok(out)
    }

    /// Every bucket, in name order.
    pub fn buckets(&self) -> Result<Vec<(String, Bucket)>, StoreError> {
        let mut out = Vec::new();
        for row in self.txn.open_table(LIVE.buckets)?.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), decoded("bucket", v.value())?));
        }
        Ok(out)
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StoreError> {
        self.txn
            .open_table(LIVE.objects)?
            .get((bucket, key))?
            .map(|v| decoded("object", v.value()))
            .transpose()
    }

    /// The noncurrent versions of (bucket, key), oldest first.
    pub fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, StoreError> {
        versions_of(&self.txn.open_table(LIVE.versions)?, bucket, key)
    }

    /// Up to `limit` noncurrent versions of (bucket, key) older than version `below`
    /// (all, without it), newest first: a range read from the end, not the key's
    /// whole history.
    pub fn versions_below(
        &self,
        bucket: &str,
        key: &str,
        below: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let table = self.txn.open_table(LIVE.versions)?;
        let rows = match below {
            Some(b) => table.range((bucket, key, 0)..(bucket, key, b))?,
            None => table.range((bucket, key, 0)..=(bucket, key, u64::MAX))?,
        };
        let mut out = Vec::new();
        for row in rows.rev().take(limit) {
            out.push(decoded("version", row?.1.value())?);
        }
        Ok(out)
    }

    /// Up to `limit` objects of `bucket` from `from` on, in key order.
    pub fn objects_from(
        &self,
        bucket: &str,
        from: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Stored)>, StoreError> {
        let table = self.txn.open_table(LIVE.objects)?;
        let start = match from {
            Bound::Included(k) => Bound::Included((bucket, k)),
            Bound::Excluded(k) => Bound::Excluded((bucket, k)),
            Bound::Unbounded => Bound::Included((bucket, "")),
        };
        let mut out = Vec::new();
        for row in table.range::<(&str, &str)>((start, Bound::Unbounded))? {
            let (k, v) = row?;
            let (b, key) = k.value();
            if b != bucket || out.len() == limit {
                break;
            }
            out.push((key.to_string(), decoded("object", v.value())?));
        }
        Ok(out)
    }

    /// The parts of the completed object written at `version`, in order.
    pub fn object_parts(&self, version: u64) -> Result<Vec<ObjectPart>, StoreError> {
        let table = self.txn.open_table(LIVE.object_parts)?;
        let mut out = Vec::new();
        for row in table.range((version, 0)..=(version, u32::MAX))? {
            out.push(decoded("object part", row?.1.value())?);
        }
        Ok(out)
    }

    pub fn upload(&self, id: &str) -> Result<Option<UploadHead>, StoreError> {
        self.txn
            .open_table(LIVE.uploads)?
            .get(id)?
            .map(|v| decoded("upload", v.value()))
            .transpose()
    }

    /// Every upload in progress, by id.
    pub fn uploads(&self) -> Result<Vec<(String, UploadHead)>, StoreError> {
        let mut out = Vec::new();
        for row in self.txn.open_table(LIVE.uploads)?.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), decoded("upload", v.value())?));
        }
        Ok(out)
    }

    /// Up to `limit` parts of upload `id` numbered above `after`, in order.
    pub fn parts(
        &self,
        id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<(u32, PartInfo)>, StoreError> {
        let table = self.txn.open_table(LIVE.parts)?;
        let mut out = Vec::new();
        let range = (
            Bound::Excluded((id, after)),
            Bound::Included((id, u32::MAX)),
        );
        for row in table.range::<(&str, u32)>(range)? {
            if out.len() == limit {
                break;
            }
            let (k, v) = row?;
            out.push((k.value().1, decoded("part", v.value())?));
        }
        Ok(out)
    }

    pub fn members(&self) -> Result<Vec<(NodeId, Member)>, StoreError> {
        let mut out = Vec::new();
        for row in self.txn.open_table(LIVE.members)?.iter()? {
            let (k, v) = row?;
            out.push((k.value(), decoded("member", v.value())?));
        }
        Ok(out)
    }

    /// The data ref of blob `data_id`: whose it is, where its layout is, whether lost.
    pub fn data_ref(&self, data_id: u128) -> Result<Option<DataRef>, StoreError> {
        self.txn
            .open_table(LIVE.data_refs)?
            .get(data_id)?
            .map(|v| decoded("data ref", v.value()))
            .transpose()
    }

    /// Up to `limit` data refs with ids above `after` (all from the start when `None`),
    /// in id order: how repair walks every blob without holding the whole index.
    pub fn data_refs_after(
        &self,
        after: Option<u128>,
        limit: usize,
    ) -> Result<Vec<(u128, DataRef)>, StoreError> {
        let table = self.txn.open_table(LIVE.data_refs)?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for row in table.range::<u128>((from, Bound::Unbounded))? {
            if out.len() == limit {
                break;
            }
            let (k, v) = row?;
            out.push((k.value(), decoded("data ref", v.value())?));
        }
        Ok(out)
    }

    /// The current layout of blob `data_id` and its ref, if it is still referenced.
    pub fn layout_of(&self, data_id: u128) -> Result<Option<(DataRef, DataLayout)>, StoreError> {
        self.sites()?.layout_of(data_id)
    }

    /// Part `part` of upload `id`.
    pub fn part(&self, id: &str, part: u32) -> Result<Option<PartInfo>, StoreError> {
        self.txn
            .open_table(LIVE.parts)?
            .get((id, part))?
            .map(|v| decoded("part", v.value()))
            .transpose()
    }

    /// The next records of the state after `cursor`, about `bytes_max` of them when
    /// encoded, and where to go on from (`Cursor::Done` at the end). Tables go in a fixed
    /// order, each in key order, so a snapshot is the same stream on every replica.
    pub fn export_chunk(
        &self,
        cursor: &Cursor,
        bytes_max: usize,
    ) -> Result<(Vec<Record>, Cursor), StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        fn after<T>(key: Option<T>) -> Bound<T> {
            key.map_or(Unbounded, Excluded)
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut cursor = cursor.clone();
        // Pages through one table from just after the cursor's key; returns when the
        // chunk is full, falls through to the next table when this one is done.
        macro_rules! page {
            ($table:expr, $key:ty, $from:expr, |$k:ident, $v:ident| $len:expr, $record:expr, $at:expr) => {{
                let table = self.txn.open_table($table)?;
                let from: Bound<$key> = $from;
                for row in table.range::<$key>((from, Unbounded))? {
                    if bytes >= bytes_max {
                        return Ok((out, cursor));
                    }
                    let row = row?;
                    let ($k, $v) = (row.0.value(), row.1.value());
                    bytes += 64 + $len;
                    out.push($record);
                    cursor = $at;
                }
            }};
        }
        loop {
            cursor = match &cursor {
                Cursor::Start => Cursor::Bucket(None),
                Cursor::Bucket(from) => {
                    page!(
                        LIVE.buckets,
                        &str,
                        after(from.as_deref()),
                        |k, v| v.len(),
                        Record::Bucket(k.into(), decoded("bucket", v)?),
                        Cursor::Bucket(Some(k.into()))
                    );
                    Cursor::Object(None)
                }
                Cursor::Object(from) => {
                    let from = from.as_ref().map(|(b, k)| (b.as_str(), k.as_str()));
                    page!(
                        LIVE.objects,
                        (&str, &str),
                        after(from),
                        |k, v| v.len(),
                        Record::Object(k.0.into(), k.1.into(), decoded("object", v)?),
                        Cursor::Object(Some((k.0.into(), k.1.into())))
                    );
                    Cursor::ObjectPart(None)
                }
                Cursor::ObjectPart(from) => {
                    page!(
                        LIVE.object_parts,
                        (u64, u32),
                        after(*from),
                        |k, v| v.len(),
                        Record::ObjectPart(k.0, k.1, decoded("object part", v)?),
                        Cursor::ObjectPart(Some(k))
                    );
                    Cursor::Upload(None)
                }
                Cursor::Upload(from) => {
                    page!(
                        LIVE.uploads,
                        &str,
                        after(from.as_deref()),
                        |k, v| v.len(),
                        Record::Upload(k.into(), decoded("upload", v)?),
                        Cursor::Upload(Some(k.into()))
                    );
                    Cursor::Part(None)
                }
                Cursor::Part(from) => {
                    let from = from.as_ref().map(|(id, n)| (id.as_str(), *n));
                    page!(
                        LIVE.parts,
                        (&str, u32),
                        after(from),
                        |k, v| v.len(),
                        Record::Part(k.0.into(), k.1, decoded("part", v)?),
                        Cursor::Part(Some((k.0.into(), k.1)))
                    );
                    Cursor::Member(None)
                }
                Cursor::Member(from) => {
                    page!(
                        LIVE.members,
                        u64,
                        after(*from),
                        |k, v| v.len(),
                        Record::Member(k, decoded("member", v)?),
                        Cursor::Member(Some(k))
                    );
                    Cursor::DataRef(None)
                }
                Cursor::DataRef(from) => {
                    page!(
                        LIVE.data_refs,
                        u128,
                        after(*from),
                        |k, v| 16 + v.len(),
                        Record::DataRef(k, decoded("data ref", v)?),
                        Cursor::DataRef(Some(k))
                    );
                    Cursor::Key(None)
                }
                Cursor::Key(from) => {
                    page!(
                        LIVE.keys,
                        &str,
                        after(from.as_deref()),
                        |k, v| v.len(),
                        Record::Key(k.into(), decoded("access key", v)?),
                        Cursor::Key(Some(k.into()))
                    );
                    Cursor::Setting(None)
                }
                Cursor::Setting(from) => {
                    let from = from.as_ref().map(|(b, n)| (b.as_str(), n.as_str()));
                    page!(
                        LIVE.settings,
                        (&str, &str),
                        after(from),
                        |k, v| v.len(),
                        Record::Setting(k.0.into(), k.1.into(), decoded("setting", v)?),
                        Cursor::Setting(Some((k.0.into(), k.1.into())))
                    );
                    Cursor::Version(None)
                }
                Cursor::Version(from) => {
                    let from = from.as_ref().map(|(b, k, v)| (b.as_str(), k.as_str(), *v));
                    page!(
                        LIVE.versions,
                        (&str, &str, u64),
                        after(from),
                        |k, v| v.len(),
                        Record::Version(k.0.into(), k.1.into(), decoded("version", v)?),
                        Cursor::Version(Some((k.0.into(), k.1.into(), k.2)))
                    );
                    Cursor::Done
                }
                Cursor::Done => return Ok((out, Cursor::Done)),
            };
        }
    }

    /// The whole state in memory (the simulator's digests and tests).
    pub fn export(&self) -> Result<MetaState, StoreError> {
        let mut state = MetaState::default();
        let mut cursor = Cursor::Start;
        while cursor != Cursor::Done {
            let (records, next) = self.export_chunk(&cursor, usize::MAX)?;
            for record in records {
                let installed = match record {
                    Record::Bucket(name, b) => state.put_bucket(&name, &b),
                    Record::Object(bucket, key, s) => state.put_object(&bucket, &key, &s),
                    Record::ObjectPart(v, i, p) => state.put_object_part(v, i, &p),
                    Record::Upload(id, head) => state.put_upload(&id, &head),
                    Record::Part(id, n, info) => state.put_part(&id, n, &info),
                    Record::Member(node, m) => state.put_member(node, &m),
                    Record::DataRef(id, r) => state.put_data_ref(id, &r),
                    Record::Key(id, k) => state.put_access_key(&id, &k),
                    Record::Setting(b, n, v) => state.put_setting(&b, &n, &v),
                    Record::Version(b, k, s) => state.put_version(&b, &k, &s),
                };
                match installed {
                    Ok(()) => {}
                    Err(never) => match never {},
                }
            }
            cursor = next;
        }
        Ok(state)
    }
}

impl meta::versions::VersionReads for MetaReader {
    type Error = StoreError;
    fn current(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StoreError> {
        self.object(bucket, key)
    }
    fn noncurrent(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, StoreError> {
        self.txn
            .open_table(LIVE.versions)?
            .get((bucket, key, v))?
            .map(|row| decoded("version", row.value()))
            .transpose()
    }
    fn all_noncurrent(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, StoreError> {
        self.versions(bucket, key)
    }
    fn bucket_setting(&self, bucket: &str, name: &str) -> Result<Option<Setting>, StoreError> {
        self.setting(bucket, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::{head, meta, part};
    use crate::meta::{CommandV1, PART_SIZE_MIN_BYTES, PutCondition};
    use crate::test_disk::MemDisk;

    fn backend(disk: &MemDisk) -> crate::test_disk::MemBackend {
        use crate::env::Disk;
        futures::executor::block_on(disk.storage_backend("state.redb")).unwrap()
    }

    fn v1(c: CommandV1) -> Command {
        Command::V1(c)
    }

    fn put(bucket: &str, key: &str, size: u64) -> Command {
        v1(CommandV1::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            meta: meta(size),
            condition: PutCondition::Always,
        })
    }

    /// Commands that touch every table, refusals included.
    fn commands() -> Vec<Command> {
        let bucket = |n: &str| {
            v1(CommandV1::CreateBucket {
                name: n.into(),
                owner: "o".into(),
                created_ms: 1,
            })
        };
        let put_part = |id: &str, n: u32, data: u128, size: u64| {
            v1(CommandV1::PutPart {
                upload_id: id.into(),
                part: n,
                info: part(data, size),
            })
        };
        let mut c = vec![
            bucket("a"),
            bucket("b"),
            put("b", "x", 1),
            put("b", "y", 2),
            put("nope", "x", 3),
            put("b", "x", 4),
            v1(CommandV1::DeleteBucket { name: "b".into() }),
            v1(CommandV1::CreateUpload {
                upload_id: "u".into(),
                head: head("b", "z"),
            }),
            put_part("u", 1, 100, PART_SIZE_MIN_BYTES),
            put_part("u", 2, 101, 5),
            put_part("u", 3, 102, 5),
            v1(CommandV1::CompleteUpload {
                upload_id: "u".into(),
                parts: vec![(1, "p100".into()), (2, "p101".into())],
                meta: meta(0),
                part_size_min: crate::meta::PART_SIZE_MIN_BYTES,
            }),
            v1(CommandV1::CreateUpload {
                upload_id: "v".into(),
                head: head("a", "w"),
            }),
            put_part("v", 3, 103, 6),
            v1(CommandV1::DeleteObject {
                bucket: "b".into(),
                key: "x".into(),
            }),
            v1(CommandV1::SetMember {
                node: 3,
                member: meta::Member {
                    rpc_addr: "x:1".into(),
                },
            }),
            v1(CommandV1::CreateKey {
                access_key: "AK1".into(),
                key: meta::keys::AccessKey {
                    name: "app".into(),
                    sealed_secret: vec![9; 40],
                    create_bucket: false,
                    created_ms: 3,
                    grants: Default::default(),
                },
            }),
            v1(CommandV1::GrantKey {
                access_key: "AK1".into(),
                bucket: "b".into(),
                perms: meta::keys::Perms::READ,
                allow: true,
            }),
            v1(CommandV1::PutSetting {
                bucket: "b".into(),
                name: meta::access::POLICY.into(),
                setting: meta::access::Setting::Policy("{}".into()),
            }),
            v1(CommandV1::PutSetting {
                bucket: "a".into(),
                name: meta::access::BUCKET_ACL.into(),
                setting: meta::access::Setting::Acl(meta::access::Acl::private("AK1")),
            }),
            v1(CommandV1::PutObjectAcl {
                bucket: "b".into(),
                key: "y".into(),
                version: None,
                acl: meta::access::Acl::private("AK1"),
            }),
            // A versioned key: a noncurrent blob, a delete marker, one version removed.
            v1(CommandV1::PutSetting {
                bucket: "a".into(),
                name: meta::versions::VERSIONING.into(),
                setting: meta::access::Setting::Versioning(meta::versions::Versioning::Enabled),
            }),
            put("a", "old", 200),
            put("a", "old", 201),
            put("a", "old", 202),
            v1(CommandV1::DeleteObject {
                bucket: "a".into(),
                key: "old".into(),
            }),
        ];
        for i in 0..30u64 {
            c.push(put(
                if i % 3 == 0 { "a" } else { "b" },
                &format!("k{i:03}"),
                10 + i,
            ));
        }
        c
    }

    fn items(commands: Vec<Command>) -> Vec<Item> {
        commands
            .into_iter()
            .enumerate()
            .map(|(i, c)| Item {
                index: i as u64 + 2,
                command: Some(c),
            })
            .collect()
    }

    fn mark(index: u64) -> Mark {
        Mark {
            index,
            term: 3,
            conf: ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            },
        }
    }

    /// The store applies exactly like the in-memory model, answers its queries from
    /// the same state, and survives a reopen.
    #[test]
    fn store_matches_the_model_and_reopens() {
        let disk = MemDisk::default();
        let store = MetaStore::open(backend(&disk)).unwrap();
        assert_eq!(store.mark().unwrap(), Mark::default());
        let items = items(commands());
        let mut model = MetaState::default();
        let expected: Vec<Applied> = items
            .iter()
            .map(|i| model.apply(i.index, i.command.as_ref().unwrap()))
            .collect();
        let mark = mark(items.len() as u64 + 1);
        let got = store.apply(&items, &mark, true).unwrap();
        assert_eq!(got, expected);
        assert!(got.contains(&Applied::BucketNotEmpty));
        assert!(got.contains(&Applied::NoSuchBucket));
        let reader = store.reader().unwrap();
        assert_eq!(reader.export().unwrap(), model);
        assert_eq!(
            reader.object("b", "y").unwrap().as_ref(),
            model.object("b", "y")
        );
        let z = reader.object("b", "z").unwrap().expect("completed upload");
        assert_eq!(reader.object_parts(z.version).unwrap().len(), 2);
        let listed: Vec<String> = reader
            .objects_from("b", Bound::Excluded("k001"), 3)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(listed, ["k002", "k004", "k005"]);
        let from: Vec<String> = reader
            .objects_from("a", Bound::Included("k003"), 2)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(from, ["k003", "k006"]);
        assert_eq!(reader.parts("v", 0, 10).unwrap().len(), 1);
        assert!(reader.parts("v", 3, 10).unwrap().is_empty());
        assert_eq!(reader.buckets().unwrap().len(), 2);
        assert!(reader.data_ref(100).unwrap().is_some());
        assert!(reader.data_ref(102).unwrap().is_none());
        // Every blob's layout, at each kind of site, as the model finds it.
        let sites = reader.sites().unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for (id, r) in &model.data_refs {
            let want = meta::repair::layout_at(&model, *id, r)
                .unwrap()
                .expect("laid out");
            assert_eq!(sites.layout_of(*id).unwrap(), Some((r.clone(), want)));
            kinds.insert(match r.site {
                meta::Site::Object => "object",
                meta::Site::ObjectPart { .. } => "object part",
                meta::Site::UploadPart { .. } => "upload part",
                meta::Site::Version { .. } => "version",
            });
        }
        assert_eq!(
            kinds.len(),
            4,
            "objects, versions, object parts and upload parts"
        );
        assert_eq!(sites.layout_of(102).unwrap(), None);
        drop(sites);
        drop(reader);
        drop(store);

        let again = MetaStore::open(backend(&disk)).unwrap();
        assert_eq!(again.mark().unwrap(), mark);
        assert_eq!(again.reader().unwrap().export().unwrap(), model);
    }

    /// Pages `from` into `to` the way a snapshot travels; returns the number of chunks.
    fn stream(from: &MetaStore, to: &MetaStore, bytes_max: usize) -> usize {
        let reader = from.reader().unwrap();
        to.begin_install().unwrap();
        let (mut cursor, mut chunks) = (Cursor::Start, 0);
        while cursor != Cursor::Done {
            let (records, next) = reader.export_chunk(&cursor, bytes_max).unwrap();
            to.install_chunk(&records).unwrap();
            cursor = next;
            chunks += 1;
        }
        to.finish_install(&reader.mark().unwrap()).unwrap();
        chunks
    }

    /// A snapshot streamed in chunks of any size rebuilds exactly the source's state;
    /// the old state of the receiver is gone, whole.
    #[test]
    fn snapshots_stream_in_chunks_of_any_size() {
        let source = MetaStore::open(backend(&MemDisk::default())).unwrap();
        let items = items(commands());
        let mut model = MetaState::default();
        for i in &items {
            model.apply(i.index, i.command.as_ref().unwrap());
        }
        let mark = mark(items.len() as u64 + 1);
        source.apply(&items, &mark, true).unwrap();
        let mut chunk_counts = Vec::new();
        for bytes_max in [1, 200, 1000, 1 << 20] {
            let receiver = MetaStore::open(backend(&MemDisk::default())).unwrap();
            let old = [Item {
                index: 2,
                command: Some(put("c", "old", 1)),
            }];
            receiver.apply(&old, &Mark::default(), true).unwrap();
            chunk_counts.push(stream(&source, &receiver, bytes_max));
            assert_eq!(receiver.reader().unwrap().export().unwrap(), model);
            assert_eq!(receiver.mark().unwrap(), mark);
        }
        // Tiny chunks really did page (one record each), a big one took it all at once.
        assert!(chunk_counts[0] > 40, "{chunk_counts:?}");
        assert_eq!(chunk_counts[3], 1, "{chunk_counts:?}");
    }
}
