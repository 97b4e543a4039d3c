//! Versioning as S3 answers it: version ids, Get/PutBucketVersioning, finding the
//! version a request names (delete markers answered as S3 does), DELETE with and
//! without a version id, and ListObjectVersions. What a write or a DELETE does to the
//! versions of a key is decided at apply time (`meta::versions`).

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::meta::access::Setting;
use crate::meta::store::MetaReader;
use crate::meta::versions::{
    self, NULL_ID, Outcome, VERSIONING, VersionRef, Versioning, version_id,
};
use crate::meta::{Applied, CommandV1, Stored};
use crate::s3::list::{self, ListParams};
use crate::s3::types::ObjectInfo;
use crate::s3::{S3, S3Error, applied_error, validate_key};

/// A version id as a request gives it: `null`, or one this store made.
pub fn parse(id: &str) -> Result<VersionRef, S3Error> {
    VersionRef::parse(id)
        .ok_or_else(|| S3Error::InvalidArgument("Invalid version id specified".into()))
}

/// An optional version id, parsed.
pub fn parse_opt(id: Option<&str>) -> Result<Option<VersionRef>, S3Error> {
    id.map(parse).transpose()
}

/// What a DELETE did, as S3 reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub key: String,
    /// The version id the request named.
    pub version_id: Option<String>,
    /// The version removed was a delete marker, or a delete marker was written.
    pub delete_marker: bool,
    /// The id of the delete marker written.
    pub marker_version_id: Option<String>,
    /// Nothing was removed: the version's object lock keeps it.
    pub locked: bool,
}

