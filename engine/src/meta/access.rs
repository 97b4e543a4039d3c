//! Bucket settings, ACLs and tags, replicated like every other table so that every node
//! authorizes alike: a bucket's policy (its JSON, as given), its ACL, its public access
//! block, its object-ownership setting and its tags, and the ACLs and tags of object
//! versions and of multipart uploads in progress.
//!
//! All of them are rows of one table, (bucket, name) -> [`Setting`]. An object's ACL and
//! tags are keyed by its version (the log index that wrote it), so an overwrite starts
//! with what its own request gave (no ACL row: private, owned by the bucket's owner; no
//! tags) and dropping a version drops its rows. An upload's ACL and tags, given at its
//! creation, become the completed object's.

use serde::{Deserialize, Serialize};

use crate::meta::encryption::{self, BucketEncryption, ObjectEncryption};
use crate::meta::lifecycle_rules::LifecycleRule;
use crate::meta::retention::{self, LockConfig, VersionLock};
pub use crate::meta::tag::Tag;
use crate::meta::{Applied, MetaTables, Stored};

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
    /// A bucket's, an object version's or an upload's tag set, in the order given.
    Tags(Vec<Tag>),
    /// A bucket's CORS configuration: its rules, in order (checked when put).
    Cors(Vec<CorsRule>),
    /// A bucket's versioning (`meta::versions`).
    Versioning(Versioning),
    /// A bucket's object lock configuration (`meta::lock`).
    LockConfig(LockConfig),
    /// An object version's or an upload's lock: retention and legal hold.
    Lock(VersionLock),
    /// A bucket's lifecycle rules, in order (`meta::lifecycle`; checked when put).
    Lifecycle(Vec<LifecycleRule>),
    /// How an object version's or an upload's bytes are encrypted (`meta::encryption`).
    Encryption(ObjectEncryption),
    /// A bucket's default encryption.
    BucketEncryption(BucketEncryption),
}

/// A bucket's versioning, once it was ever set (there is no way back to unversioned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    Enabled,
    Suspended,
}

/// One rule of a bucket's CORS configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    /// Origins, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// GET, PUT, HEAD, POST, DELETE.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may name, each with at most one `*`.
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

/// What a new object version gets with it in its commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSettings {
    pub acl: Option<Acl>,
    pub tags: Option<Vec<Tag>>,
}

impl VersionSettings {
    pub fn is_empty(&self) -> bool {
        self.acl.is_none() && self.tags.is_none()
    }
}

/// Row names of a bucket's own settings. They all begin with [`BUCKET_SETTINGS`], and
/// object and upload ACLs never do, so one range read finds a bucket's own settings.
pub const POLICY: &str = "b/policy";
pub const BUCKET_ACL: &str = "b/acl";
pub const PUBLIC_ACCESS_BLOCK: &str = "b/public-access-block";
pub const OWNERSHIP: &str = "b/ownership";
pub const BUCKET_TAGGING: &str = "b/tagging";
pub const CORS: &str = "b/cors";
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

/// The row of the tags of the object version written at log index `version`.
pub fn object_tags(version: u64) -> String {
    format!("o/t/{version:020}")
}

/// The row of the tags of an upload in progress.
pub fn upload_tags(upload_id: &str) -> String {
    format!("o/ut/{upload_id}")
}

