//! Object and bucket tagging: S3's rules for a tag set, the `x-amz-tagging` header, and
//! the Get/Put/DeleteObjectTagging and Get/Put/DeleteBucketTagging requests.
//!
//! Tags are rows of the settings table (`meta::access`): an object version's, written
//! in the same commit as the version when its PUT, copy or upload gave them
//! (`CommandV1::PutObjectWith`, or moved from the upload at completion), and changed
//! later only on the version the request read (`CommandV1::PutObjectTags`), so a tag
//! set never lands on a version that overwrote the one it was meant for.

use crate::env::Env;
use crate::meta::access::{self as settings, Setting, Tag};
use crate::meta::store::MetaReader;
use crate::meta::{Applied, CommandV1};
use crate::s3::api::{Response, TagRequest};
use crate::s3::{S3, S3Error, applied_error};

/// Most tags an object version may have.
pub const OBJECT_TAGS_MAX: usize = 10;
/// Most tags a bucket may have.
pub const BUCKET_TAGS_MAX: usize = 50;
/// Longest tag key, in characters.
pub const TAG_KEY_CHARS_MAX: usize = 128;
/// Longest tag value, in characters.
pub const TAG_VALUE_CHARS_MAX: usize = 256;

fn invalid(why: impl Into<String>) -> S3Error {
    S3Error::InvalidTag(why.into())
}

/// Letters, digits, spaces and `+ - = . _ : / @`: what S3 allows in tags.
fn allowed(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c))
}

