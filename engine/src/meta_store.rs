//! The state machine's home: the replicated metadata in redb, on a file of the node's
//! Disk (`Disk::storage_backend`: the real file in production, a SimDisk file under
//! simulation, with its crash model).
//!
//! Tables: buckets (name), objects ((bucket, key): current version), uploads (id: the
//! target), parts ((upload id, part number)), members (node id), and `raft`, which holds
//! the applied mark: the index, term and configuration the tables reflect.
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

use protobuf::Message as _;
use raft::eraftpb::ConfState;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};

use crate::env::NodeId;
use crate::meta::{
    self, Applied, Bucket, Command, Member, MetaState, MetaTables, ObjectMeta, Stored, Upload,
    UploadHead,
};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");
const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");
const RAFT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft");
const MARK_KEY: &str = "applied";

// Where a snapshot being received is staged (see the module docs).
const IN_BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("incoming.buckets");
const IN_OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("incoming.objects");
const IN_UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("incoming.uploads");
const IN_PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("incoming.parts");
const IN_MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("incoming.members");

/// One row of the state, as a snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Record {
    Bucket(String, Bucket),
    Object(String, String, Stored),
    Upload(String, UploadHead),
    Part(String, u32, ObjectMeta),
    Member(NodeId, Member),
}

/// Where an export stopped: the table it is in and the last key sent from it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cursor {
    #[default]
    Start,
    Bucket(Option<String>),
    Object(Option<(String, String)>),
    Upload(Option<String>),
    Part(Option<(String, u32)>),
    Member(Option<NodeId>),
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

pub struct MetaStore {
    db: Database,
}

/// The tables inside one write transaction.
struct Writer<'t> {
    buckets: redb::Table<'t, &'static str, &'static [u8]>,
    objects: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    uploads: redb::Table<'t, &'static str, &'static [u8]>,
    parts: redb::Table<'t, (&'static str, u32), &'static [u8]>,
    members: redb::Table<'t, u64, &'static [u8]>,
}

impl MetaTables for Writer<'_> {
    type Error = StoreError;

    fn has_bucket(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.buckets.get(name)?.is_some())
    }
    fn insert_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), StoreError> {
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
    fn has_object(&self, bucket: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.objects.get((bucket, key))?.is_some())
    }
    fn insert_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), StoreError> {
        self.objects
            .insert((bucket, key), meta::encode(s).as_slice())?;
        Ok(())
    }
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.objects.remove((bucket, key))?.is_some())
    }
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, StoreError> {
        match self.uploads.get(id)? {
            Some(v) => Ok(Some(
                meta::decode(v.value()).ok_or_else(|| corrupt("upload"))?,
            )),
            None => Ok(None),
        }
    }
    fn insert_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), StoreError> {
        self.uploads.insert(id, meta::encode(head).as_slice())?;
        Ok(())
    }
    fn insert_part(&mut self, id: &str, part: u32, m: &ObjectMeta) -> Result<(), StoreError> {
        self.parts.insert((id, part), meta::encode(m).as_slice())?;
        Ok(())
    }
    fn has_part(&self, id: &str, part: u32) -> Result<bool, StoreError> {
        Ok(self.parts.get((id, part))?.is_some())
    }
    fn remove_upload(&mut self, id: &str) -> Result<bool, StoreError> {
        let existed = self.uploads.remove(id)?.is_some();
        self.parts
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        Ok(existed)
    }
    fn insert_member(&mut self, node: NodeId, m: &Member) -> Result<(), StoreError> {
        self.members.insert(node, meta::encode(m).as_slice())?;
        Ok(())
    }
    fn remove_member(&mut self, node: NodeId) -> Result<(), StoreError> {
        self.members.remove(node)?;
        Ok(())
    }
}

