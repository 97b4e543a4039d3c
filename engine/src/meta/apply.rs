//! `apply`: a committed [`Command`] applied to [`MetaTables`], as a pure function of the
//! state and the command.

use std::collections::BTreeSet;

use super::versions::NewVersion;
use super::{
    Applied, Bucket, Command, CommandV1, DataRef, MetaTables, ObjectData, ObjectMeta, ObjectPart,
    PutCondition, Site, access, encryption, keys, lifecycle, lock, repair, versions,
};

/// Removes an upload, its parts and their data refs.
pub(super) fn drop_upload<T: MetaTables>(t: &mut T, id: &str) -> Result<bool, T::Error> {
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
