//! ListObjects (v1 and v2) over the ordered object index: prefix, delimiter and common
//! prefixes, max-keys, and a resume point (marker, start-after or continuation token:
//! all "after this key"). A run of keys under one common prefix is skipped with one
//! range seek past the prefix, not walked, so a prefix with millions of keys below a
//! delimiter costs one row. Keys whose current version is a delete marker are left
//! out (a common prefix is shown even when only such keys are under it).

use std::ops::Bound;

use crate::meta::Stored;
use crate::meta::store::{MetaReader, StoreError};

/// Rows read from the index per range call.
const BATCH_ROWS: usize = 1000;
/// S3's largest page.
pub const MAX_KEYS_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume after this key (or common prefix).
    pub after: Option<String>,
    pub max_keys: usize,
    /// List keys whose current version is a delete marker (ListObjectVersions does;
    /// ListObjects leaves them out).
    pub markers: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<(String, Stored)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix of the page: where the next page resumes.
    pub last: Option<String>,
}

/// The smallest string above every string that starts with `prefix`, when one is
/// simple to make (the last byte is ASCII below DEL); otherwise `None` and the caller
/// walks instead.
fn past_prefix(prefix: &str) -> Option<String> {
    let last = *prefix.as_bytes().last()?;
    if last >= 0x7f {
        return None;
    }
    let mut s = prefix[..prefix.len() - 1].to_string();
    s.push(char::from(last + 1));
    Some(s)
}

/// A ListObjectsV2 continuation token: the key to resume after, hex-encoded (opaque to
/// clients, safe in any XML).
pub fn token_of(key: &str) -> String {
    crate::s3::checksum::hex(key.as_bytes())
}

/// The key a continuation token resumes after.
pub fn key_of_token(token: &str) -> Result<String, crate::s3::S3Error> {
    let bad = || crate::s3::S3Error::InvalidArgument("The continuation token is not valid.".into());
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())
}

