//! Versioning at the edge: Get/PutBucketVersioning, DeleteObject and DeleteObjects
//! (version ids in, delete markers out) and ListObjectVersions. What a version is, and
//! what a DELETE does to a key's versions, is the engine's (`engine::s3::versions`).

use engine::s3::api::{Request, Response};
use engine::s3::versions::{Removal, VersionEntry};
use engine::s3::{self as es3};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::convert::*;
use super::{Asker, Edge, unexpected};

impl Edge {
    pub(super) async fn bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        let who = asker!(req);
        let bucket = req.input.bucket;
        match self
            .respond(who, Request::GetBucketVersioning { bucket })
            .await?
        {
            Response::Versioning(status) => Ok(S3Response::new(dto::GetBucketVersioningOutput {
                status: status.map(dto::BucketVersioningStatus::from),
                ..Default::default()
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_bucket_versioning(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        let who = asker!(req);
        let i = req.input;
        if i.mfa.is_some()
            || i.versioning_configuration
                .mfa_delete
                .as_ref()
                .is_some_and(|m| m.as_str() == dto::MFADelete::ENABLED)
        {
            return Err(s3s_error(es3::S3Error::NotImplemented("MFA delete".into())));
        }
        let status = i
            .versioning_configuration
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let request = Request::PutBucketVersioning {
            bucket: i.bucket,
            status,
        };
        match self.respond(who, request).await? {
            Response::Done => Ok(S3Response::new(dto::PutBucketVersioningOutput::default())),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn delete_one(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::DeleteObject {
            bucket: i.bucket,
            key: i.key,
            version_id: i.version_id,
            bypass_governance: i.bypass_governance_retention.unwrap_or(false),
        };
        let Response::Removed(r) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let output = dto::DeleteObjectOutput {
            delete_marker: r.delete_marker.then_some(true),
            version_id: r.marker_version_id.or(r.version_id),
            ..Default::default()
        };
        Ok(S3Response::with_status(
            output,
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn delete_many(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let who = asker!(req);
        let i = req.input;
        let quiet = i.delete.quiet.unwrap_or(false);
        let objects = i.delete.objects;
        let versioned = objects.iter().any(|o| o.version_id.is_some());
        let request = Request::DeleteObjects {
            bucket: i.bucket,
            version_ids: match versioned {
                true => objects.iter().map(|o| o.version_id.clone()).collect(),
                false => Vec::new(),
            },
            keys: objects.into_iter().map(|o| o.key).collect(),
            quiet,
            bypass_governance: i.bypass_governance_retention.unwrap_or(false),
        };
        let Response::Deleted { deleted, denied } = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let deleted = (!quiet).then(|| deleted.into_iter().map(deleted_dto).collect());
        // Refusals are listed even when quiet: S3 leaves out only the successes.
        let errors = (!denied.is_empty()).then(|| {
            denied
                .into_iter()
                .map(|k| dto::Error {
                    key: Some(k),
                    code: Some("AccessDenied".into()),
                    message: Some("Access Denied".into()),
                    ..Default::default()
                })
                .collect()
        });
        Ok(S3Response::new(dto::DeleteObjectsOutput {
            deleted,
            errors,
            ..Default::default()
        }))
    }

    pub(super) async fn list_versions(
        &self,
        who: &Asker,
        i: dto::ListObjectVersionsInput,
    ) -> S3Result<dto::ListObjectVersionsOutput> {
        let request = Request::ListObjectVersions {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            key_marker: i.key_marker.clone(),
            version_id_marker: i.version_id_marker.clone(),
            max_keys: i.max_keys,
        };
        let Response::Versions(page) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let names = Names::of(i.encoding_type.as_ref());
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for entry in page.entries {
            if entry.marker {
                markers.push(self.marker_dto(entry, &names));
            } else {
                versions.push(self.version_dto(entry, &names));
            }
        }
        let truncated = page.truncated;
        Ok(dto::ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(names.name(&page.prefix)),
            delimiter: names.opt(i.delimiter),
            key_marker: Some(names.name(i.key_marker.as_deref().unwrap_or_default())),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            max_keys: Some(page.max_keys as i32),
            is_truncated: Some(truncated),
            next_key_marker: names.opt(page.next_key_marker.filter(|_| truncated)),
            next_version_id_marker: page.next_version_id_marker.filter(|_| truncated),
            versions: Some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: prefixes_dto(page.common_prefixes, &names),
            encoding_type: i.encoding_type,
            ..Default::default()
        })
    }

    fn version_dto(&self, entry: VersionEntry, names: &Names) -> dto::ObjectVersion {
        let o = object_dto(&entry.info, names);
        dto::ObjectVersion {
            key: o.key,
            size: o.size,
            e_tag: o.e_tag,
            last_modified: o.last_modified,
            checksum_algorithm: o.checksum_algorithm,
            is_latest: Some(entry.latest),
            version_id: Some(entry.version_id),
            owner: Some(self.owner()),
            storage_class: Some(dto::ObjectVersionStorageClass::from_static(
                dto::ObjectVersionStorageClass::STANDARD,
            )),
            ..Default::default()
        }
    }

    fn marker_dto(&self, entry: VersionEntry, names: &Names) -> dto::DeleteMarkerEntry {
        dto::DeleteMarkerEntry {
            key: Some(names.name(&entry.info.key)),
            is_latest: Some(entry.latest),
            last_modified: Some(timestamp(entry.info.last_modified_ms)),
            version_id: Some(entry.version_id),
            owner: Some(self.owner()),
        }
    }
}

fn deleted_dto(r: Removal) -> dto::DeletedObject {
    dto::DeletedObject {
        key: Some(r.key),
        version_id: r.version_id,
        delete_marker: r.delete_marker.then_some(true),
        delete_marker_version_id: r.marker_version_id,
    }
}