/// One entry of ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub info: ObjectInfo,
    pub version_id: String,
    pub latest: bool,
    pub marker: bool,
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsPage {
    pub prefix: String,
    pub max_keys: usize,
    pub entries: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// Entries (versions and common prefixes) on `page` so far.
fn entries(page: &VersionsPage) -> usize {
    page.entries.len() + page.common_prefixes.len()
}

/// Adds `key`'s noncurrent versions older than `below` (all, without it), newest
/// first, while the page has room; reads one more than fits, to know whether the page
/// ends inside them (then it is truncated, and true is returned).
fn push_older(
    r: &MetaReader,
    page: &mut VersionsPage,
    (bucket, key): (&str, &str),
    below: Option<u64>,
) -> Result<bool, S3Error> {
    let left = page.max_keys.saturating_sub(entries(page));
    let older = r
        .versions_below(bucket, key, below, left + 1)
        .map_err(internal)?;
    let more = older.len() > left;
    for s in older.into_iter().take(left) {
        push_version(page, key, s, false);
    }
    page.truncated |= more;
    Ok(more)
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::Internal(e.to_string())
}

impl<E: Env> S3<E> {
    /// The version of `key` a request names: with no id the current one (a delete
    /// marker there is `NoSuchKey`, flagged), with an id that version (`NoSuchVersion`
    /// if absent; a delete marker is `MethodNotAllowed`, flagged).
    pub(crate) async fn resolve(
        &self,
        r: &MetaReader,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Stored, S3Error> {
        let which = parse_opt(version_id)?;
        self.bucket_must_exist(r, bucket).await?;
        let missing = match which {
            None => S3Error::NoSuchKey,
            Some(_) => S3Error::NoSuchVersion,
        };
        if validate_key(key).is_err() {
            return Err(missing);
        }
        let found = match which {
            None => r.object(bucket, key),
            Some(which) => versions::find(r, (bucket, key), which),
        };
        let stored = found.map_err(internal)?.ok_or(missing)?;
        if stored.marker {
            return Err(S3Error::DeleteMarker {
                version_id: stored.version_id(),
                named: which.is_some(),
            });
        }
        Ok(stored)
    }

    /// GetBucketVersioning: `Enabled`, `Suspended`, or `None` if never set.
    pub(crate) async fn get_versioning(&self, bucket: &str) -> Result<Option<String>, S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        Ok(match versions::status(&r, bucket).map_err(internal)? {
            Some(Versioning::Enabled) => Some("Enabled".into()),
            Some(Versioning::Suspended) => Some("Suspended".into()),
            None => None,
        })
    }

    /// PutBucketVersioning: `Enabled` or `Suspended`.
    pub(crate) async fn put_versioning(&self, bucket: &str, status: &str) -> Result<(), S3Error> {
        let v = match status {
            "Enabled" => Versioning::Enabled,
            "Suspended" => Versioning::Suspended,
            other => {
                return Err(S3Error::MalformedXml(format!(
                    "versioning status must be Enabled or Suspended, not {other:?}"
                )));
            }
        };
        let command = CommandV1::PutSetting {
            bucket: bucket.into(),
            name: VERSIONING.into(),
            setting: Setting::Versioning(v),
        };
        match self.propose(command).await? {
            Applied::Done => Ok(()),
            Applied::InvalidBucketState => Err(S3Error::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning \
                 state cannot be changed."
                    .into(),
            )),
            other => Err(applied_error(other)),
        }
    }

    /// DeleteObject: of the current version (a delete marker where the bucket has
    /// versioning), or of the version named (unless its object lock keeps it;
    /// `bypass`: a GOVERNANCE retention yields).
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass: bool,
    ) -> Result<Removal, S3Error> {
        validate_key(key)?;
        let target = [(key.to_string(), version_id.map(String::from))];
        let removal = self
            .delete_versions(bucket, &target, bypass)
            .await?
            .pop()
            .unwrap_or_default();
        if removal.locked {
            return Err(S3Error::ObjectLocked);
        }
        Ok(removal)
    }

    /// Deletes each (key, version id): those without an id in one command (markers
    /// where the bucket has versioning), those with one in another, which removes only
    /// the versions their object lock lets go (the others are answered `locked`).
    pub(crate) async fn delete_versions(
        &self,
        bucket: &str,
        targets: &[(String, Option<String>)],
        bypass: bool,
    ) -> Result<Vec<Removal>, S3Error> {
        let mut named = Vec::new();
        let mut keys = Vec::new();
        for (key, id) in targets {
            match parse_opt(id.as_deref())? {
                Some(which) => named.push((key.clone(), which)),
                None => keys.push(key.clone()),
            }
        }
        let mut out = Vec::with_capacity(targets.len());
        if !keys.is_empty() {
            let command = CommandV1::DeleteObjectsAt {
                bucket: bucket.into(),
                keys: keys.clone(),
                now_ms: self.now_ms(),
            };
            let marker = match self.propose(command).await? {
                Applied::Done => None,
                Applied::Marker { version, null } => Some(version_id(version, null)),
                other => return Err(applied_error(other)),
            };
            out.extend(keys.into_iter().map(|key| Removal {
                key,
                version_id: None,
                delete_marker: marker.is_some(),
                marker_version_id: marker.clone(),
                locked: false,
            }));
        }
        if !named.is_empty() {
            let command = CommandV1::DeleteVersionsAt {
                bucket: bucket.into(),
                targets: named.clone(),
                now_ms: self.now_ms(),
                bypass,
            };
            let Applied::Outcomes(removed) = self.propose(command).await? else {
                return Err(S3Error::NoSuchBucket);
            };
            // Deleting a version that is not there succeeds, as in S3.
            for ((key, which), was) in named.into_iter().zip(removed) {
                let id = match which {
                    VersionRef::Null => NULL_ID.to_string(),
                    VersionRef::Id(v) => version_id(v, false),
                };
                out.push(Removal {
                    key,
                    version_id: Some(id),
                    delete_marker: was == Outcome::Removed { marker: true },
                    marker_version_id: None,
                    locked: was == Outcome::Locked,
                });
            }
        }
        Ok(out)
    }

    /// One page of ListObjectVersions after (`key_marker`, `version_marker`).
    pub(crate) async fn list_versions(
        &self,
        bucket: &str,
        params: ListParams,
        version_marker: Option<VersionRef>,
    ) -> Result<VersionsPage, S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        versions_page(&r, bucket, params, version_marker)
    }
}

