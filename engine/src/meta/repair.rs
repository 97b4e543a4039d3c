//! Repair's side of the state machine: finding a blob's layout from its data ref, and
//! the three guarded commands that change it.
//!
//! Invariants:
//! - every committed layout places its shards on distinct nodes ([`distinct`]): a
//!   `PutObject`, `PutPart` or `RepairShard` that would break it is refused (`Stale`);
//! - `RepairShard` changes one placement, and only if the placement is still the one
//!   the repair started from (`expected`) and the blob is still referenced: a repair
//!   that raced an overwrite, a delete or another repair changes nothing, so it can
//!   neither resurrect nor clobber;
//! - a repaired placement keeps the replicated sha256: the rebuilt bytes hash to it;
//! - `MarkLost` is guarded by the whole shard list it judged; a successful repair, or
//!   `ClearLost`, removes the mark.

use super::{
    Applied, DataLayout, DataRef, LostMark, MetaTables, ObjectData, ObjectPart, PartInfo,
    ShardPlacement, Site, Stored,
};

/// True when no two shards of `layout` share a node.
pub fn distinct(layout: &DataLayout) -> bool {
    let mut nodes: Vec<_> = layout.shards.iter().map(|s| s.node).collect();
    nodes.sort_unstable();
    nodes.windows(2).all(|w| w[0] != w[1])
}

/// The reads that find a layout at its site: the state machine's tables, and the read
/// view nodes serve from (`crate::meta::store::Sites`).
pub trait SiteTables {
    type Error;
    fn site_object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error>;
    fn site_version(
        &self,
        bucket: &str,
        key: &str,
        version: u64,
    ) -> Result<Option<Stored>, Self::Error>;
    fn site_object_part(&self, version: u64, index: u32)
    -> Result<Option<ObjectPart>, Self::Error>;
    fn site_part(&self, upload_id: &str, part: u32) -> Result<Option<PartInfo>, Self::Error>;
}

