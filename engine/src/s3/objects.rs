//! Object operations: PUT, HEAD, GET, DELETE, DeleteObjects, listing, copy.

use crate::data_path::ByteSource;
use crate::env::Env;
use crate::meta::PutCondition;
use crate::meta::lock::{self, VersionLock};
use crate::meta::store::MetaReader;
use crate::s3::encryption;
use crate::s3::list::{self, ListPage, ListParams};
use crate::s3::tags;
use crate::s3::types::Given;
use crate::s3::types::{
    Conditions, CopySource, GetOutput, MetadataDirective, NoTrailer, ObjectInfo, PutBody,
    PutObject, PutOutput, RangeSpec, SseArgs, Trailer,
};
use crate::s3::versions::Removal;
use crate::s3::{DELETE_KEYS_MAX, S3, S3Error, validate_key, validate_user_meta};

/// The object lock of `bucket`'s version written at `version`, if it has one.
fn version_lock(
    r: &MetaReader,
    bucket: &str,
    version: u64,
) -> Result<Option<VersionLock>, S3Error> {
    let lock = lock::of(r, bucket, version).map_err(|e| S3Error::Internal(e.to_string()))?;
    Ok((lock != VersionLock::default()).then_some(lock))
}

impl<E: Env> S3<E> {
    pub async fn put_object<S: ByteSource, T: Trailer>(
        &self,
        put: PutObject<S>,
        trailer: &T,
    ) -> Result<PutOutput, S3Error> {
        validate_key(&put.key)?;
        validate_user_meta(&put.user_meta)?;
        // The commit refuses a missing bucket; this only spares writing a body for one.
        // The local replica answers without a round to the leader; only where it knows
        // no such bucket (one created through another node may not be applied here yet)
        // does a ReadIndex decide.
        // The bucket's default encryption is read in the same view.
        let local = self.raft.reader().ok();
        let sealing = match local {
            Some(r) if self.bucket_must_exist(&r, &put.bucket).await.is_ok() => {
                self.write_sealing(&r, &put.bucket, &put.sse)?
            }
            _ => {
                let r = self.reader().await?;
                self.bucket_must_exist(&r, &put.bucket).await?;
                self.write_sealing(&r, &put.bucket, &put.sse)?
            }
        };
        let seal = sealing.as_ref().map(|s| &s.key);
        let (layout, digests) = self.store_body(put.body, trailer, seal).await?;
        let target = (put.bucket.as_str(), put.key.as_str(), put.condition);
        let (headers, meta) = (put.headers, put.user_meta);
        let given = (put.settings, put.lock);
        let record = sealing.map(|s| s.record);
        self.commit_stored(target, given, headers, meta, layout, digests, record)
            .await
    }