/// One page of ListObjectVersions of `bucket` in the view `r`, after (`params.after`,
/// `version_marker`).
pub fn versions_page(
    r: &MetaReader,
    bucket: &str,
    params: ListParams,
    version_marker: Option<VersionRef>,
) -> Result<VersionsPage, S3Error> {
    let max = params.max_keys;
    let mut page = VersionsPage {
        prefix: params.prefix.clone(),
        max_keys: max,
        entries: Vec::new(),
        common_prefixes: Vec::new(),
        truncated: false,
        next_key_marker: None,
        next_version_id_marker: None,
    };
    let full = |page: &VersionsPage| entries(page) >= max;
    // The rest of the marker key's versions, after the marker's (unless the key is
    // under a common prefix: a page ending on one names it as the key marker).
    let rolled_up = |key: &str| {
        let d = params.delimiter.as_deref().filter(|d| !d.is_empty());
        key.strip_prefix(params.prefix.as_str())
            .is_some_and(|rest| d.is_some_and(|d| rest.contains(d)))
    };
    if let (Some(key), Some(marker)) = (&params.after, version_marker)
        && !rolled_up(key)
        && let Some(current) = r.object(bucket, key).map_err(internal)?
    {
        // Versions are ordered by id: those after the marker's are older than it.
        let below = match marker {
            VersionRef::Id(v) => Some(v),
            VersionRef::Null if current.null => Some(current.version),
            VersionRef::Null => versions::find(r, (bucket, key), VersionRef::Null)
                .map_err(internal)?
                .map(|s| s.version),
        };
        if let Some(below) = below
            && push_older(r, &mut page, (bucket, key), Some(below))?
        {
            return Ok(page);
        }
    }
    let mut after = params.after.clone();
    loop {
        let left = max.saturating_sub(entries(&page));
        let p = ListParams {
            after: after.clone(),
            max_keys: left.max(1),
            markers: true,
            ..params.clone()
        };
        let listed = list::list(r, bucket, &p).map_err(internal)?;
        let mut items: Vec<(String, Option<Stored>)> = listed
            .objects
            .into_iter()
            .map(|(k, s)| (k, Some(s)))
            .chain(listed.common_prefixes.into_iter().map(|p| (p, None)))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        if items.is_empty() {
            return Ok(page);
        }
        for (name, current) in items {
            if full(&page) {
                page.truncated = true;
                return Ok(page);
            }
            let Some(current) = current else {
                // S3 clients resume with both markers; a prefix has no version,
                // and a version marker with it is ignored (above).
                page.next_key_marker = Some(name.clone());
                page.next_version_id_marker = Some(NULL_ID.into());
                page.common_prefixes.push(name);
                continue;
            };
            push_version(&mut page, &name, current, true);
            if push_older(r, &mut page, (bucket, &name), None)? {
                return Ok(page);
            }
        }
        if !listed.truncated {
            return Ok(page);
        }
        after = listed.last;
    }
}

fn push_version(page: &mut VersionsPage, key: &str, s: Stored, latest: bool) {
    let id = s.version_id();
    page.next_key_marker = Some(key.to_string());
    page.next_version_id_marker = Some(id.clone());
    let marker = s.marker;
    page.entries.push(VersionEntry {
        info: ObjectInfo::of(key, &s),
        version_id: id,
        latest,
        marker,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse(&version_id(42, false)).unwrap(), VersionRef::Id(42));
        assert_eq!(parse("null").unwrap(), VersionRef::Null);
        assert_eq!(version_id(42, true), "null");
        for bad in ["", "3HL4kq", "2a", "000000000000002g", "0000000000000002a"] {
            assert_eq!(parse(bad).unwrap_err().code(), "InvalidArgument", "{bad}");
        }
    }
}