impl<T: MetaTables> SiteTables for T {
    type Error = T::Error;
    fn site_object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, T::Error> {
        self.object(bucket, key)
    }
    fn site_version(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, T::Error> {
        self.version(bucket, key, v)
    }
    fn site_object_part(&self, version: u64, index: u32) -> Result<Option<ObjectPart>, T::Error> {
        self.object_part(version, index)
    }
    fn site_part(&self, upload_id: &str, part: u32) -> Result<Option<PartInfo>, T::Error> {
        self.part(upload_id, part)
    }
}

/// The layout of blob `data_id` at the site its ref names, if it is still there.
pub fn layout_at<T: SiteTables>(
    t: &T,
    data_id: u128,
    r: &DataRef,
) -> Result<Option<DataLayout>, T::Error> {
    let blob = |s: Option<Stored>| match s.map(|s| s.meta.data) {
        Some(ObjectData::Blob(l)) => Some(l),
        _ => None,
    };
    let layout = match &r.site {
        Site::Object => blob(t.site_object(&r.bucket, &r.key)?),
        Site::Version { version } => blob(t.site_version(&r.bucket, &r.key, *version)?),
        Site::ObjectPart { version, index } => t
            .site_object_part(*version, *index)?
            .and_then(|p| p.info.data),
        Site::UploadPart { upload_id, part } => {
            t.site_part(upload_id, *part)?.and_then(|info| info.data)
        }
    };
    Ok(layout.filter(|l| l.data_id == data_id))
}

/// Writes `layout` back to the site it was read from.
fn store_layout<T: MetaTables>(t: &mut T, r: &DataRef, layout: DataLayout) -> Result<(), T::Error> {
    match &r.site {
        Site::Object => {
            let mut stored = t.object(&r.bucket, &r.key)?.expect("layout was read here");
            stored.meta.data = ObjectData::Blob(layout);
            t.put_object(&r.bucket, &r.key, &stored)
        }
        Site::Version { version } => {
            let mut stored = t
                .version(&r.bucket, &r.key, *version)?
                .expect("layout was read here");
            stored.meta.data = ObjectData::Blob(layout);
            t.put_version(&r.bucket, &r.key, &stored)
        }
        Site::ObjectPart { version, index } => {
            let mut row = t
                .object_part(*version, *index)?
                .expect("layout was read here");
            row.info.data = Some(layout);
            t.put_object_part(*version, *index, &row)
        }
        Site::UploadPart { upload_id, part } => {
            let mut info = t.part(upload_id, *part)?.expect("layout was read here");
            info.data = Some(layout);
            t.put_part(upload_id, *part, &info)
        }
    }
}

pub(super) fn repair_shard<T: MetaTables>(
    t: &mut T,
    data_id: u128,
    index: u16,
    expected: &ShardPlacement,
    placement: &ShardPlacement,
) -> Result<Applied, T::Error> {
    let Some(mut r) = t.data_ref(data_id)? else {
        return Ok(Applied::Stale);
    };
    let Some(mut layout) = layout_at(t, data_id, &r)? else {
        return Ok(Applied::Stale);
    };
    let i = usize::from(index);
    if layout.shards.get(i) != Some(expected)
        || !placement.sealed
        || placement.sha256 != expected.sha256
    {
        return Ok(Applied::Stale);
    }
    layout.shards[i] = placement.clone();
    if !distinct(&layout) {
        return Ok(Applied::Stale);
    }
    store_layout(t, &r, layout)?;
    if r.lost.take().is_some() {
        t.put_data_ref(data_id, &r)?;
    }
    Ok(Applied::Done)
}

pub(super) fn mark_lost<T: MetaTables>(
    t: &mut T,
    data_id: u128,
    shards: &[ShardPlacement],
    mark: &LostMark,
) -> Result<Applied, T::Error> {
    let Some(mut r) = t.data_ref(data_id)? else {
        return Ok(Applied::Stale);
    };
    match layout_at(t, data_id, &r)? {
        Some(layout) if layout.shards == shards => {}
        _ => return Ok(Applied::Stale),
    }
    if r.lost.is_none() {
        r.lost = Some(mark.clone());
        t.put_data_ref(data_id, &r)?;
    }
    Ok(Applied::Done)
}

pub(super) fn clear_lost<T: MetaTables>(t: &mut T, data_id: u128) -> Result<Applied, T::Error> {
    let Some(mut r) = t.data_ref(data_id)? else {
        return Ok(Applied::Stale);
    };
    if r.lost.take().is_some() {
        t.put_data_ref(data_id, &r)?;
    }
    Ok(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{head, meta, part};
    use super::super::*;
    use super::layout_at;

    fn v1(c: CommandV1) -> Command {
        Command::V1(c)
    }

    /// A 2+1 blob on nodes 1, 2, 3 with shard 2 unsealed.
    fn degraded(id: u128) -> ObjectMeta {
        let mut m = meta(100);
        let ObjectData::Blob(l) = &mut m.data else {
            unreachable!()
        };
        l.data_id = id;
        l.k = 2;
        l.m = 1;
        l.shards = (1..=3)
            .map(|n| ShardPlacement {
                node: n,
                sha256: [n as u8; 32],
                sealed: n != 3,
            })
            .collect();
        m
    }

    fn state_with(id: u128) -> MetaState {
        let mut s = MetaState::default();
        s.apply(
            1,
            &v1(CommandV1::CreateBucket {
                name: "b".into(),
                owner: "o".into(),
                created_ms: 0,
            }),
        );
        let put = CommandV1::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            meta: degraded(id),
            condition: PutCondition::Always,
        };
        assert_eq!(s.apply(2, &v1(put)), Applied::Version(2));
        s
    }

    fn repair(id: u128, index: u16, expected: ShardPlacement, node: u64) -> Command {
        let placement = ShardPlacement {
            node,
            sealed: true,
            ..expected.clone()
        };
        v1(CommandV1::RepairShard {
            data_id: id,
            index,
            expected,
            placement,
        })
    }

    fn shard(s: &MetaState, i: usize) -> ShardPlacement {
        let r = &s.data_refs[&7];
        layout_at(s, 7, r).unwrap().unwrap().shards[i].clone()
    }

    #[test]
    fn a_repair_seals_its_shard_once_and_only_while_the_layout_is_current() {
        let mut s = state_with(7);
        let old = shard(&s, 2);
        assert_eq!(s.apply(3, &repair(7, 2, old.clone(), 3)), Applied::Done);
        assert!(shard(&s, 2).sealed);
        assert_eq!(s.object("b", "k").unwrap().version, 2, "version unchanged");
        // The same repair again: its guard no longer holds.
        assert_eq!(s.apply(4, &repair(7, 2, old.clone(), 3)), Applied::Stale);
        // Onto a node that holds another shard: refused.
        let now = shard(&s, 1);
        assert_eq!(s.apply(5, &repair(7, 1, now, 3)), Applied::Stale);
        // After a delete nothing is resurrected.
        let del = CommandV1::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert_eq!(s.apply(6, &v1(del)), Applied::Done);
        assert_eq!(s.apply(7, &repair(7, 2, old, 3)), Applied::Stale);
        assert!(s.objects.is_empty() && s.data_refs.is_empty());
    }

    #[test]
    fn a_repair_keeps_the_replicated_hash() {
        let mut s = state_with(7);
        let old = shard(&s, 2);
        let wrong = ShardPlacement {
            node: 3,
            sha256: [9; 32],
            sealed: true,
        };
        let c = CommandV1::RepairShard {
            data_id: 7,
            index: 2,
            expected: old,
            placement: wrong,
        };
        assert_eq!(s.apply(3, &v1(c)), Applied::Stale);
    }

    #[test]
    fn lost_marks_are_guarded_and_cleared_by_repair() {
        let mut s = state_with(7);
        let shards = layout_at(&s, 7, &s.data_refs[&7]).unwrap().unwrap().shards;
        let mark = LostMark {
            good: 1,
            needed: 2,
            since_ms: 5,
        };
        let mut stale = shards.clone();
        stale[0].sealed = false;
        let lose = |shards| {
            v1(CommandV1::MarkLost {
                data_id: 7,
                shards,
                mark: mark.clone(),
            })
        };
        assert_eq!(s.apply(3, &lose(stale)), Applied::Stale);
        assert!(s.data_refs[&7].lost.is_none());
        assert_eq!(s.apply(4, &lose(shards.clone())), Applied::Done);
        assert_eq!(s.data_refs[&7].lost, Some(mark.clone()));
        assert_eq!(
            s.apply(5, &repair(7, 2, shards[2].clone(), 3)),
            Applied::Done
        );
        assert_eq!(s.data_refs[&7].lost, None, "a repair clears the mark");
        assert_eq!(s.apply(6, &lose(shards)), Applied::Stale, "layout moved on");
        let relose = lose(layout_at(&s, 7, &s.data_refs[&7]).unwrap().unwrap().shards);
        assert_eq!(s.apply(7, &relose), Applied::Done);
        let clear = CommandV1::ClearLost { data_id: 7 };
        assert_eq!(s.apply(8, &v1(clear)), Applied::Done);
        assert_eq!(s.data_refs[&7].lost, None);
    }

    #[test]
    fn layouts_on_one_node_twice_are_refused() {
        let mut s = state_with(7);
        let mut m = degraded(8);
        let ObjectData::Blob(l) = &mut m.data else {
            unreachable!()
        };
        l.shards[1].node = 1;
        let put = CommandV1::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            meta: m,
            condition: PutCondition::Always,
        };
        assert_eq!(s.apply(3, &v1(put)), Applied::Stale);
        assert!(s.data_refs.contains_key(&7), "the old version stays");
    }

