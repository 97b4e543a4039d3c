//! Lifecycle: Get/Put/DeleteBucketLifecycleConfiguration as the engine's
//! `AccessRequest`s, and the rules between s3s's documents and the engine's. What a
//! valid rule is, and what it does, is the engine's (`engine::s3::lifecycle`,
//! `engine::meta::lifecycle`).

use engine::meta::lifecycle::{Expiration, Filter, LifecycleRule, NoncurrentExpiration};
use engine::s3::S3Error as EngineError;
use engine::s3::api::{AccessRequest, Request, Response};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::tagging::{tag_of, tag_set};
use super::{Edge, ms_of, s3s_error, timestamp, unexpected};

fn malformed(why: &str) -> s3s::S3Error {
    s3s_error(EngineError::MalformedXml(why.into()))
}

/// A count S3 sends as a signed integer: negative ones are refused, as 0 is (the
/// engine says which field must be positive).
fn count(n: Option<i32>) -> Option<u32> {
    n.map(|n| u32::try_from(n).unwrap_or(0))
}

fn size(n: Option<i64>) -> S3Result<Option<u64>> {
    n.map(|n| {
        u64::try_from(n).map_err(|_| {
            s3s_error(EngineError::InvalidArgument(
                "an object size is negative".into(),
            ))
        })
    })
    .transpose()
}

fn filter_of(f: dto::LifecycleRuleFilter) -> S3Result<Filter> {
    let mut filter = Filter {
        prefix: f.prefix.unwrap_or_default(),
        tags: f.tag.into_iter().map(tag_of).collect(),
        size_greater: size(f.object_size_greater_than)?,
        size_less: size(f.object_size_less_than)?,
    };
    if let Some(and) = f.and {
        if !filter.prefix.is_empty() || !filter.tags.is_empty() {
            return Err(malformed(
                "a Filter gives its conditions either alone or in And",
            ));
        }
        filter.prefix = and.prefix.unwrap_or_default();
        filter.tags = and
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(tag_of)
            .collect();
        filter.size_greater = size(and.object_size_greater_than)?.or(filter.size_greater);
        filter.size_less = size(and.object_size_less_than)?.or(filter.size_less);
    }
    Ok(filter)
}

fn rule_of(r: dto::LifecycleRule) -> S3Result<LifecycleRule> {
    let enabled = match r.status.as_str() {
        dto::ExpirationStatus::ENABLED => true,
        dto::ExpirationStatus::DISABLED => false,
        other => {
            return Err(malformed(&format!(
                "Status {other:?} is not Enabled or Disabled"
            )));
        }
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3s_error(EngineError::NotImplemented(
            "lifecycle transitions: Hamster has one storage class".into(),
        )));
    }
    let (filter, legacy_prefix) = match (r.filter, r.prefix) {
        (Some(_), Some(_)) => return Err(malformed("a rule gives a Filter or a Prefix, not both")),
        (Some(f), None) => (filter_of(f)?, false),
        (None, Some(prefix)) => (
            Filter {
                prefix,
                ..Filter::default()
            },
            true,
        ),
        (None, None) => (Filter::default(), false),
    };
    Ok(LifecycleRule {
        id: r.id,
        enabled,
        filter,
        legacy_prefix,
        expiration: r.expiration.map(|e| Expiration {
            days: count(e.days),
            date_ms: e.date.as_ref().map(ms_of),
            delete_markers: e.expired_object_delete_marker == Some(true),
        }),
        noncurrent: r
            .noncurrent_version_expiration
            .map(|n| NoncurrentExpiration {
                days: count(n.noncurrent_days).unwrap_or(0),
                keep_newer: count(n.newer_noncurrent_versions),
            }),
        abort_upload_days: r
            .abort_incomplete_multipart_upload
            .map(|a| count(a.days_after_initiation).unwrap_or(0)),
    })
}

/// A filter as S3 writes it back: one condition alone, more than one in `And`.
fn filter_dto(f: Filter) -> dto::LifecycleRuleFilter {
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater.is_some())
        + usize::from(f.size_less.is_some());
    let signed = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    if conditions > 1 {
        return dto::LifecycleRuleFilter {
            and: Some(dto::LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then_some(f.prefix),
                tags: (!f.tags.is_empty()).then(|| tag_set(f.tags)),
                object_size_greater_than: signed(f.size_greater),
                object_size_less_than: signed(f.size_less),
            }),
            ..dto::LifecycleRuleFilter::default()
        };
    }
    dto::LifecycleRuleFilter {
        prefix: (conditions == 0 || !f.prefix.is_empty()).then_some(f.prefix),
        tag: tag_set(f.tags).into_iter().next(),
        object_size_greater_than: signed(f.size_greater),
        object_size_less_than: signed(f.size_less),
        ..dto::LifecycleRuleFilter::default()
    }
}

fn rule_dto(r: LifecycleRule) -> dto::LifecycleRule {
    let signed = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let (filter, prefix) = if r.legacy_prefix {
        (None, Some(r.filter.prefix))
    } else {
        (Some(filter_dto(r.filter)), None)
    };
    let status = if r.enabled {
        dto::ExpirationStatus::ENABLED
    } else {
        dto::ExpirationStatus::DISABLED
    };
    dto::LifecycleRule {
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            dto::AbortIncompleteMultipartUpload {
                days_after_initiation: Some(signed(d)),
            }
        }),
        expiration: r.expiration.map(|e| dto::LifecycleExpiration {
            date: e.date_ms.map(timestamp),
            days: e.days.map(signed),
            expired_object_delete_marker: e.delete_markers.then_some(true),
        }),
        filter,
        id: r.id,
        noncurrent_version_expiration: r.noncurrent.map(|n| dto::NoncurrentVersionExpiration {
            newer_noncurrent_versions: n.keep_newer.map(signed),
            noncurrent_days: Some(signed(n.days)),
        }),
        noncurrent_version_transitions: None,
        prefix,
        status: dto::ExpirationStatus::from_static(status),
        transitions: None,
    }
}

impl Edge {
    pub(super) async fn bucket_lifecycle(
        &self,
        req: S3Request<dto::GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLifecycleConfigurationOutput>> {
        let request = Request::Access {
            bucket: req.input.bucket.clone(),
            request: AccessRequest::GetBucketLifecycleConfiguration,
        };
        match self.respond(asker!(req), request).await? {
            Response::Lifecycle(rules) => Ok(S3Response::new(
                dto::GetBucketLifecycleConfigurationOutput {
                    rules: Some(rules.into_iter().map(rule_dto).collect()),
                    ..Default::default()
                },
            )),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_bucket_lifecycle(
        &self,
        req: S3Request<dto::PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutBucketLifecycleConfigurationOutput>> {
        let i = &req.input;
        let Some(config) = i.lifecycle_configuration.clone() else {
            return Err(malformed("the request has no LifecycleConfiguration"));
        };
        let rules = config
            .rules
            .into_iter()
            .map(rule_of)
            .collect::<S3Result<Vec<_>>>()?;
        let request = Request::Access {
            bucket: i.bucket.clone(),
            request: AccessRequest::PutBucketLifecycleConfiguration(rules),
        };
        self.respond(asker!(req), request).await?;
        Ok(S3Response::new(
            dto::PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn drop_bucket_lifecycle(
        &self,
        req: S3Request<dto::DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketLifecycleOutput>> {
        let request = Request::Access {
            bucket: req.input.bucket.clone(),
            request: AccessRequest::DeleteBucketLifecycle,
        };
        self.respond(asker!(req), request).await?;
        Ok(S3Response::with_status(
            dto::DeleteBucketLifecycleOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
