//! Lifecycle configurations as S3 checks them when they are put. What a rule does is
//! `meta::lifecycle`'s; the task that carries it out is `crate::lifecycle`.

use std::collections::BTreeSet;

use crate::meta::lifecycle::LifecycleRule;
use crate::s3::S3Error;

/// Most rules a configuration may have.
pub const RULES_MAX: usize = 1000;
/// Longest rule id.
pub const ID_MAX: usize = 255;
/// Most newest noncurrent versions a rule may keep.
pub const KEEP_NEWER_MAX: u32 = 100;

const DAY_MS: u64 = 24 * 3600 * 1000;

fn argument(why: &str) -> S3Error {
    S3Error::InvalidArgument(why.into())
}

fn request(why: &str) -> S3Error {
    S3Error::InvalidRequest(why.into())
}

/// Checks a configuration against S3's rules.
pub fn validate(rules: &[LifecycleRule]) -> Result<(), S3Error> {
    if rules.is_empty() || rules.len() > RULES_MAX {
        return Err(S3Error::MalformedXml(format!(
            "a lifecycle configuration has 1 to {RULES_MAX} rules"
        )));
    }
    let mut ids = BTreeSet::new();
    for rule in rules {
        if let Some(id) = &rule.id {
            if id.len() > ID_MAX {
                return Err(argument("ID length should not exceed allowed limit of 255"));
            }
            if !ids.insert(id.as_str()) {
                return Err(argument(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
        }
        check_rule(rule)?;
    }
    Ok(())
}

fn check_rule(rule: &LifecycleRule) -> Result<(), S3Error> {
    let f = &rule.filter;
    let tagged = !f.tags.is_empty();
    let keys: BTreeSet<&str> = f.tags.iter().map(|t| t.key.as_str()).collect();
    if keys.len() != f.tags.len() {
        return Err(request("Duplicate Tag Keys are not allowed."));
    }
    if let (Some(g), Some(l)) = (f.size_greater, f.size_less)
        && g >= l
    {
        return Err(argument(
            "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
        ));
    }
    if rule.expiration.is_none() && rule.noncurrent.is_none() && rule.abort_upload_days.is_none() {
        return Err(request(
            "At least one action needs to be specified in a rule",
        ));
    }
    if let Some(e) = &rule.expiration {
        let given = usize::from(e.days.is_some())
            + usize::from(e.date_ms.is_some())
            + usize::from(e.delete_markers);
        if given != 1 {
            return Err(S3Error::MalformedXml(
                "an Expiration gives one of Days, Date and ExpiredObjectDeleteMarker".into(),
            ));
        }
        if e.days == Some(0) {
            return Err(argument(
                "'Days' for Expiration action must be a positive integer",
            ));
        }
        if e.date_ms.is_some_and(|d| d % DAY_MS != 0) {
            return Err(argument("'Date' must be at midnight GMT"));
        }
        if e.delete_markers && tagged {
            return Err(request(
                "Tag-based filter cannot be used with ExpiredObjectDeleteMarker",
            ));
        }
    }
    if let Some(n) = &rule.noncurrent {
        if n.days == 0 {
            return Err(argument(
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            ));
        }
        if n.keep_newer.is_some_and(|k| k == 0 || k > KEEP_NEWER_MAX) {
            return Err(argument(
                "'NewerNoncurrentVersions' must be a positive integer up to 100",
            ));
        }
    }
    if let Some(days) = rule.abort_upload_days {
        if days == 0 {
            return Err(argument(
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            ));
        }
        if tagged {
            return Err(request(
                "Tag-based filter cannot be used with AbortIncompleteMultipartUpload action",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::access::Tag;
    use crate::meta::lifecycle::{Expiration, Filter, NoncurrentExpiration};

    fn expiring(days: u32) -> LifecycleRule {
        LifecycleRule {
            id: Some("r".into()),
            enabled: true,
            expiration: Some(Expiration {
                days: Some(days),
                ..Expiration::default()
            }),
            ..LifecycleRule::default()
        }
    }

    #[test]
    fn configurations_follow_s3_rules() {
        assert!(validate(&[expiring(1)]).is_ok());
        let code = |rules: &[LifecycleRule]| validate(rules).unwrap_err().code();
        assert_eq!(code(&[]), "MalformedXML");
        assert_eq!(code(&[expiring(0)]), "InvalidArgument");
        assert_eq!(code(&[expiring(1), expiring(2)]), "InvalidArgument");
        let mut none = expiring(1);
        none.expiration = None;
        assert_eq!(code(&[none.clone()]), "InvalidRequest");
        none.noncurrent = Some(NoncurrentExpiration {
            days: 3,
            keep_newer: Some(101),
        });
        assert_eq!(code(&[none]), "InvalidArgument");
        let mut both = expiring(1);
        both.expiration.as_mut().unwrap().delete_markers = true;
        assert_eq!(code(&[both]), "MalformedXML");
        let mut dated = expiring(1);
        dated.expiration = Some(Expiration {
            date_ms: Some(DAY_MS + 1),
            ..Expiration::default()
        });
        assert_eq!(code(&[dated.clone()]), "InvalidArgument");
        dated.expiration.as_mut().unwrap().date_ms = Some(20_000 * DAY_MS);
        assert!(validate(&[dated]).is_ok());
        let tag = |k: &str| Tag {
            key: k.into(),
            value: "v".into(),
        };
        let mut abort = expiring(1);
        abort.abort_upload_days = Some(7);
        abort.filter = Filter {
            tags: vec![tag("a")],
            ..Filter::default()
        };
        assert_eq!(code(&[abort.clone()]), "InvalidRequest");
        abort.abort_upload_days = None;
        assert!(validate(&[abort.clone()]).is_ok());
        abort.filter.tags.push(tag("a"));
        assert_eq!(code(&[abort]), "InvalidRequest");
        let mut sizes = expiring(1);
        sizes.filter.size_greater = Some(10);
        sizes.filter.size_less = Some(10);
        assert_eq!(code(&[sizes]), "InvalidArgument");
    }
}
