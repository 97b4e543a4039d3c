//! ListObjectVersions: the engine's page as S3's versions listing. Every object is its
//! one `null` version (buckets are not versioned), the latest, with no delete markers.

use engine::s3::api::{Request, Response};
use engine::s3::{self as es3};
use s3s::S3Result;
use s3s::dto;

use super::Edge;
use super::convert::*;

/// The version id of an object written while versioning was never on, as S3 names it.
const NULL_VERSION: &str = "null";

impl Edge {
    pub(super) async fn list_versions(
        &self,
        who: &super::Asker,
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
        let Response::Listing(page) = self.respond(who, request).await? else {
            return Err(s3s_error(es3::S3Error::Internal("bad answer".into())));
        };
        let names = Names::of(i.encoding_type.as_ref());
        let versions = page
            .objects
            .iter()
            .map(|info| {
                let o = object_dto(info, &names);
                dto::ObjectVersion {
                    key: o.key,
                    size: o.size,
                    e_tag: o.e_tag,
                    last_modified: o.last_modified,
                    checksum_algorithm: o.checksum_algorithm,
                    is_latest: Some(true),
                    version_id: Some(NULL_VERSION.into()),
                    owner: Some(self.owner()),
                    storage_class: Some(dto::ObjectVersionStorageClass::from_static(
                        dto::ObjectVersionStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }
            })
            .collect();
        let next_version = page.next_marker.is_some().then(|| NULL_VERSION.to_string());
        Ok(dto::ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(names.name(&page.prefix)),
            delimiter: names.opt(i.delimiter),
            key_marker: Some(names.name(i.key_marker.as_deref().unwrap_or_default())),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            max_keys: Some(page.max_keys as i32),
            is_truncated: Some(page.truncated),
            next_key_marker: names.opt(page.next_marker),
            next_version_id_marker: next_version,
            versions: Some(versions),
            common_prefixes: prefixes_dto(page.common_prefixes, &names),
            encoding_type: i.encoding_type,
            ..Default::default()
        })
    }
}