impl MetaStore {
    /// Opens (or creates) the store on `backend`; redb repairs an interrupted commit.
    pub fn open(backend: impl redb::StorageBackend) -> Result<Self, StoreError> {
        let db = Database::builder().create_with_backend(backend)?;
        let txn = db.begin_write()?;
        txn.open_table(BUCKETS)?;
        txn.open_table(OBJECTS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(MEMBERS)?;
        txn.open_table(RAFT)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// The applied mark (all zero for a new store).
    pub fn mark(&self) -> Result<Mark, StoreError> {
        let txn = self.db.begin_read()?;
        let raft = txn.open_table(RAFT)?;
        match raft.get(MARK_KEY)? {
            Some(v) => Mark::decode(v.value()).ok_or_else(|| corrupt("applied mark")),
            None => Ok(Mark::default()),
        }
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
            let mut w = Writer {
                buckets: txn.open_table(BUCKETS)?,
                objects: txn.open_table(OBJECTS)?,
                uploads: txn.open_table(UPLOADS)?,
                parts: txn.open_table(PARTS)?,
                members: txn.open_table(MEMBERS)?,
            };
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
        Ok(results)
    }

    /// Starts receiving a snapshot: empty `incoming.*` tables (a leftover of an earlier,
    /// interrupted receive is dropped).
    pub fn begin_install(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        txn.delete_table(IN_BUCKETS)?;
        txn.delete_table(IN_OBJECTS)?;
        txn.delete_table(IN_UPLOADS)?;
        txn.delete_table(IN_PARTS)?;
        txn.delete_table(IN_MEMBERS)?;
        txn.commit()?;
        Ok(())
    }

    /// Adds received records to the `incoming.*` tables (not durable, not visible).
    pub fn install_chunk(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut w = Writer {
                buckets: txn.open_table(IN_BUCKETS)?,
                objects: txn.open_table(IN_OBJECTS)?,
                uploads: txn.open_table(IN_UPLOADS)?,
                parts: txn.open_table(IN_PARTS)?,
                members: txn.open_table(IN_MEMBERS)?,
            };
            for record in records {
                match record {
                    Record::Bucket(name, b) => w.insert_bucket(name, b)?,
                    Record::Object(bucket, key, s) => w.insert_object(bucket, key, s)?,
                    Record::Upload(id, head) => w.insert_upload(id, head)?,
                    Record::Part(id, part, m) => w.insert_part(id, *part, m)?,
                    Record::Member(node, m) => w.insert_member(*node, m)?,
                }
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
        drop(txn.open_table(IN_BUCKETS)?);
        drop(txn.open_table(IN_OBJECTS)?);
        drop(txn.open_table(IN_UPLOADS)?);
        drop(txn.open_table(IN_PARTS)?);
        drop(txn.open_table(IN_MEMBERS)?);
        txn.delete_table(BUCKETS)?;
        txn.delete_table(OBJECTS)?;
        txn.delete_table(UPLOADS)?;
        txn.delete_table(PARTS)?;
        txn.delete_table(MEMBERS)?;
        txn.rename_table(IN_BUCKETS, BUCKETS)?;
        txn.rename_table(IN_OBJECTS, OBJECTS)?;
        txn.rename_table(IN_UPLOADS, UPLOADS)?;
        txn.rename_table(IN_PARTS, PARTS)?;
        txn.rename_table(IN_MEMBERS, MEMBERS)?;
        txn.open_table(RAFT)?
            .insert(MARK_KEY, mark.encode().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A consistent view of the tables (they do not change under it).
    pub fn reader(&self) -> Result<MetaReader, StoreError> {
        Ok(MetaReader {
            txn: self.db.begin_read()?,
        })
    }
}

/// A read transaction on the store.
pub struct MetaReader {
    txn: ReadTransaction,
}

impl MetaReader {
    pub fn mark(&self) -> Result<Mark, StoreError> {
        match self.txn.open_table(RAFT)?.get(MARK_KEY)? {
            Some(v) => Mark::decode(v.value()).ok_or_else(|| corrupt("applied mark")),
            None => Ok(Mark::default()),
        }
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StoreError> {
        match self.txn.open_table(OBJECTS)?.get((bucket, key))? {
            Some(v) => Ok(Some(
                meta::decode(v.value()).ok_or_else(|| corrupt("object"))?,
            )),
            None => Ok(None),
        }
    }

    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        match self.txn.open_table(BUCKETS)?.get(name)? {
            Some(v) => Ok(Some(
                meta::decode(v.value()).ok_or_else(|| corrupt("bucket"))?,
            )),
            None => Ok(None),
        }
    }

    /// Up to `limit` objects of `bucket` with keys after `after`, in key order.
    pub fn objects_after(
        &self,
        bucket: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Stored)>, StoreError> {
        let table = self.txn.open_table(OBJECTS)?;
        let mut out = Vec::new();
        for row in table.range((bucket, after)..)? {
            let (k, v) = row?;
            let (b, key) = k.value();
            if b != bucket || out.len() == limit {
                break;
            }
            if key == after {
                continue;
            }
            let stored = meta::decode(v.value()).ok_or_else(|| corrupt("object"))?;
            out.push((key.to_string(), stored));
        }
        Ok(out)
    }

    /// The next records of the state after `cursor`, about `bytes_max` of them when
    /// encoded, and where to go on from (`Cursor::Done` at the end). Tables go in a fixed
    /// order, each in key order, so a snapshot is the same stream on every replica.
    pub fn export_chunk(
        &self,
        cursor: &Cursor,
        bytes_max: usize,
    ) -> Result<(Vec<Record>, Cursor), StoreError> {
        use std::ops::Bound::{self, Excluded, Unbounded};
        fn after<T>(key: Option<T>) -> Bound<T> {
            key.map_or(Unbounded, Excluded)
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut cursor = cursor.clone();
        // Pages through one table from just after the cursor's key; returns when the
        // chunk is full, falls through to the next table when this one is done.
        macro_rules! page {
            ($table:expr, $key:ty, $from:expr, |$k:ident, $v:ident| $record:expr, $at:expr) => {{
                let table = self.txn.open_table($table)?;
                let from: Bound<$key> = $from;
                for row in table.range::<$key>((from, Unbounded))? {
                    if bytes >= bytes_max {
                        return Ok((out, cursor));
                    }
                    let row = row?;
                    let ($k, $v) = (row.0.value(), row.1.value());
                    bytes += 64 + $v.len();
                    out.push($record);
                    cursor = $at;
                }
            }};
        }
        fn decoded<T: serde::de::DeserializeOwned>(what: &str, v: &[u8]) -> Result<T, StoreError> {
            meta::decode(v).ok_or_else(|| corrupt(what))
        }
        loop {
            cursor = match &cursor {
                Cursor::Start => Cursor::Bucket(None),
                Cursor::Bucket(from) => {
                    page!(
                        BUCKETS,
                        &str,
                        after(from.as_deref()),
                        |k, v| Record::Bucket(k.into(), decoded("bucket", v)?),
                        Cursor::Bucket(Some(k.into()))
                    );
                    Cursor::Object(None)
                }
                Cursor::Object(from) => {
                    let from = from.as_ref().map(|(b, k)| (b.as_str(), k.as_str()));
                    page!(
                        OBJECTS,
                        (&str, &str),
                        after(from),
                        |k, v| Record::Object(k.0.into(), k.1.into(), decoded("object", v)?),
                        Cursor::Object(Some((k.0.into(), k.1.into())))
                    );
                    Cursor::Upload(None)
                }
                Cursor::Upload(from) => {
                    page!(
                        UPLOADS,
                        &str,
                        after(from.as_deref()),
                        |k, v| Record::Upload(k.into(), decoded("upload", v)?),
                        Cursor::Upload(Some(k.into()))
                    );
                    Cursor::Part(None)
                }
                Cursor::Part(from) => {
                    let from = from.as_ref().map(|(id, n)| (id.as_str(), *n));
                    page!(
                        PARTS,
                        (&str, u32),
                        after(from),
                        |k, v| Record::Part(k.0.into(), k.1, decoded("part", v)?),
                        Cursor::Part(Some((k.0.into(), k.1)))
                    );
                    Cursor::Member(None)
                }
                Cursor::Member(from) => {
                    page!(
                        MEMBERS,
                        u64,
                        after(*from),
                        |k, v| Record::Member(k, decoded("member", v)?),
                        Cursor::Member(Some(k))
                    );
                    Cursor::Done
                }
                Cursor::Done => return Ok((out, Cursor::Done)),
            };
        }
    }

    /// The whole state, for a snapshot.
    pub fn export(&self) -> Result<MetaState, StoreError> {
        let mut state = MetaState::default();
        for row in self.txn.open_table(BUCKETS)?.iter()? {
            let (k, v) = row?;
            let b = meta::decode(v.value()).ok_or_else(|| corrupt("bucket"))?;
            state.buckets.insert(k.value().to_string(), b);
        }
        for row in self.txn.open_table(OBJECTS)?.iter()? {
            let (k, v) = row?;
            let (b, key) = k.value();
            let s = meta::decode(v.value()).ok_or_else(|| corrupt("object"))?;
            state.objects.insert((b.to_string(), key.to_string()), s);
        }
        for row in self.txn.open_table(UPLOADS)?.iter()? {
            let (k, v) = row?;
            let head: UploadHead = meta::decode(v.value()).ok_or_else(|| corrupt("upload"))?;
            state
                .uploads
                .insert(k.value().to_string(), Upload::from_head(head));
        }
        for row in self.txn.open_table(PARTS)?.iter()? {
            let (k, v) = row?;
            let (id, part) = k.value();
            let m = meta::decode(v.value()).ok_or_else(|| corrupt("part"))?;
            if let Some(u) = state.uploads.get_mut(id) {
                u.parts.insert(part, m);
            }
        }
        for row in self.txn.open_table(MEMBERS)?.iter()? {
            let (k, v) = row?;
            let m = meta::decode(v.value()).ok_or_else(|| corrupt("member"))?;
            state.members.insert(k.value(), m);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::CommandV1;
    use crate::test_disk::MemDisk;

    fn backend(disk: &MemDisk) -> crate::test_disk::MemBackend {
        use crate::env::Disk;
        futures::executor::block_on(disk.storage_backend("state.redb")).unwrap()
    }

    fn put(bucket: &str, key: &str, size: u64) -> Command {
        Command::V1(CommandV1::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            meta: meta::tests::meta(size),
            if_none_match: false,
        })
    }

    /// The store applies exactly like the in-memory model, and survives a reopen.
    #[test]
    fn store_matches_the_model_and_reopens() {
        let disk = MemDisk::default();
        let store = MetaStore::open(backend(&disk)).unwrap();
        assert_eq!(store.mark().unwrap(), Mark::default());
        let commands = vec![
            Command::V1(CommandV1::CreateBucket {
                name: "b".into(),
                owner: "o".into(),
                created_ms: 1,
            }),
            put("b", "x", 1),
            put("b", "y", 2),
            put("nope", "x", 3),
            Command::V1(CommandV1::DeleteBucket { name: "b".into() }),
            Command::V1(CommandV1::CreateUpload {
                upload_id: "u".into(),
                bucket: "b".into(),
                key: "z".into(),
                created_ms: 2,
            }),
            Command::V1(CommandV1::PutPart {
                upload_id: "u".into(),
                part: 1,
                meta: meta::tests::meta(5),
            }),
            Command::V1(CommandV1::CompleteUpload {
                upload_id: "u".into(),
                parts: vec![1, 2],
                meta: meta::tests::meta(9),
            }),
            Command::V1(CommandV1::CreateUpload {
                upload_id: "v".into(),
                bucket: "b".into(),
                key: "w".into(),
                created_ms: 3,
            }),
            Command::V1(CommandV1::PutPart {
                upload_id: "v".into(),
                part: 3,
                meta: meta::tests::meta(6),
            }),
            Command::V1(CommandV1::DeleteObject {
                bucket: "b".into(),
                key: "x".into(),
            }),
        ];
        let mut model = MetaState::default();
        let expected: Vec<Applied> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| model.apply(i as u64 + 2, c))
            .collect();
        let items: Vec<Item> = commands
            .into_iter()
            .enumerate()
            .map(|(i, c)| Item {
                index: i as u64 + 2,
                command: Some(c),
            })
            .collect();
        let mark = Mark {
            index: 12,
            term: 3,
            conf: ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            },
        };
        let got = store.apply(&items, &mark, true).unwrap();
        assert_eq!(got, expected);
        assert!(got.contains(&Applied::BucketNotEmpty));
        assert!(got.contains(&Applied::InvalidPart(2)));
        let reader = store.reader().unwrap();
        assert_eq!(reader.export().unwrap(), model);
        assert_eq!(
            reader.object("b", "y").unwrap(),
            model.object("b", "y").cloned()
        );
        let listed: Vec<String> = reader
            .objects_after("b", "", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(listed, vec!["y".to_string()]);
        drop(reader);
        drop(store);

        let again = MetaStore::open(backend(&disk)).unwrap();
        assert_eq!(again.mark().unwrap(), mark);
        assert_eq!(again.reader().unwrap().export().unwrap(), model);

        // A snapshot replaces everything.
        let mut other = MetaState::default();
        other.apply(
            1,
            &Command::V1(CommandV1::CreateBucket {
                name: "c".into(),
                owner: "p".into(),
                created_ms: 9,
            }),
        );
        let snap_mark = Mark {
            index: 40,
            term: 5,
            conf: mark.conf.clone(),
        };
        let source = MetaStore::open(backend(&MemDisk::default())).unwrap();
        let items = [Item {
            index: 1,
            command: Some(Command::V1(CommandV1::CreateBucket {
                name: "c".into(),
                owner: "p".into(),
                created_ms: 9,
            })),
        }];
        source.apply(&items, &snap_mark, true).unwrap();
        stream(&source, &again, 1 << 20);
        assert_eq!(again.reader().unwrap().export().unwrap(), other);
        assert_eq!(again.mark().unwrap(), snap_mark);
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
        let mut model = MetaState::default();
        let mut items = Vec::new();
        let mut commands = vec![
            Command::V1(CommandV1::CreateBucket {
                name: "a".into(),
                owner: "o".into(),
                created_ms: 1,
            }),
            Command::V1(CommandV1::CreateBucket {
                name: "b".into(),
                owner: "o".into(),
                created_ms: 2,
            }),
            Command::V1(CommandV1::SetMember {
                node: 3,
                member: meta::Member {
                    rpc_addr: "x:1".into(),
                },
            }),
            Command::V1(CommandV1::CreateUpload {
                upload_id: "u".into(),
                bucket: "a".into(),
                key: "big".into(),
                created_ms: 3,
            }),
        ];
        for i in 0..40u64 {
            commands.push(put(
                if i % 3 == 0 { "a" } else { "b" },
                &format!("k{i:03}"),
                i,
            ));
        }
        for part in 1..=5 {
            commands.push(Command::V1(CommandV1::PutPart {
                upload_id: "u".into(),
                part,
                meta: meta::tests::meta(u64::from(part)),
            }));
        }
        for (i, c) in commands.into_iter().enumerate() {
            model.apply(i as u64 + 2, &c);
            items.push(Item {
                index: i as u64 + 2,
                command: Some(c),
            });
        }
        let mark = Mark {
            index: items.len() as u64 + 1,
            term: 2,
            conf: ConfState {
                voters: vec![1, 3],
                ..Default::default()
            },
        };
        source.apply(&items, &mark, true).unwrap();
        let mut chunk_counts = Vec::new();
        for bytes_max in [1, 200, 1000, 1 << 20] {
            let receiver = MetaStore::open(backend(&MemDisk::default())).unwrap();
            receiver.apply(&items[..3], &Mark::default(), true).unwrap();
            chunk_counts.push(stream(&source, &receiver, bytes_max));
            assert_eq!(receiver.reader().unwrap().export().unwrap(), model);
            assert_eq!(receiver.mark().unwrap(), mark);
        }
        // Tiny chunks really did page (one record each), a big one took it all at once.
        assert!(chunk_counts[0] > 40, "{chunk_counts:?}");
        assert_eq!(chunk_counts[3], 1, "{chunk_counts:?}");
    }
}
