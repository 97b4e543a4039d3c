//! Bucket settings and ACLs, replicated like every other table so that every node
//! authorizes alike: a bucket's policy (its JSON, as given), its ACL, its public access
//! block and its object-ownership setting, and the ACLs of object versions and of
//! multipart uploads in progress.
//!
//! All of them are rows of one table, (bucket, name) -> [`Setting`]. An object's ACL is
//! keyed by its version (the log index that wrote it), so an overwrite starts with no
//! ACL row (private, owned by the bucket's owner) and dropping a version drops its ACL.
//! An upload's ACL, given at its creation, becomes the completed object's.

use serde::{Deserialize, Serialize};

use crate::meta::{Applied, MetaTables};

/// Who an ACL grant names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grantee {
    /// A canonical user id: an access key id, or the root owner id.
    Id(String),
    /// `http://acs.amazonaws.com/groups/global/AllUsers`: anyone, signed or not.
    AllUsers,
    /// `http://acs.amazonaws.com/groups/global/AuthenticatedUsers`: any signed caller.
    AuthenticatedUsers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

impl Permission {
    /// Whether a grant of `self` gives `need`.
    pub fn gives(self, need: Permission) -> bool {
        self == Permission::FullControl || self == need
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An access control list: its owner and its grants, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub owner: String,
    pub grants: Vec<Grant>,
}

impl Acl {
    /// The owner's full control and nothing else: what a bucket or object without an
    /// ACL row has.
    pub fn private(owner: &str) -> Acl {
        Acl {
            owner: owner.to_string(),
            grants: vec![Grant {
                grantee: Grantee::Id(owner.to_string()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// Whether some grant gives `need` to a caller who is `id` (none: anonymous),
    /// counting the AllUsers and AuthenticatedUsers groups unless `ignore_public`.
    pub fn allows(&self, id: Option<&str>, need: Permission, ignore_public: bool) -> bool {
        self.grants.iter().any(|g| {
            g.permission.gives(need)
                && match &g.grantee {
                    Grantee::Id(who) => id == Some(who.as_str()),
                    Grantee::AllUsers => !ignore_public,
                    Grantee::AuthenticatedUsers => !ignore_public && id.is_some(),
                }
        })
    }

    /// Whether it grants anything to AllUsers or AuthenticatedUsers.
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|g| !matches!(g.grantee, Grantee::Id(_)))
    }
}

/// S3's PublicAccessBlock configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// PUTs of public ACLs (bucket or object) are refused.
    pub block_public_acls: bool,
    /// Public grants of ACLs are not counted when authorizing.
    pub ignore_public_acls: bool,
    /// PutBucketPolicy of a public policy is refused.
    pub block_public_policy: bool,
    /// A public policy admits only the root and keys, never anonymous callers.
    pub restrict_public_buckets: bool,
}

/// S3's object ownership setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    /// ACLs are off: the bucket owner owns every object, and only the ACLs that say so
    /// (private, bucket-owner-full-control) are accepted.
    BucketOwnerEnforced,
    BucketOwnerPreferred,
    ObjectWriter,
}

impl Ownership {
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::BucketOwnerEnforced => "BucketOwnerEnforced",
            Ownership::BucketOwnerPreferred => "BucketOwnerPreferred",
            Ownership::ObjectWriter => "ObjectWriter",
        }
    }

