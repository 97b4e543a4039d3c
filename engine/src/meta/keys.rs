//! Access keys and their bucket grants, replicated like every other table so that every
//! node authorizes alike. The model is Garage's: a key holds, per bucket, the right to
//! read, to write and to own (configure, delete) it; a key that may create buckets owns
//! the ones it creates. The root key is not a row: it may do anything.
//!
//! A key's secret is stored sealed (`crate::s3::keys` seals it with a key derived from
//! the root secret), never in the clear: SigV4 needs the secret itself, so it cannot be
//! a one-way hash.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{Applied, MetaTables};

/// What a key may do with one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Perms {
    pub const READ: Perms = Perms {
        read: true,
        write: false,
        owner: false,
    };
    pub const WRITE: Perms = Perms {
        read: false,
        write: true,
        owner: false,
    };
    pub const OWNER: Perms = Perms {
        read: false,
        write: false,
        owner: true,
    };
    pub const ALL: Perms = Perms {
        read: true,
        write: true,
        owner: true,
    };

    pub fn union(self, o: Perms) -> Perms {
        Perms {
            read: self.read || o.read,
            write: self.write || o.write,
            owner: self.owner || o.owner,
        }
    }

    pub fn minus(self, o: Perms) -> Perms {
        Perms {
            read: self.read && !o.read,
            write: self.write && !o.write,
            owner: self.owner && !o.owner,
        }
    }

    /// Every right `need` names is here.
    pub fn covers(self, need: Perms) -> bool {
        (self.read || !need.read) && (self.write || !need.write) && (self.owner || !need.owner)
    }

    pub fn is_none(self) -> bool {
        self == Perms::default()
    }
}

/// One access key (the row's key is its access key id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub name: String,
    /// The secret, sealed: nonce then ciphertext and tag.
    #[serde(with = "serde_bytes")]
    pub sealed_secret: Vec<u8>,
    /// May create buckets (and then owns them).
    pub create_bucket: bool,
    pub created_ms: u64,
    /// Bucket name -> rights. A bucket without rights has no row.
    pub grants: BTreeMap<String, Perms>,
}

impl AccessKey {
    pub fn perms(&self, bucket: &str) -> Perms {
        self.grants.get(bucket).copied().unwrap_or_default()
    }
}

/// Adds a key (refused if the id is taken).
pub(super) fn create<T: MetaTables>(
    t: &mut T,
    access_key: &str,
    key: &AccessKey,
) -> Result<Applied, T::Error> {
    if t.access_key(access_key)?.is_some() {
        return Ok(Applied::KeyExists);
    }
    t.put_access_key(access_key, key)?;
    Ok(Applied::Done)
}

pub(super) fn delete<T: MetaTables>(t: &mut T, access_key: &str) -> Result<Applied, T::Error> {
    if t.access_key(access_key)?.is_none() {
        return Ok(Applied::NoSuchAccessKey);
    }
    t.remove_access_key(access_key)?;
    Ok(Applied::Done)
}

/// Adds (`allow`) or removes rights of a key on a bucket. Rights are only given on a
/// bucket that exists; they can always be taken away.
pub(super) fn grant<T: MetaTables>(
    t: &mut T,
    access_key: &str,
    bucket: &str,
    perms: Perms,
    allow: bool,
) -> Result<Applied, T::Error> {
    let Some(mut key) = t.access_key(access_key)? else {
        return Ok(Applied::NoSuchAccessKey);
    };
    if allow && t.bucket(bucket)?.is_none() {
        return Ok(Applied::NoSuchBucket);
    }
    let now = key.perms(bucket);
    let next = if allow {
        now.union(perms)
    } else {
        now.minus(perms)
    };
    if next.is_none() {
        key.grants.remove(bucket);
    } else {
        key.grants.insert(bucket.to_string(), next);
    }
    t.put_access_key(access_key, &key)?;
    Ok(Applied::Done)
}

