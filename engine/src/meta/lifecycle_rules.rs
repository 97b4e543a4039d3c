//! A lifecycle configuration's rules as values: which keys a rule applies to and what
//! it expires when, and the time a decision is made at. What they do to a bucket is
//! `meta::lifecycle`'s.

use serde::{Deserialize, Serialize};

use super::tag::Tag;

/// Which keys a rule applies to: all of the conditions given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub prefix: String,
    /// Every one of these tags (key and value).
    pub tags: Vec<Tag>,
    /// Sizes strictly greater, strictly less than these.
    pub size_greater: Option<u64>,
    pub size_less: Option<u64>,
}

impl Filter {
    /// Whether an object `key` of `size` with `tags` matches (`None`: what is not
    /// known does not count, as for an upload or a delete marker).
    pub fn matches(&self, key: &str, size: Option<u64>, tags: Option<&[Tag]>) -> bool {
        let size_ok = size.is_none_or(|s| {
            self.size_greater.is_none_or(|g| s > g) && self.size_less.is_none_or(|l| s < l)
        });
        let tags_ok = tags.is_none_or(|have| self.tags.iter().all(|t| have.contains(t)));
        key.starts_with(&self.prefix) && size_ok && tags_ok
    }
}

/// When a rule expires current versions: `days` after creation or from `date_ms` on;
/// `delete_markers`: a delete marker that is a key's only version goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiration {
    pub days: Option<u32>,
    pub date_ms: Option<u64>,
    pub delete_markers: bool,
}

/// Noncurrent versions go `days` after they stopped being current, except the
/// `keep_newer` newest noncurrent ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    pub days: u32,
    pub keep_newer: Option<u32>,
}

/// One rule (checked when put: `crate::s3::lifecycle`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: Option<String>,
    pub enabled: bool,
    pub filter: Filter,
    /// The rule gave its prefix as the old `<Prefix>` element, not a `<Filter>`.
    pub legacy_prefix: bool,
    pub expiration: Option<Expiration>,
    pub noncurrent: Option<NoncurrentExpiration>,
    /// Uploads in progress are aborted this many days after they began.
    pub abort_upload_days: Option<u32>,
}

/// The time a decision is made at, and the length of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    pub now_ms: u64,
    pub day_ms: u64,
}

impl At {
    /// Whether `days` days after `since` (rounded up to a day boundary) has come.
    pub fn past(&self, since_ms: u64, days: u32) -> bool {
        let day = self.day_ms.max(1);
        let end = since_ms.saturating_add(u64::from(days).saturating_mul(day));
        self.now_ms >= end.div_ceil(day).saturating_mul(day)
    }
}