    pub fn parse(s: &str) -> Option<Ownership> {
        [
            Ownership::BucketOwnerEnforced,
            Ownership::BucketOwnerPreferred,
            Ownership::ObjectWriter,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One row of the settings table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Setting {
    /// A bucket policy's JSON, as it was put (checked then).
    Policy(String),
    /// A bucket's, an object version's or an upload's ACL.
    Acl(Acl),
    PublicAccessBlock(PublicAccessBlock),
    Ownership(Ownership),
}

/// Row names of a bucket's own settings. They all begin with [`BUCKET_SETTINGS`], and
/// object and upload ACLs never do, so one range read finds a bucket's own settings.
pub const POLICY: &str = "b/policy";
pub const BUCKET_ACL: &str = "b/acl";
pub const PUBLIC_ACCESS_BLOCK: &str = "b/public-access-block";
pub const OWNERSHIP: &str = "b/ownership";
/// The prefix of a bucket's own settings' names.
pub const BUCKET_SETTINGS: &str = "b/";

/// The row of the ACL of the object version written at log index `version`.
pub fn object_acl(version: u64) -> String {
    format!("o/v/{version:020}")
}

/// The row of the ACL of an upload in progress.
pub fn upload_acl(upload_id: &str) -> String {
    format!("o/u/{upload_id}")
}

/// Sets a bucket's setting `name`.
pub(super) fn put<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    name: &str,
    setting: &Setting,
) -> Result<Applied, T::Error> {
    if t.bucket(bucket)?.is_none() {
        return Ok(Applied::NoSuchBucket);
    }
    t.put_setting(bucket, name, setting)?;
    Ok(Applied::Done)
}

/// Removes a bucket's setting `name` (done whether or not it was set).
pub(super) fn delete<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    name: &str,
) -> Result<Applied, T::Error> {
    if t.bucket(bucket)?.is_none() {
        return Ok(Applied::NoSuchBucket);
    }
    t.remove_setting(bucket, name)?;
    Ok(Applied::Done)
}

/// Sets the ACL of the current version of `key`, if that version is `version` (the one
/// the request saw; `None`: whichever is current).
pub(super) fn put_object_acl<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    key: &str,
    version: Option<u64>,
    acl: &Acl,
) -> Result<Applied, T::Error> {
    if t.bucket(bucket)?.is_none() {
        return Ok(Applied::NoSuchBucket);
    }
    match t.object(bucket, key)? {
        Some(s) if version.is_none_or(|v| v == s.version) => {
            t.put_setting(bucket, &object_acl(s.version), &Setting::Acl(acl.clone()))?;
            Ok(Applied::Done)
        }
        Some(_) => Ok(Applied::PreconditionFailed),
        None => Ok(Applied::NoSuchKey),
    }
}

/// An upload of `bucket` completed into the version written at `version`: its ACL, if
/// it had one, is that version's now.
pub(super) fn upload_completed<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    upload_id: &str,
    version: u64,
) -> Result<(), T::Error> {
    let name = upload_acl(upload_id);
    if let Some(setting) = t.setting(bucket, &name)? {
        t.remove_setting(bucket, &name)?;
        t.put_setting(bucket, &object_acl(version), &setting)?;
    }
    Ok(())
}