/// Checks a tag set against S3's rules; `max` is [`OBJECT_TAGS_MAX`] or
/// [`BUCKET_TAGS_MAX`].
pub fn validate(tags: &[Tag], max: usize) -> Result<(), S3Error> {
    if tags.len() > max {
        return Err(invalid(format!("a tag set has at most {max} tags")));
    }
    for (i, tag) in tags.iter().enumerate() {
        let chars = tag.key.chars().count();
        if chars == 0 || chars > TAG_KEY_CHARS_MAX {
            return Err(invalid(format!(
                "The TagKey you have provided is invalid: keys are 1 to {TAG_KEY_CHARS_MAX} characters"
            )));
        }
        if tag.value.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(invalid(format!(
                "The TagValue you have provided is invalid: values are at most {TAG_VALUE_CHARS_MAX} characters"
            )));
        }
        if !allowed(&tag.key) || !allowed(&tag.value) {
            return Err(invalid(
                "tags use letters, digits, spaces and + - = . _ : / @ only",
            ));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("Your TagKey cannot be prefixed with aws:"));
        }
        if tags[..i].iter().any(|t| t.key == tag.key) {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// The tag set of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded), checked.
pub fn parse_header(header: &str) -> Result<Vec<Tag>, S3Error> {
    let tags: Vec<Tag> = form_urlencoded::parse(header.as_bytes())
        .map(|(k, v)| Tag {
            key: k.into_owned(),
            value: v.into_owned(),
        })
        .collect();
    validate(&tags, OBJECT_TAGS_MAX)?;
    Ok(tags)
}

/// The tags of the object version written at `version` (none: no row).
pub(crate) fn version_tags(
    r: &MetaReader,
    bucket: &str,
    version: u64,
) -> Result<Vec<Tag>, S3Error> {
    match r.setting(bucket, &settings::object_tags(version)) {
        Ok(Some(Setting::Tags(tags))) => Ok(tags),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(S3Error::Internal(e.to_string())),
    }
}

impl<E: Env> S3<E> {
    /// Answers one tagging request on `bucket`.
    pub(crate) async fn tag_request(
        &self,
        bucket: &str,
        request: TagRequest,
    ) -> Result<Response, S3Error> {
        use TagRequest as T;
        let reader = self.reader().await?;
        self.bucket_must_exist(&reader, bucket).await?;
        let internal = |e: crate::meta::store::StoreError| S3Error::Internal(e.to_string());
        let command = match request {
            T::GetObject { key, version_id } => {
                let stored = self
                    .resolve(&reader, bucket, &key, version_id.as_deref())
                    .await?;
                return Ok(Response::Tags(version_tags(
                    &reader,
                    bucket,
                    stored.version,
                )?));
            }
            T::PutObject {
                key,
                version_id,
                tags,
            } => {
                validate(&tags, OBJECT_TAGS_MAX)?;
                let stored = self
                    .resolve(&reader, bucket, &key, version_id.as_deref())
                    .await?;
                CommandV1::PutObjectTags {
                    bucket: bucket.into(),
                    key,
                    version: Some(stored.version),
                    tags: Some(tags),
                }
            }
            T::DeleteObject { key, version_id } => {
                let stored = self
                    .resolve(&reader, bucket, &key, version_id.as_deref())
                    .await?;
                CommandV1::PutObjectTags {
                    bucket: bucket.into(),
                    key,
                    version: Some(stored.version),
                    tags: None,
                }
            }
            T::GetBucket => {
                return match reader
                    .setting(bucket, settings::BUCKET_TAGGING)
                    .map_err(internal)?
                {
                    Some(Setting::Tags(tags)) => Ok(Response::Tags(tags)),
                    _ => Err(S3Error::NoSuchTagSet),
                };
            }
            T::PutBucket(tags) => {
                validate(&tags, BUCKET_TAGS_MAX)?;
                CommandV1::PutSetting {
                    bucket: bucket.into(),
                    name: settings::BUCKET_TAGGING.into(),
                    setting: Setting::Tags(tags),
                }
            }
            T::DeleteBucket => CommandV1::DeleteSetting {
                bucket: bucket.into(),
                name: settings::BUCKET_TAGGING.into(),
            },
        };
        drop(reader);
        match self.propose(command).await? {
            Applied::Done => Ok(Response::Done),
            // The object was overwritten or deleted between the read and the commit:
            // the tags were meant for a version that is gone.
            Applied::PreconditionFailed | Applied::NoSuchKey => Err(S3Error::OutcomeUnknown(
                "the object changed while its tags were set; retry".into(),
            )),
            other => Err(applied_error(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn the_header_is_url_encoded_pairs() {
        assert_eq!(
            parse_header("a=1&b%20c=d+e&empty=&bare").unwrap(),
            vec![
                tag("a", "1"),
                tag("b c", "d e"),
                tag("empty", ""),
                tag("bare", "")
            ]
        );
        assert_eq!(parse_header("").unwrap(), vec![]);
        assert_eq!(
            parse_header("path=%2Fa%2Fb&email=x%40y.z").unwrap(),
            vec![tag("path", "/a/b"), tag("email", "x@y.z")]
        );
    }

    #[test]
    fn tag_sets_follow_s3_rules() {
        let code = |tags: &[Tag], max| validate(tags, max).map_err(|e| e.code());
        assert_eq!(code(&[tag("k", "v"), tag("K", "v")], 10), Ok(()));
        assert_eq!(code(&[tag("k", "v"), tag("k", "w")], 10), Err("InvalidTag"));
        let eleven: Vec<Tag> = (0..11).map(|i| tag(&format!("k{i}"), "")).collect();
        assert_eq!(code(&eleven, OBJECT_TAGS_MAX), Err("InvalidTag"));
        assert_eq!(code(&eleven, BUCKET_TAGS_MAX), Ok(()));
        assert_eq!(code(&[tag("", "v")], 10), Err("InvalidTag"));
        assert_eq!(code(&[tag(&"k".repeat(128), "")], 10), Ok(()));
        assert_eq!(code(&[tag(&"k".repeat(129), "")], 10), Err("InvalidTag"));
        assert_eq!(code(&[tag("k", &"v".repeat(256))], 10), Ok(()));
        assert_eq!(code(&[tag("k", &"v".repeat(257))], 10), Err("InvalidTag"));
        assert_eq!(code(&[tag("aws:x", "v")], 10), Err("InvalidTag"));
        assert_eq!(code(&[tag("AWS:x", "v")], 10), Err("InvalidTag"));
        assert_eq!(code(&[tag("k", "a<b")], 10), Err("InvalidTag"));
        assert_eq!(code(&[tag("ключ é", "ü +-=._:/@")], 10), Ok(()));
        assert_eq!(
            parse_header("a=1&a=2").map_err(|e| e.code()),
            Err("InvalidTag")
        );
    }
}
