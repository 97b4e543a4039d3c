//! The tables that find blobs' layouts, opened once for many lookups. Repair's presence
//! pass and the orphan sweep look up every blob (or every shard file) of a node on each
//! pass; opening a table is a lookup of its own in redb, so a reader that opened them per
//! call spent as much time opening tables as reading rows (a `perf` profile of the
//! simulator showed it).

use redb::ReadOnlyTable;

use super::{LIVE, MetaReader, StoreError, decoded};
use crate::meta::repair::{SiteTables, layout_at};
use crate::meta::{DataLayout, DataRef, ObjectPart, PartInfo, Stored};

/// Open tables of one [`MetaReader`]'s view: data refs and the four sites of layouts.
pub struct Sites {
    data_refs: ReadOnlyTable<u128, &'static [u8]>,
    objects: ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
    versions: ReadOnlyTable<(&'static str, &'static str, u64), &'static [u8]>,
    object_parts: ReadOnlyTable<(u64, u32), &'static [u8]>,
    parts: ReadOnlyTable<(&'static str, u32), &'static [u8]>,
}

impl MetaReader {
    /// The layout tables of this view, opened once.
    pub fn sites(&self) -> Result<Sites, StoreError> {
        Ok(Sites {
            data_refs: self.txn.open_table(LIVE.data_refs)?,
            objects: self.txn.open_table(LIVE.objects)?,
            versions: self.txn.open_table(LIVE.versions)?,
            object_parts: self.txn.open_table(LIVE.object_parts)?,
            parts: self.txn.open_table(LIVE.parts)?,
        })
    }
}

impl Sites {
    /// The data ref of blob `data_id`.
    pub fn data_ref(&self, data_id: u128) -> Result<Option<DataRef>, StoreError> {
        self.data_refs
            .get(data_id)?
            .map(|v| decoded("data ref", v.value()))
            .transpose()
    }

    /// The current layout of blob `data_id` and its ref, if it is still referenced.
    pub fn layout_of(&self, data_id: u128) -> Result<Option<(DataRef, DataLayout)>, StoreError> {
        let Some(r) = self.data_ref(data_id)? else {
            return Ok(None);
        };
        Ok(layout_at(self, data_id, &r)?.map(|l| (r, l)))
    }
}

impl SiteTables for Sites {
    type Error = StoreError;
    fn site_object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, StoreError> {
        self.objects
            .get((bucket, key))?
            .map(|v| decoded("object", v.value()))
            .transpose()
    }
    fn site_version(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, StoreError> {
        self.versions
            .get((bucket, key, v))?
            .map(|v| decoded("version", v.value()))
            .transpose()
    }
    fn site_object_part(&self, version: u64, index: u32) -> Result<Option<ObjectPart>, StoreError> {
        self.object_parts
            .get((version, index))?
            .map(|v| decoded("object part", v.value()))
            .transpose()
    }
    fn site_part(&self, upload_id: &str, part: u32) -> Result<Option<PartInfo>, StoreError> {
        self.parts
            .get((upload_id, part))?
            .map(|v| decoded("part", v.value()))
            .transpose()
    }
}