/// A bucket was deleted: so are its settings.
pub(super) fn bucket_deleted<T: MetaTables>(t: &mut T, bucket: &str) -> Result<(), T::Error> {
    for (name, _) in t.settings(bucket)? {
        t.remove_setting(bucket, &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::{head, meta, part};
    use crate::meta::{Command, CommandV1, MetaState, PutCondition};

    fn run(s: &mut MetaState, index: u64, c: CommandV1) -> Applied {
        s.apply(index, &Command::V1(c))
    }

    fn put(bucket: &str, key: &str, size: u64) -> CommandV1 {
        CommandV1::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            meta: meta(size),
            condition: PutCondition::Always,
        }
    }

    fn public() -> Acl {
        let mut acl = Acl::private("o");
        acl.grants.push(Grant {
            grantee: Grantee::AllUsers,
            permission: Permission::Read,
        });
        acl
    }

    #[test]
    fn acls_belong_to_versions_and_settings_to_their_bucket() {
        let mut s = MetaState::default();
        let create = CommandV1::CreateBucket {
            name: "b".into(),
            owner: "o".into(),
            created_ms: 0,
        };
        assert_eq!(run(&mut s, 1, create.clone()), Applied::Done);
        let acl_of = |v: u64| (String::from("b"), object_acl(v));
        assert_eq!(run(&mut s, 2, put("b", "k", 10)), Applied::Version(2));
        let set = |version| CommandV1::PutObjectAcl {
            bucket: "b".into(),
            key: "k".into(),
            version,
            acl: public(),
        };
        assert_eq!(run(&mut s, 3, set(Some(1))), Applied::PreconditionFailed);
        assert_eq!(run(&mut s, 4, set(Some(2))), Applied::Done);
        assert!(s.settings.contains_key(&acl_of(2)));
        // An overwrite is a new version, with no ACL of its own; the old one's goes.
        assert_eq!(run(&mut s, 5, put("b", "k", 11)), Applied::Version(5));
        assert!(!s.settings.contains_key(&acl_of(2)));
        assert_eq!(run(&mut s, 6, set(None)), Applied::Done);
        assert!(s.settings.contains_key(&acl_of(5)));

        // An upload's ACL becomes its object's when it completes.
        let upload = CommandV1::CreateUpload {
            upload_id: "u".into(),
            head: head("b", "m"),
        };
        assert_eq!(run(&mut s, 7, upload), Applied::Done);
        let put_acl = CommandV1::PutSetting {
            bucket: "b".into(),
            name: upload_acl("u"),
            setting: Setting::Acl(public()),
        };
        assert_eq!(run(&mut s, 8, put_acl), Applied::Done);
        let part = CommandV1::PutPart {
            upload_id: "u".into(),
            part: 1,
            info: part(100, 5),
        };
        assert_eq!(run(&mut s, 9, part), Applied::Done);
        let complete = CommandV1::CompleteUpload {
            upload_id: "u".into(),
            parts: vec![(1, "p100".into())],
            meta: meta(0),
            part_size_min: 0,
        };
        assert_eq!(run(&mut s, 10, complete), Applied::Version(10));
        assert!(!s.settings.contains_key(&("b".into(), upload_acl("u"))));
        assert_eq!(s.settings.get(&acl_of(10)), Some(&Setting::Acl(public())));

        // Deleting the objects and the bucket leaves no setting behind.
        let policy = CommandV1::PutSetting {
            bucket: "b".into(),
            name: POLICY.into(),
            setting: Setting::Policy("{}".into()),
        };
        assert_eq!(run(&mut s, 11, policy), Applied::Done);
        let delete = CommandV1::DeleteObjects {
            bucket: "b".into(),
            keys: vec!["k".into(), "m".into()],
        };
        assert_eq!(run(&mut s, 12, delete), Applied::Done);
        assert_eq!(s.settings.len(), 1, "{:?}", s.settings);
        let drop = CommandV1::DeleteBucket { name: "b".into() };
        assert_eq!(run(&mut s, 13, drop), Applied::Done);
        assert!(s.settings.is_empty());
        assert_eq!(run(&mut s, 14, create), Applied::Done);
        let none = CommandV1::PutSetting {
            bucket: "nope".into(),
            name: POLICY.into(),
            setting: Setting::Policy("{}".into()),
        };
        assert_eq!(run(&mut s, 15, none), Applied::NoSuchBucket);
    }

    #[test]
    fn acls_admit_by_grantee_and_group() {
        let acl = public();
        assert!(acl.is_public());
        assert!(acl.allows(None, Permission::Read, false));
        assert!(
            !acl.allows(None, Permission::Read, true),
            "public grants ignored"
        );
        assert!(!acl.allows(None, Permission::Write, false));
        assert!(
            acl.allows(Some("o"), Permission::WriteAcp, true),
            "full control"
        );
        let mut auth = Acl::private("o");
        auth.grants.push(Grant {
            grantee: Grantee::AuthenticatedUsers,
            permission: Permission::Read,
        });
        assert!(auth.allows(Some("k"), Permission::Read, false));
        assert!(!auth.allows(None, Permission::Read, false));
        assert!(!Acl::private("o").is_public());
    }
}