    pub async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        conditions: &Conditions,
        (version_id, sse): (Option<&str>, &SseArgs),
        view: Option<MetaReader>,
    ) -> Result<ObjectInfo, S3Error> {
        let r = match view {
            Some(r) => r,
            None => self.reader().await?,
        };
        let stored = self.resolve(&r, bucket, key, version_id).await?;
        let record = self.version_encryption(&r, bucket, stored.version)?;
        self.key_fits(record.as_ref(), sse)?;
        let mut info = ObjectInfo::of(key, &stored);
        info.sse = record.as_ref().map(encryption::info);
        info.version_id = version_id.map(|_| stored.version_id()).or(info.version_id);
        conditions.check(&info)?;
        info.lock = version_lock(&r, bucket, stored.version)?;
        self.must_not_be_lost(&r, &stored)?;
        Ok(info)
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<RangeSpec>,
        conditions: &Conditions,
        (version_id, sse): (Option<&str>, &SseArgs),
        view: Option<MetaReader>,
    ) -> Result<GetOutput, S3Error> {
        // `view`: the one authorization took (after its ReadIndex), if it took one.
        // Otherwise a small object's bytes are read during the ReadIndex (`prefetch`),
        // when the request is for the current version.
        let (r, prefetched) = match view {
            Some(r) => (r, None),
            None if version_id.is_some() => (self.reader().await?, None),
            None => {
                let (r, p) =
                    futures::future::join(self.reader(), self.prefetch(bucket, key, range)).await;
                (r?, p)
            }
        };
        let stored = self.resolve(&r, bucket, key, version_id).await?;
        let record = self.version_encryption(&r, bucket, stored.version)?;
        let data_key = self.opening_key(record.as_ref(), sse)?;
        let mut info = ObjectInfo::of(key, &stored);
        info.sse = record.as_ref().map(encryption::info);
        info.version_id = version_id.map(|_| stored.version_id()).or(info.version_id);
        conditions.check(&info)?;
        info.tag_count = tags::version_tags(&r, bucket, stored.version)?.len();
        info.lock = version_lock(&r, bucket, stored.version)?;
        let (span, range) = match range {
            Some(spec) => {
                let span = spec.resolve(info.size)?;
                (span, Some(span))
            }
            None => ((0, info.size), None),
        };
        // Refused before any byte: a lost part later in a multipart object would
        // otherwise fail the body after a 200 went out.
        self.must_not_be_lost(&r, &stored)?;
        // A prefetch read the stored bytes, which are sealed where the object is.
        let prefetched = prefetched.filter(|_| data_key.is_none());
        if let Some(body) = prefetched.and_then(|p| p.body_for(&stored, span)) {
            return Ok(GetOutput { info, range, body });
        }
        let body = match self.open_body(&r, &stored, span, data_key.as_ref()).await {
            Ok(body) => body,
            Err(e @ S3Error::ServiceUnavailable(_)) => {
                self.must_not_be_lost(&r, &stored)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(GetOutput { info, range, body })
    }

    /// DeleteObjects of `keys` (each with its version id, if the request gave one) but
    /// those in `refused` (the caller may not delete them: they are answered
    /// AccessDenied beside the others, as S3 does).
    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<(String, Option<String>)>,
        refused: &[String],
        bypass: bool,
    ) -> Result<Vec<Removal>, S3Error> {
        if keys.len() > DELETE_KEYS_MAX {
            return Err(S3Error::InvalidArgument(format!(
                "at most {DELETE_KEYS_MAX} keys per request"
            )));
        }
        for (key, _) in &keys {
            validate_key(key)?;
        }
        let refused: std::collections::BTreeSet<&String> = refused.iter().collect();
        let keys: Vec<_> = keys
            .into_iter()
            .filter(|(k, _)| !refused.contains(k))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.delete_versions(bucket, &keys, bypass).await
    }

    pub async fn list_objects(
        &self,
        bucket: &str,
        params: &ListParams,
    ) -> Result<(ListPage, Vec<ObjectInfo>), S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        let page = list::list(&r, bucket, params).map_err(|e| S3Error::Internal(e.to_string()))?;
        let infos = page
            .objects
            .iter()
            .map(|(k, s)| ObjectInfo::of(k, s))
            .collect();
        Ok((page, infos))
    }

    /// CopyObject: the source's bytes become a new blob (a real copy: every blob has
    /// one owner), committed under the destination key with `settings`, and with the
    /// source's tags when `copy_tags` (x-amz-tagging-directive COPY).
    pub async fn copy_object(
        &self,
        source: &CopySource,
        (bucket, key): (&str, &str),
        directive: MetadataDirective,
        (mut settings, lock): Given,
        (copy_tags, sse): (bool, &SseArgs),
    ) -> Result<PutOutput, S3Error> {
        validate_key(key)?;
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        let (stored, info) = self.copy_source(&r, source).await?;
        let record = self.version_encryption(&r, &source.bucket, stored.version)?;
        let source_key = self.opening_key(record.as_ref(), &source.sse)?;
        let sealing = self.write_sealing(&r, bucket, sse)?;
        // S3 lets a copy onto itself change only its encryption.
        let reseals = sse.server.is_some() || sse.customer_key.is_some();
        if source.bucket == bucket
            && source.key == key
            && matches!(directive, MetadataDirective::Copy)
            && !reseals
        {
            return Err(S3Error::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata."
                    .into(),
            ));
        }
        let (headers, user_meta) = match directive {
            MetadataDirective::Copy => (info.headers.clone(), info.user_meta.clone()),
            MetadataDirective::Replace { headers, user_meta } => {
                validate_user_meta(&user_meta)?;
                (headers, user_meta)
            }
        };
        if copy_tags {
            let tags = tags::version_tags(&r, &source.bucket, stored.version)?;
            settings.tags = (!tags.is_empty()).then_some(tags);
        }
        let algorithm = info.checksum.as_ref().map(|c| c.algorithm);
        let body = self
            .open_body(&r, &stored, (0, info.size), source_key.as_ref())
            .await?;
        drop(r);
        let put = PutBody {
            source: body,
            size: info.size,
            content_md5: None,
            checksum: algorithm.map(|a| (a, None)),
        };
        let seal = sealing.as_ref().map(|s| &s.key);
        let (layout, digests) = self.store_body(put, &NoTrailer, seal).await?;
        self.commit_stored(
            (bucket, key, PutCondition::Always),
            (settings, lock),
            headers,
            user_meta,
            layout,
            digests,
            sealing.map(|s| s.record),
        )
        .await
    }

    /// A copy's source version, and its info checked against the source conditions.
    pub(crate) async fn copy_source(
        &self,
        r: &MetaReader,
        source: &CopySource,
    ) -> Result<(crate::meta::Stored, ObjectInfo), S3Error> {
        let version = source.version_id.as_deref();
        let stored = self
            .resolve(r, &source.bucket, &source.key, version)
            .await?;
        let info = ObjectInfo::of(&source.key, &stored);
        source.check(&info)?;
        Ok((stored, info))
    }
}