/// A bucket was created by `owner`: if that is a key, it owns the bucket.
pub(super) fn bucket_created<T: MetaTables>(
    t: &mut T,
    owner: &str,
    bucket: &str,
) -> Result<(), T::Error> {
    if let Some(mut key) = t.access_key(owner)? {
        key.grants.insert(bucket.to_string(), Perms::ALL);
        t.put_access_key(owner, &key)?;
    }
    Ok(())
}

/// A bucket is gone: no key keeps rights on it (a bucket made later under the same name
/// is a new bucket).
pub(super) fn bucket_deleted<T: MetaTables>(t: &mut T, bucket: &str) -> Result<(), T::Error> {
    for (id, mut key) in t.access_keys()? {
        if key.grants.remove(bucket).is_some() {
            t.put_access_key(&id, &key)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Command, CommandV1, MetaState};

    fn key(name: &str) -> AccessKey {
        AccessKey {
            name: name.into(),
            sealed_secret: vec![1, 2, 3],
            create_bucket: true,
            created_ms: 5,
            grants: BTreeMap::new(),
        }
    }

    fn v1(c: CommandV1) -> Command {
        Command::V1(c)
    }

    fn grant(ak: &str, bucket: &str, perms: Perms, allow: bool) -> Command {
        v1(CommandV1::GrantKey {
            access_key: ak.into(),
            bucket: bucket.into(),
            perms,
            allow,
        })
    }

    #[test]
    fn perms_combine() {
        let rw = Perms::READ.union(Perms::WRITE);
        assert!(rw.covers(Perms::READ) && rw.covers(Perms::WRITE) && !rw.covers(Perms::OWNER));
        assert_eq!(rw.minus(Perms::READ), Perms::WRITE);
        assert!(Perms::ALL.minus(Perms::ALL).is_none());
        assert!(Perms::default().covers(Perms::default()));
    }

    #[test]
    fn keys_are_created_granted_and_cleaned_up_with_their_buckets() {
        let mut s = MetaState::default();
        let create = |ak: &str| {
            v1(CommandV1::CreateKey {
                access_key: ak.into(),
                key: key("app"),
            })
        };
        assert_eq!(s.apply(1, &create("AK1")), Applied::Done);
        assert_eq!(s.apply(2, &create("AK1")), Applied::KeyExists);
        // Rights only on a bucket that exists.
        assert_eq!(
            s.apply(3, &grant("AK1", "b", Perms::READ, true)),
            Applied::NoSuchBucket
        );
        assert_eq!(
            s.apply(4, &grant("NOPE", "b", Perms::READ, true)),
            Applied::NoSuchAccessKey
        );
        let bucket = |name: &str, owner: &str| {
            v1(CommandV1::CreateBucket {
                name: name.into(),
                owner: owner.into(),
                created_ms: 1,
            })
        };
        assert_eq!(s.apply(5, &bucket("b", "root")), Applied::Done);
        assert_eq!(s.apply(6, &bucket("mine", "AK1")), Applied::Done);
        assert_eq!(s.keys["AK1"].perms("mine"), Perms::ALL);
        assert_eq!(
            s.apply(7, &grant("AK1", "b", Perms::READ, true)),
            Applied::Done
        );
        assert_eq!(
            s.apply(8, &grant("AK1", "b", Perms::WRITE, true)),
            Applied::Done
        );
        assert_eq!(s.keys["AK1"].perms("b"), Perms::READ.union(Perms::WRITE));
        assert_eq!(
            s.apply(9, &grant("AK1", "b", Perms::ALL, false)),
            Applied::Done
        );
        assert!(!s.keys["AK1"].grants.contains_key("b"));
        // Deleting a bucket takes its rights away.
        assert_eq!(
            s.apply(
                10,
                &v1(CommandV1::DeleteBucket {
                    name: "mine".into()
                })
            ),
            Applied::Done
        );
        assert!(s.keys["AK1"].grants.is_empty());
        assert_eq!(
            s.apply(
                11,
                &v1(CommandV1::DeleteKey {
                    access_key: "AK1".into()
                })
            ),
            Applied::Done
        );
        assert_eq!(
            s.apply(
                12,
                &v1(CommandV1::DeleteKey {
                    access_key: "AK1".into()
                })
            ),
            Applied::NoSuchAccessKey
        );
    }
}
