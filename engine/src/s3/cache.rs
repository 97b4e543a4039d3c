//! Access state kept in memory between requests: each bucket's owner and settings, each
//! key's record and secret, and parsed policies. A request with a signed key otherwise
//! reads all of these from the store (and unseals a secret, and decodes a policy's
//! text) every time; profiled, that was most of what a key cost over the root key.
//!
//! The store counts applied access changes in an epoch ([`MetaReader::access_epoch`]),
//! and a view of epoch `e` holds every change that `e` counts. An entry filled from a
//! view of epoch `e` is served only to views of the same epoch, so a request never
//! sees access state older than its own view: a grant, revocation or policy that the
//! request's ReadIndex covers is in force for it, exactly as when read from the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::meta::keys::AccessKey;
use crate::meta::store::MetaReader;
use crate::s3::policy::Policy;

/// Entries a map holds before it starts again (it holds buckets and keys that exist,
/// so only a deployment with more of them than this refills).
const ENTRIES_MAX: usize = 4096;

/// Entries of one epoch, by name.
struct Epoch<T> {
    epoch: u64,
    entries: BTreeMap<String, T>,
}

impl<T: Clone> Epoch<T> {
    fn get(&mut self, epoch: u64, name: &str) -> Option<T> {
        if self.epoch != epoch {
            return None;
        }
        self.entries.get(name).cloned()
    }

    fn put(&mut self, epoch: u64, name: &str, value: T) {
        if self.epoch != epoch {
            // Entries of another epoch are never served again; a fill from an older view
            // (a request that began before the change) does not displace newer ones.
            if epoch < self.epoch {
                return;
            }
            self.entries.clear();
            self.epoch = epoch;
        }
        if self.entries.len() >= ENTRIES_MAX {
            self.entries.clear();
        }
        self.entries.insert(name.to_string(), value);
    }
}

/// A cache of values by name that holds for one access epoch at a time.
pub struct EpochCache<T>(Mutex<Epoch<T>>);

impl<T> Default for EpochCache<T> {
    fn default() -> Self {
        Self(Mutex::new(Epoch {
            epoch: 0,
            entries: BTreeMap::new(),
        }))
    }
}

impl<T: Clone> EpochCache<T> {
    /// The value of `name` as of `reader`'s view: cached, or read by `fill` (and kept
    /// when it is `Some`).
    pub fn get_or_fill<E>(
        &self,
        reader: &MetaReader,
        name: &str,
        fill: impl FnOnce(&MetaReader) -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let epoch = reader.access_epoch();
        if let Some(v) = self.lock().get(epoch, name) {
            return Ok(Some(v));
        }
        let value = fill(reader)?;
        if let Some(v) = &value {
            self.lock().put(epoch, name, v.clone());
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Epoch<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A key's record with its secret unsealed, for checking signatures.
#[derive(Clone)]
pub struct KnownKey {
    pub key: Arc<AccessKey>,
    pub secret: Arc<str>,
}

/// Parsed policies by bucket, with the text they were parsed from (a changed text is
/// parsed again). Parsing does not depend on the epoch, so this outlives it.
#[derive(Default)]
pub struct PolicyCache(Mutex<BTreeMap<String, (String, Arc<Policy>)>>);

impl PolicyCache {
    pub fn get(&self, bucket: &str, text: String) -> Option<Arc<Policy>> {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, p)) = cache.get(bucket)
            && *t == text
        {
            return Some(p.clone());
        }
        // A stored policy was checked when put; one that no longer parses admits nobody.
        let parsed = Arc::new(Policy::parse(&text, bucket).ok()?);
        if cache.len() >= ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(bucket.to_string(), (text, parsed.clone()));
        Some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serve_only_their_own_epoch_and_older_fills_do_not_displace_newer() {
        let mut e: Epoch<u32> = Epoch {
            epoch: 0,
            entries: BTreeMap::new(),
        };
        e.put(3, "a", 1);
        assert_eq!(e.get(3, "a"), Some(1));
        assert_eq!(e.get(4, "a"), None, "a newer view must read the store");
        assert_eq!(e.get(2, "a"), None, "an older view must read the store");
        e.put(4, "a", 2);
        assert_eq!(e.get(4, "a"), Some(2));
        e.put(3, "a", 1);
        assert_eq!(
            e.get(4, "a"),
            Some(2),
            "a late fill from an older view is dropped"
        );
        assert_eq!(e.get(3, "a"), None);
    }

    #[test]
    fn a_full_map_starts_again() {
        let mut e: Epoch<usize> = Epoch {
            epoch: 1,
            entries: BTreeMap::new(),
        };
        for i in 0..=ENTRIES_MAX {
            e.put(1, &i.to_string(), i);
        }
        assert!(e.entries.len() <= ENTRIES_MAX);
        assert_eq!(e.get(1, &ENTRIES_MAX.to_string()), Some(ENTRIES_MAX));
    }
}
