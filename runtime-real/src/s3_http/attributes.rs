//! An object by its parts at the edge: the span of a ranged or per-part GET or HEAD
//! (s3s answers a GET with a Content-Range 206; a HEAD always 200), `x-amz-mp-parts-count`, and GetObjectAttributes. What a part is, is the
//! engine's (`engine::s3::attributes`).

use engine::s3::api::{Request, Response};
use engine::s3::types::ObjectInfo;
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::convert::*;
use super::{Edge, unexpected};

/// Content-Length and Content-Range of an answer that serves `range` (half-open) of an
/// object of `size` bytes, or all of it.
pub(super) fn span_of(range: Option<(u64, u64)>, size: u64) -> (u64, Option<String>) {
    match range {
        Some((lo, hi)) => (hi - lo, Some(format!("bytes {lo}-{}/{size}", hi - 1))),
        None => (size, None),
    }
}

/// `x-amz-mp-parts-count`: sent when a request named a part of a multipart object.
pub(super) fn parts_count(part_number: Option<i32>, info: &ObjectInfo) -> Option<i32> {
    (part_number.is_some() && info.parts > 0).then_some(info.parts as i32)
}

impl Edge {
    pub(super) async fn attributes(
        &self,
        req: S3Request<dto::GetObjectAttributesInput>,
    ) -> S3Result<S3Response<dto::GetObjectAttributesOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = Request::GetObjectAttributes {
            bucket: i.bucket,
            key: i.key,
            version_id: i.version_id,
            attributes: i
                .object_attributes
                .iter()
                // One header of comma-separated names; clients put spaces after the commas.
                .flat_map(|a| a.as_str().split(',').map(|n| n.trim().to_string()))
                .filter(|n| !n.is_empty())
                .collect(),
            max_parts: i.max_parts,
            part_number_marker: i.part_number_marker,
            sse: super::encryption::sse_args(
                None,
                i.sse_customer_algorithm,
                i.sse_customer_key,
                i.sse_customer_key_md5,
            ),
        };
        let a = match self.respond(who, request).await? {
            Response::Attributes(a) => a,
            other => return Err(unexpected(other)),
        };
        let wants = |name: &str| a.wanted.iter().any(|w| w == name);
        let info = &a.info;
        let c = checksum_fields(info.checksum.as_ref());
        let checksum = dto::Checksum {
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
        };
        let object_parts = a.parts.as_ref().map(|page| dto::GetObjectAttributesParts {
            is_truncated: Some(page.truncated),
            max_parts: Some(page.max_parts as i32),
            next_part_number_marker: Some(page.next_marker as i32),
            part_number_marker: None,
            total_parts_count: Some(a.parts_count as i32),
            parts: Some(
                page.parts
                    .iter()
                    .map(|p| {
                        let c = checksum_fields(p.checksum.as_ref());
                        dto::ObjectPart {
                            checksum_crc32: c.crc32,
                            checksum_crc32c: c.crc32c,
                            checksum_crc64nvme: c.crc64nvme,
                            checksum_sha1: c.sha1,
                            checksum_sha256: c.sha256,
                            part_number: Some(p.number as i32),
                            size: Some(p.size as i64),
                        }
                    })
                    .collect(),
            ),
        });
        Ok(S3Response::new(dto::GetObjectAttributesOutput {
            // S3 sends this one without quotes; s3s's ETag always has them.
            e_tag: wants("ETag").then(|| dto::ETag::Strong(info.etag.clone())),
            checksum: (wants("Checksum") && info.checksum.is_some()).then_some(checksum),
            object_parts,
            object_size: wants("ObjectSize").then_some(info.size as i64),
            storage_class: wants("StorageClass")
                .then(|| dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            version_id: info.version_id.clone(),
            ..Default::default()
        }))
    }
}