    #[test]
    fn parts_are_found_where_they_are_kept() {
        let mut s = state_with(7);
        let create = CommandV1::CreateUpload {
            upload_id: "u".into(),
            head: head("b", "m"),
        };
        assert_eq!(s.apply(3, &v1(create)), Applied::Done);
        for (n, id) in [(1, 31u128), (2, 32)] {
            let p = CommandV1::PutPart {
                upload_id: "u".into(),
                part: n,
                info: part(id, PART_SIZE_MIN_BYTES),
            };
            assert_eq!(s.apply(3 + u64::from(n), &v1(p)), Applied::Done);
        }
        let r = s.data_refs[&32].clone();
        assert_eq!(
            r.site,
            Site::UploadPart {
                upload_id: "u".into(),
                part: 2
            }
        );
        assert!(layout_at(&s, 32, &r).unwrap().is_some());
        let complete = CommandV1::CompleteUpload {
            upload_id: "u".into(),
            parts: vec![(1, "p31".into()), (2, "p32".into())],
            meta: meta(0),
            part_size_min: crate::meta::PART_SIZE_MIN_BYTES,
        };
        assert_eq!(s.apply(9, &v1(complete)), Applied::Version(9));
        let r = s.data_refs[&32].clone();
        assert_eq!(
            (r.bucket.as_str(), r.key.as_str(), &r.site),
            (
                "b",
                "m",
                &Site::ObjectPart {
                    version: 9,
                    index: 1
                }
            )
        );
        let l = layout_at(&s, 32, &r).unwrap().unwrap();
        assert_eq!(l.data_id, 32);
        assert_eq!(
            s.apply(10, &repair(32, 0, l.shards[0].clone(), 1)),
            Applied::Done,
            "a shard rebuilt in place (rot) commits its unchanged placement"
        );
    }
}
