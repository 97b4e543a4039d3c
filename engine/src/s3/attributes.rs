//! An object by its parts: GET and HEAD with `partNumber` (one part's bytes, served as a
//! range of the whole object), and GetObjectAttributes (ETag, checksum, size, storage
//! class and a page of a multipart object's parts).

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::meta::ObjectData;
use crate::meta::store::MetaReader;
use crate::s3::types::{ObjectInfo, PartView, PartsPage, RangeSpec, SseArgs};
use crate::s3::{S3, S3Error};

/// S3's highest part number.
pub const PART_NUMBER_MAX: i32 = 10_000;

/// The attributes GetObjectAttributes may name.
pub const ATTRIBUTES: &[&str] = &[
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];

/// GetObjectAttributes' answer: the version's info, and for a multipart object a page
/// of its parts (when `ObjectParts` was asked for) and their count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttributes {
    pub info: ObjectInfo,
    /// The attributes asked for, each one of [`ATTRIBUTES`].
    pub wanted: Vec<String>,
    pub parts: Option<PartsPage>,
    pub parts_count: u32,
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::Internal(e.to_string())
}

/// A part number as a request gives it: 1 to 10,000.
pub fn part_number(n: i32) -> Result<u32, S3Error> {
    if !(1..=PART_NUMBER_MAX).contains(&n) {
        return Err(S3Error::InvalidArgument(format!(
            "Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"
        )));
    }
    Ok(n as u32)
}

impl<E: Env> S3<E> {
    /// The bytes part `number` of the version a request names covers: a multipart
    /// object's part, as a range; a simple object has one part, the whole (`None`).
    pub(crate) async fn part_range(
        &self,
        r: &MetaReader,
        (bucket, key): (&str, &str),
        version_id: Option<&str>,
        number: i32,
    ) -> Result<Option<RangeSpec>, S3Error> {
        let number = part_number(number)?;
        let stored = self.resolve(r, bucket, key, version_id).await?;
        let ObjectData::Parts { .. } = stored.meta.data else {
            return match number {
                1 => Ok(None),
                _ => Err(S3Error::InvalidPartNumber),
            };
        };
        let parts = r.object_parts(stored.version).map_err(internal)?;
        let part = parts
            .get(number as usize - 1)
            .ok_or(S3Error::InvalidPartNumber)?;
        if part.info.size == 0 {
            return Ok(None);
        }
        Ok(Some(RangeSpec::From {
            first: part.offset,
            last: Some(part.offset + part.info.size - 1),
        }))
    }

    /// GetObjectAttributes of the version a request names: `wanted` must name some of
    /// [`ATTRIBUTES`]; a multipart object's parts are paged after `marker`, `max_parts`
    /// (1 to 1,000) at a time.
    pub(crate) async fn object_attributes(
        &self,
        (bucket, key): (&str, &str),
        (version_id, sse): (Option<&str>, &SseArgs),
        wanted: Vec<String>,
        (max_parts, marker): (Option<i32>, Option<i32>),
    ) -> Result<ObjectAttributes, S3Error> {
        if wanted.is_empty() || wanted.iter().any(|w| !ATTRIBUTES.contains(&w.as_str())) {
            return Err(S3Error::InvalidArgument(
                "Invalid attribute name specified.".into(),
            ));
        }
        let marker = u32::try_from(marker.unwrap_or(0))
            .map_err(|_| S3Error::InvalidArgument("part-number-marker must be >= 0".into()))?;
        let max_parts = usize::try_from(max_parts.unwrap_or(1000).clamp(0, 1000)).unwrap_or(0);
        let r = self.reader().await?;
        let stored = self.resolve(&r, bucket, key, version_id).await?;
        // An SSE-C object's attributes need its key, as its GET and HEAD do.
        let record = self.version_encryption(&r, bucket, stored.version)?;
        self.key_fits(record.as_ref(), sse)?;
        let mut info = ObjectInfo::of(key, &stored);
        info.version_id = version_id.map(|_| stored.version_id()).or(info.version_id);
        let (parts, parts_count) = match stored.meta.data {
            ObjectData::Parts { count } => {
                let all = r.object_parts(stored.version).map_err(internal)?;
                let after: Vec<_> = all.into_iter().filter(|p| p.number > marker).collect();
                let truncated = after.len() > max_parts;
                let parts: Vec<PartView> = after
                    .into_iter()
                    .take(max_parts)
                    .map(|p| PartView {
                        number: p.number,
                        size: p.info.size,
                        etag: p.info.etag,
                        last_modified_ms: p.info.created_ms,
                        checksum: p.info.checksum,
                    })
                    .collect();
                let next_marker = parts.last().map_or(marker, |p| p.number);
                let page = PartsPage {
                    parts,
                    truncated,
                    next_marker,
                    max_parts,
                    checksum_algorithm: info.checksum.as_ref().map(|c| c.algorithm),
                };
                let asked = wanted.iter().any(|w| w == "ObjectParts");
                (asked.then_some(page), count)
            }
            _ => (None, 0),
        };
        Ok(ObjectAttributes {
            info,
            wanted,
            parts,
            parts_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_run_from_one_to_ten_thousand() {
        assert_eq!(part_number(1), Ok(1));
        assert_eq!(part_number(PART_NUMBER_MAX), Ok(10_000));
        for bad in [0, -1, PART_NUMBER_MAX + 1] {
            assert_eq!(part_number(bad).unwrap_err().code(), "InvalidArgument");
        }
    }
}