/// The rows of an upload's settings and those of the version it completes into.
fn upload_rows(upload_id: &str, version: u64) -> [(String, String); 4] {
    [
        (
            encryption::upload_encryption(upload_id),
            encryption::object_encryption(version),
        ),
        (upload_acl(upload_id), object_acl(version)),
        (upload_tags(upload_id), object_tags(version)),
        (
            retention::upload_lock(upload_id),
            retention::version_lock(version),
        ),
    ]
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

/// Version `v` of `key` (a request read it, current or not; `None`: whichever is
/// current), unless it is gone or a marker: then what to answer.
pub(super) fn version_target<T: MetaTables>(
    t: &T,
    (bucket, key): (&str, &str),
    version: Option<u64>,
) -> Result<Result<Stored, Applied>, T::Error> {
    if t.bucket(bucket)?.is_none() {
        return Ok(Err(Applied::NoSuchBucket));
    }
    let current = t.object(bucket, key)?;
    let target = match version {
        None => current.clone(),
        Some(v) if current.as_ref().is_some_and(|c| c.version == v) => current.clone(),
        Some(v) => t.version(bucket, key, v)?,
    };
    Ok(match target {
        Some(s) if !s.marker => Ok(s),
        // The version read is gone (overwritten, deleted) or became a marker.
        _ if current.is_some() => Err(Applied::PreconditionFailed),
        _ => Err(Applied::NoSuchKey),
    })
}

/// Sets (`Some`) or removes (`None`) row `name(v)` of the version `version_target`
/// finds.
fn put_version_row<T: MetaTables>(
    t: &mut T,
    (bucket, key): (&str, &str),
    version: Option<u64>,
    name: fn(u64) -> String,
    setting: Option<Setting>,
) -> Result<Applied, T::Error> {
    let s = match version_target(t, (bucket, key), version)? {
        Ok(s) => s,
        Err(refused) => return Ok(refused),
    };
    match setting {
        Some(setting) => t.put_setting(bucket, &name(s.version), &setting)?,
        None => t.remove_setting(bucket, &name(s.version))?,
    }
    Ok(Applied::Done)
}

/// Sets the ACL of the current version of `key`, if that version is `version`.
pub(super) fn put_object_acl<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    key: &str,
    version: Option<u64>,
    acl: &Acl,
) -> Result<Applied, T::Error> {
    let setting = Some(Setting::Acl(acl.clone()));
    put_version_row(t, (bucket, key), version, object_acl, setting)
}

/// Sets (or with `None` removes) the tags of the current version of `key`, if that
/// version is `version`.
pub(super) fn put_object_tags<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    key: &str,
    version: Option<u64>,
    tags: Option<&[Tag]>,
) -> Result<Applied, T::Error> {
    let setting = tags.map(|t| Setting::Tags(t.to_vec()));
    put_version_row(t, (bucket, key), version, object_tags, setting)
}

/// The version written at `version` gets the settings its request gave.
pub(super) fn version_created<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    version: u64,
    settings: &VersionSettings,
) -> Result<(), T::Error> {
    if let Some(acl) = &settings.acl {
        t.put_setting(bucket, &object_acl(version), &Setting::Acl(acl.clone()))?;
    }
    if let Some(tags) = &settings.tags {
        t.put_setting(bucket, &object_tags(version), &Setting::Tags(tags.clone()))?;
    }
    Ok(())
}

/// The version written at `version` is gone: so are its settings.
pub(super) fn version_dropped<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    version: u64,
) -> Result<(), T::Error> {
    t.remove_setting(bucket, &object_acl(version))?;
    t.remove_setting(bucket, &object_tags(version))?;
    t.remove_setting(bucket, &encryption::object_encryption(version))?;
    t.remove_setting(bucket, &retention::version_lock(version))
}

/// An upload of `bucket` completed into the version written at `version`: its ACL and
/// tags, if it had them, are that version's now.
pub(super) fn upload_completed<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    upload_id: &str,
    version: u64,
) -> Result<(), T::Error> {
    for (from, to) in upload_rows(upload_id, version) {
        if let Some(setting) = t.setting(bucket, &from)? {
            t.remove_setting(bucket, &from)?;
            t.put_setting(bucket, &to, &setting)?;
        }
    }
    Ok(())
}