/// One page of the listing of `bucket`.
pub fn list(reader: &MetaReader, bucket: &str, p: &ListParams) -> Result<ListPage, StoreError> {
    let mut page = ListPage::default();
    let max = p.max_keys.min(MAX_KEYS_LIMIT);
    if max == 0 {
        return Ok(page);
    }
    // Start at the later of the prefix and the resume point.
    let mut from: Bound<String> = match &p.after {
        Some(after) if after.as_str() >= p.prefix.as_str() => Bound::Excluded(after.clone()),
        _ => Bound::Included(p.prefix.clone()),
    };
    let delimiter = p.delimiter.as_deref().filter(|d| !d.is_empty());
    loop {
        let bound = match &from {
            Bound::Included(s) => Bound::Included(s.as_str()),
            Bound::Excluded(s) => Bound::Excluded(s.as_str()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let rows = reader.objects_from(bucket, bound, BATCH_ROWS)?;
        let exhausted = rows.len() < BATCH_ROWS;
        let mut next = None;
        let mut seeked = false;
        for (key, stored) in rows {
            if !key.starts_with(&p.prefix) {
                return Ok(page);
            }
            let entries = page.objects.len() + page.common_prefixes.len();
            let rest = &key[p.prefix.len()..];
            let common = delimiter.and_then(|d| {
                rest.find(d)
                    .map(|i| key[..p.prefix.len() + i + d.len()].to_string())
            });
            let Some(cp) = common else {
                if stored.marker && !p.markers {
                    next = Some(Bound::Excluded(key));
                    continue;
                }
                if entries == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.last = Some(key.clone());
                next = Some(Bound::Excluded(key.clone()));
                page.objects.push((key, stored));
                continue;
            };
            let seen = p.after.as_deref().is_some_and(|a| cp.as_str() <= a)
                || page.last.as_deref() == Some(cp.as_str());
            if !seen {
                if entries == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.common_prefixes.push(cp.clone());
                page.last = Some(cp.clone());
            }
            // Every other key under this common prefix is the same entry: seek past
            // them all when the prefix allows it, else walk on.
            match past_prefix(&cp) {
                Some(past) => {
                    next = Some(Bound::Included(past));
                    seeked = true;
                    break;
                }
                None => next = Some(Bound::Excluded(key)),
            }
        }
        match next {
            Some(n) if seeked || !exhausted => from = n,
            _ => return Ok(page),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::store::{Item, Mark, MetaStore};
    use crate::meta::tests::meta;
    use crate::meta::{Command, CommandV1, PutCondition};
    use crate::test_disk::MemDisk;

    fn store_with(keys: &[&str]) -> MetaStore {
        use crate::env::Disk;
        let disk = MemDisk::default();
        let backend = futures::executor::block_on(disk.storage_backend("s.redb")).unwrap();
        let store = MetaStore::open(backend).unwrap();
        let mut items = vec![Item {
            index: 2,
            command: Some(Command::V1(CommandV1::CreateBucket {
                name: "b".into(),
                owner: "o".into(),
                created_ms: 0,
            })),
        }];
        for (i, k) in keys.iter().enumerate() {
            items.push(Item {
                index: 3 + i as u64,
                command: Some(Command::V1(CommandV1::PutObject {
                    bucket: "b".into(),
                    key: (*k).into(),
                    meta: meta(1),
                    condition: PutCondition::Always,
                })),
            });
        }
        store.apply(&items, &Mark::default(), false).unwrap();
        store
    }

    /// Pages through the whole listing; returns every entry (`d:` marks a prefix).
    fn all(store: &MetaStore, prefix: &str, delimiter: Option<&str>, max: usize) -> Vec<String> {
        let reader = store.reader().unwrap();
        let mut params = ListParams {
            prefix: prefix.into(),
            delimiter: delimiter.map(String::from),
            after: None,
            max_keys: max,
            markers: false,
        };
        let mut out = Vec::new();
        for _ in 0..100 {
            let page = list(&reader, "b", &params).unwrap();
            let mut entries: Vec<String> = page.objects.iter().map(|(k, _)| k.clone()).collect();
            entries.extend(page.common_prefixes.iter().map(|p| format!("d:{p}")));
            entries.sort_by(|a, b| a.trim_start_matches("d:").cmp(b.trim_start_matches("d:")));
            assert!(entries.len() <= max);
            out.extend(entries);
            if !page.truncated {
                return out;
            }
            params.after = page.last;
        }
        panic!("listing did not end");
    }

    #[test]
    fn prefixes_delimiters_and_pages() {
        let keys = [
            "a", "a/1", "a/2", "a/b/3", "a//4", "b", "b/1", "c/1", "c/2", "d", "../x", "é/1", "é/2",
        ];
        let store = store_with(&keys);
        let want_flat: Vec<String> = {
            let mut k: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        for max in [1, 2, 3, 1000] {
            assert_eq!(all(&store, "", None, max), want_flat, "max {max}");
            assert_eq!(
                all(&store, "", Some("/"), max),
                ["../", "a", "a/", "b", "b/", "c/", "d", "é/"]
                    .iter()
                    .map(|e| if e.ends_with('/') {
                        format!("d:{e}")
                    } else {
                        e.to_string()
                    })
                    .collect::<Vec<_>>(),
                "max {max}"
            );
            assert_eq!(
                all(&store, "a/", Some("/"), max),
                ["d:a//", "a/1", "a/2", "d:a/b/"],
                "max {max}"
            );
            assert_eq!(all(&store, "c", None, max), ["c/1", "c/2"], "max {max}");
            assert!(all(&store, "zz", Some("/"), max).is_empty());
        }
        let reader = store.reader().unwrap();
        let zero = list(
            &reader,
            "b",
            &ListParams {
                max_keys: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(zero.objects.is_empty() && !zero.truncated);
        let after = ListParams {
            after: Some("b".into()),
            max_keys: 1000,
            ..Default::default()
        };
        let page = list(&reader, "b", &after).unwrap();
        assert_eq!(page.objects.first().map(|(k, _)| k.as_str()), Some("b/1"));
    }

    /// A common prefix holding more keys than one batch is still one entry, and the
    /// listing goes on after it.
    #[test]
    fn a_big_common_prefix_is_one_entry() {
        let mut keys: Vec<String> = (0..2500).map(|i| format!("big/{i:05}")).collect();
        keys.push("big".into());
        keys.push("zed".into());
        keys.push("\u{7f}/1".into());
        keys.push("\u{7f}/2".into());
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let store = store_with(&refs);
        assert_eq!(
            all(&store, "", Some("/"), 1000),
            ["big", "d:big/", "zed", "d:\u{7f}/"]
        );
        assert_eq!(
            all(&store, "", Some("0"), 2),
            ["big", "d:big/0", "zed", "\u{7f}/1", "\u{7f}/2"]
        );
        // A common prefix ending in a non-ASCII byte cannot be seeked past: it is walked,
        // across batches, and is still one entry.
        let mut keys: Vec<String> = (0..1500).map(|i| format!("wé{i:05}")).collect();
        keys.push("a".into());
        keys.push("z".into());
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let store = store_with(&refs);
        assert_eq!(all(&store, "", Some("é"), 2), ["a", "d:wé", "z"]);
    }
}