/// An upload of `bucket` was aborted (or replaced): so are its settings.
pub(super) fn upload_dropped<T: MetaTables>(
    t: &mut T,
    bucket: &str,
    upload_id: &str,
) -> Result<(), T::Error> {
    t.remove_setting(bucket, &upload_acl(upload_id))?;
    t.remove_setting(bucket, &upload_tags(upload_id))?;
    t.remove_setting(bucket, &encryption::upload_encryption(upload_id))?;
    t.remove_setting(bucket, &retention::upload_lock(upload_id))
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
    use crate::meta::tests::{head, meta, part, with_bucket};
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

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs
            .iter()
            .map(|(k, v)| Tag {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    fn row(s: &MetaState, name: String) -> Option<Setting> {
        s.settings.get(&(String::from("b"), name)).cloned()
    }

    #[test]
    fn tags_come_with_their_version_and_go_with_it() {
        let mut s = with_bucket();
        let with = |tags: Vec<Tag>, condition| CommandV1::PutObjectWith {
            bucket: "b".into(),
            key: "k".into(),
            meta: meta(10),
            condition,
            settings: VersionSettings {
                acl: Some(public()),
                tags: Some(tags),
            },
        };
        // The version, its ACL and its tags in one commit.
        let first = tags(&[("a", "1")]);
        assert_eq!(
            run(&mut s, 2, with(first.clone(), PutCondition::Always)),
            Applied::Version(2)
        );
        assert_eq!(row(&s, object_tags(2)), Some(Setting::Tags(first.clone())));
        assert_eq!(row(&s, object_acl(2)), Some(Setting::Acl(public())));
        // A refused put writes no rows.
        assert_eq!(
            run(&mut s, 3, with(tags(&[("x", "")]), PutCondition::IfAbsent)),
            Applied::PreconditionFailed
        );
        assert_eq!(row(&s, object_tags(3)), None);
        // Tags are set on the version the request saw, and removed with `None`.
        let set = |version, t: Option<Vec<Tag>>| CommandV1::PutObjectTags {
            bucket: "b".into(),
            key: "k".into(),
            version,
            tags: t,
        };
        let second = tags(&[("b", "2"), ("c", "3")]);
        assert_eq!(
            run(&mut s, 4, set(Some(1), Some(second.clone()))),
            Applied::PreconditionFailed
        );
        assert_eq!(row(&s, object_tags(2)), Some(Setting::Tags(first)));
        assert_eq!(
            run(&mut s, 5, set(Some(2), Some(second.clone()))),
            Applied::Done
        );
        assert_eq!(row(&s, object_tags(2)), Some(Setting::Tags(second)));
        assert_eq!(run(&mut s, 6, set(None, None)), Applied::Done);
        assert_eq!(row(&s, object_tags(2)), None);
        let missing = CommandV1::PutObjectTags {
            bucket: "b".into(),
            key: "nope".into(),
            version: None,
            tags: None,
        };
        assert_eq!(run(&mut s, 7, missing), Applied::NoSuchKey);
        // An overwrite without tags has none; the old version's rows go.
        assert_eq!(
            run(&mut s, 8, set(None, Some(tags(&[("d", "4")])))),
            Applied::Done
        );
        assert_eq!(run(&mut s, 9, put("b", "k", 3)), Applied::Version(9));
        assert_eq!(row(&s, object_tags(2)), None);
        assert_eq!(row(&s, object_acl(2)), None);
        assert_eq!(row(&s, object_tags(9)), None);

        // An upload's tags become its object's; an aborted upload's go.
        for (index, id) in [(10, "u"), (11, "v")] {
            let upload = CommandV1::CreateUpload {
                upload_id: id.into(),
                head: head("b", "m"),
            };
            assert_eq!(run(&mut s, index, upload), Applied::Done);
            let put_tags = CommandV1::PutSetting {
                bucket: "b".into(),
                name: upload_tags(id),
                setting: Setting::Tags(tags(&[("u", id)])),
            };
            assert!(!Command::V1(put_tags.clone()).changes_access());
            assert_eq!(run(&mut s, index + 10, put_tags), Applied::Done);
        }
        let part = CommandV1::PutPart {
            upload_id: "u".into(),
            part: 1,
            info: part(100, 5),
        };
        assert_eq!(run(&mut s, 30, part), Applied::Done);
        let complete = CommandV1::CompleteUpload {
            upload_id: "u".into(),
            parts: vec![(1, "p100".into())],
            meta: meta(0),
            part_size_min: 0,
        };
        assert_eq!(run(&mut s, 31, complete), Applied::Version(31));
        assert_eq!(
            row(&s, object_tags(31)),
            Some(Setting::Tags(tags(&[("u", "u")])))
        );
        assert_eq!(row(&s, upload_tags("u")), None);
        let abort = CommandV1::AbortUpload {
            upload_id: "v".into(),
        };
        assert_eq!(run(&mut s, 32, abort), Applied::Done);
        assert_eq!(row(&s, upload_tags("v")), None);
        // Bucket tags are a bucket setting, cached like one.
        let bucket_tags = CommandV1::PutSetting {
            bucket: "b".into(),
            name: BUCKET_TAGGING.into(),
            setting: Setting::Tags(tags(&[("team", "x")])),
        };
        assert!(Command::V1(bucket_tags).changes_access());
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
