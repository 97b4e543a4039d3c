//! Who may do what: every request is authorized here, before it runs, for the caller
//! the front end authenticated (`Caller`), from where it came (`Origin`).
//!
//! The root key may do anything. Any other caller's request is checked against the
//! bucket (for a copy, both buckets), in this order:
//! 1. the bucket policy (`s3::policy`): an explicit Deny refuses, whatever else allows;
//! 2. the key's grants (`meta::keys`: read, write, owner) admit it;
//! 3. a policy Allow admits it (not an anonymous caller's, when the public access
//!    block restricts public buckets and the policy is public);
//! 4. the bucket's or object's ACL (`meta::access`) admits it, unless the bucket's
//!    object ownership is BucketOwnerEnforced (ACLs off); public grants count unless
//!    the public access block ignores them;
//! 5. nothing else does: AccessDenied.
//!
//! Everything is read after a ReadIndex, so authorization is linearizable: a grant,
//! revocation or policy acknowledged before a request began is in force for it, on
//! every node. ReadIndex calls are batched, so concurrent requests share one round.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::env::Env;
use crate::meta::access::{
    self as settings, Acl, CorsRule, Ownership, Permission, PublicAccessBlock, Setting, Tag,
};
use crate::meta::keys::{AccessKey, Perms};
use crate::meta::store::MetaReader;
use crate::s3::api::{AccessRequest, AclInput, LockArgs, LockRequest, Request, TagRequest};
use crate::s3::cache::KnownKey;
use crate::s3::keys::unseal;
use crate::s3::policy::{Context, Decision, Policy};
use crate::s3::{S3, S3Error, propose_error};

pub use crate::s3::api::{Caller, Origin};

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Any signed caller (ListBuckets: each sees the buckets it may read).
    Signed,
    /// The right to create buckets.
    CreateBucket,
    /// Each of these checks to pass.
    On(Vec<Check>),
    /// The root key only.
    Root,
    /// Anyone, signed or not (a CORS preflight: its answer is the bucket's rules').
    Anyone,
}

/// One permission a request needs on one bucket (or one of its objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub bucket: String,
    /// The object, for object actions.
    pub key: Option<String>,
    /// The grant that admits it.
    pub perms: Perms,
    /// The policy action.
    pub action: &'static str,
    /// The ACL permission that admits it, and whether on the object's ACL (else the
    /// bucket's); `None`: no ACL does (the bucket's owner settings).
    pub acl: Option<(Permission, bool)>,
}

impl Check {
    fn new(bucket: &str, perms: Perms, action: &'static str) -> Check {
        Check {
            bucket: bucket.to_string(),
            key: None,
            perms,
            action,
            acl: None,
        }
    }

    fn object(mut self, key: &str) -> Check {
        self.key = Some(key.to_string());
        self
    }

    fn bucket_acl(mut self, p: Permission) -> Check {
        self.acl = Some((p, false));
        self
    }

    fn object_acl(mut self, p: Permission) -> Check {
        self.acl = Some((p, true));
        self
    }

    /// The policy resource: the bucket's or the object's ARN.
    pub fn resource(&self) -> String {
        match &self.key {
            Some(k) => format!("arn:aws:s3:::{}/{k}", self.bucket),
            None => format!("arn:aws:s3:::{}", self.bucket),
        }
    }
}

/// What `request` needs.
pub fn need(request: &Request) -> Need {
    use Permission::{Read, ReadAcp, Write, WriteAcp};
    use Request as R;
    let (read, write, owner) = (Perms::READ, Perms::WRITE, Perms::OWNER);
    // A request that names a version needs the version's action (S3's names).
    let versioned = |id: &Option<String>, plain: &'static str, version: &'static str| {
        if id.is_some() { version } else { plain }
    };
    let get_version = |b: &str, k: &str, id: &Option<String>| {
        Check::new(
            b,
            read,
            versioned(id, "s3:GetObject", "s3:GetObjectVersion"),
        )
        .object(k)
        .object_acl(Read)
    };
    let put = |b: &str, k: &str, action| Check::new(b, write, action).object(k).bucket_acl(Write);
    let list = |b: &str, action| Check::new(b, read, action).bucket_acl(Read);
    let one = |c: Check| Need::On(vec![c]);
    // A write that tags its new version needs the tagging action as well (no ACL
    // grants it).
    // So does one that locks it, with the lock's actions.
    let put_tagged = |b: &str, k: &str, tagging: &Option<String>, lock: &LockArgs| {
        let mut checks = vec![put(b, k, "s3:PutObject")];
        let extra = [
            (tagging.is_some(), "s3:PutObjectTagging"),
            (lock.mode.is_some(), "s3:PutObjectRetention"),
            (lock.legal_hold.is_some(), "s3:PutObjectLegalHold"),
        ];
        for (_, action) in extra.into_iter().filter(|(given, _)| *given) {
            checks.push(Check::new(b, write, action).object(k));
        }
        checks
    };
    // Bypassing governance retention needs its own action (owners have it).
    let bypass = |b: &str, k: &str| Check::new(b, owner, "s3:BypassGovernanceRetention").object(k);
    match request {
        R::ListBuckets => Need::Signed,
        R::CreateBucket { .. } => Need::CreateBucket,
        R::DeleteBucket { bucket } => one(Check::new(bucket, owner, "s3:DeleteBucket")),
        R::HeadBucket { bucket } => one(list(bucket, "s3:ListBucket")),
        R::GetBucketLocation { bucket } => one(Check::new(bucket, read, "s3:GetBucketLocation")),
        R::GetBucketVersioning { bucket } => {
            one(Check::new(bucket, read, "s3:GetBucketVersioning"))
        }
        R::PutBucketVersioning { bucket, .. } => {
            one(Check::new(bucket, owner, "s3:PutBucketVersioning"))
        }
        R::HeadObject {
            bucket,
            key,
            version_id,
            ..
        } => one(get_version(bucket, key, version_id)),
        R::GetObject(a) => one(get_version(&a.bucket, &a.key, &a.version_id)),
        R::GetObjectAttributes {
            bucket,
            key,
            version_id,
            ..
        } => {
            let action = versioned(
                version_id,
                "s3:GetObjectAttributes",
                "s3:GetObjectVersionAttributes",
            );
            one(Check::new(bucket, read, action)
                .object(key)
                .object_acl(Read))
        }
        R::ListObjects { bucket, .. } | R::ListObjectsV2 { bucket, .. } => {
            one(list(bucket, "s3:ListBucket"))
        }
        R::ListObjectVersions { bucket, .. } => one(list(bucket, "s3:ListBucketVersions")),
        R::ListMultipartUploads { bucket, .. } => {
            one(list(bucket, "s3:ListBucketMultipartUploads"))
        }
        R::ListParts { bucket, key, .. } => {
            one(list(bucket, "s3:ListMultipartUploadParts").object(key))
        }
        R::PutObject(a) => Need::On(put_tagged(&a.bucket, &a.key, &a.tagging, &a.lock)),
        R::UploadPart(a) => one(put(&a.bucket, &a.key, "s3:PutObject")),
        R::CreateMultipartUpload(a) => Need::On(put_tagged(&a.bucket, &a.key, &a.tagging, &a.lock)),
        R::CompleteMultipartUpload { bucket, key, .. } => one(put(bucket, key, "s3:PutObject")),
        R::AbortMultipartUpload { bucket, key, .. } => {
            one(put(bucket, key, "s3:AbortMultipartUpload"))
        }
        R::DeleteObject {
            bucket,
            key,
            version_id,
            bypass_governance,
        } => {
            let action = versioned(version_id, "s3:DeleteObject", "s3:DeleteObjectVersion");
            let mut checks = vec![put(bucket, key, action)];
            if *bypass_governance {
                checks.push(bypass(bucket, key));
            }
            Need::On(checks)
        }
        R::DeleteObjects {
            bucket,
            keys,
            version_ids,
            bypass_governance,
            ..
        } => Need::On(
            keys.iter()
                .enumerate()
                .flat_map(|(i, k)| {
                    let id = version_ids.get(i).cloned().flatten();
                    let action = versioned(&id, "s3:DeleteObject", "s3:DeleteObjectVersion");
                    let bypassing = bypass_governance.then(|| bypass(bucket, k));
                    std::iter::once(put(bucket, k, action)).chain(bypassing)
                })
                .collect(),
        ),
        R::CopyObject(a) => Need::On(
            std::iter::once(get_version(
                &a.source.bucket,
                &a.source.key,
                &a.source.version_id,
            ))
            .chain(put_tagged(&a.bucket, &a.key, &a.tagging, &a.lock))
            .collect(),
        ),
        R::UploadPartCopy(a) => Need::On(vec![
            get_version(&a.source.bucket, &a.source.key, &a.source.version_id),
            put(&a.bucket, &a.key, "s3:PutObject"),
        ]),
        R::Access { bucket, request } => {
            use AccessRequest as A;
            let b = bucket.as_str();
            one(match request {
                A::GetBucketPolicy => Check::new(b, owner, "s3:GetBucketPolicy"),
                A::PutBucketPolicy(_) => Check::new(b, owner, "s3:PutBucketPolicy"),
                A::DeleteBucketPolicy => Check::new(b, owner, "s3:DeleteBucketPolicy"),
                A::GetBucketPolicyStatus => Check::new(b, owner, "s3:GetBucketPolicyStatus"),
                A::GetBucketAcl => Check::new(b, read, "s3:GetBucketAcl").bucket_acl(ReadAcp),
                A::PutBucketAcl(_) => Check::new(b, owner, "s3:PutBucketAcl").bucket_acl(WriteAcp),
                A::GetObjectAcl { key, version_id } => {
                    let action = versioned(version_id, "s3:GetObjectAcl", "s3:GetObjectVersionAcl");
                    Check::new(b, read, action).object(key).object_acl(ReadAcp)
                }
                A::PutObjectAcl {
                    key, version_id, ..
                } => {
                    let action = versioned(version_id, "s3:PutObjectAcl", "s3:PutObjectVersionAcl");
                    Check::new(b, write, action)
                        .object(key)
                        .object_acl(WriteAcp)
                }
                A::GetPublicAccessBlock => Check::new(b, owner, "s3:GetBucketPublicAccessBlock"),
                A::PutPublicAccessBlock(_) | A::DeletePublicAccessBlock => {
                    Check::new(b, owner, "s3:PutBucketPublicAccessBlock")
                }
                A::GetBucketOwnershipControls => {
                    Check::new(b, owner, "s3:GetBucketOwnershipControls")
                }
                A::PutBucketOwnershipControls(_) | A::DeleteBucketOwnershipControls => {
                    Check::new(b, owner, "s3:PutBucketOwnershipControls")
                }
                A::GetBucketCors => Check::new(b, owner, "s3:GetBucketCORS"),
                A::PutBucketCors(_) | A::DeleteBucketCors => {
                    Check::new(b, owner, "s3:PutBucketCORS")
                }
                A::GetBucketLifecycleConfiguration => {
                    Check::new(b, owner, "s3:GetLifecycleConfiguration")
                }
                A::PutBucketLifecycleConfiguration(_) | A::DeleteBucketLifecycle => {
                    Check::new(b, owner, "s3:PutLifecycleConfiguration")
                }
                A::GetBucketEncryption => Check::new(b, owner, "s3:GetEncryptionConfiguration"),
                A::PutBucketEncryption { .. } | A::DeleteBucketEncryption => {
                    Check::new(b, owner, "s3:PutEncryptionConfiguration")
                }
            })
        }
        R::Tagging { bucket, request } => {
            use TagRequest as T;
            let b = bucket.as_str();
            one(match request {
                T::GetObject { key, version_id } => {
                    let action = versioned(
                        version_id,
                        "s3:GetObjectTagging",
                        "s3:GetObjectVersionTagging",
                    );
                    Check::new(b, read, action).object(key)
                }
                T::PutObject {
                    key, version_id, ..
                } => {
                    let action = versioned(
                        version_id,
                        "s3:PutObjectTagging",
                        "s3:PutObjectVersionTagging",
                    );
                    Check::new(b, write, action).object(key)
                }
                T::DeleteObject { key, version_id } => {
                    let action = versioned(
                        version_id,
                        "s3:DeleteObjectTagging",
                        "s3:DeleteObjectVersionTagging",
                    );
                    Check::new(b, write, action).object(key)
                }
                T::GetBucket => Check::new(b, read, "s3:GetBucketTagging"),
                T::PutBucket(_) | T::DeleteBucket => Check::new(b, owner, "s3:PutBucketTagging"),
            })
        }
        R::ObjectLock { bucket, request } => {
            use LockRequest as L;
            let b = bucket.as_str();
            Need::On(match request {
                L::GetConfiguration => {
                    vec![Check::new(b, read, "s3:GetBucketObjectLockConfiguration")]
                }
                L::PutConfiguration { .. } => {
                    vec![Check::new(b, owner, "s3:PutBucketObjectLockConfiguration")]
                }
                L::GetRetention { key, .. } => {
                    vec![Check::new(b, read, "s3:GetObjectRetention").object(key)]
                }
                L::PutRetention {
                    key,
                    bypass_governance,
                    ..
                } => {
                    let bypassing = bypass_governance.then(|| bypass(b, key));
                    std::iter::once(Check::new(b, write, "s3:PutObjectRetention").object(key))
                        .chain(bypassing)
                        .collect()
                }
                L::GetLegalHold { key, .. } => {
                    vec![Check::new(b, read, "s3:GetObjectLegalHold").object(key)]
                }
                L::PutLegalHold { key, .. } => {
                    vec![Check::new(b, write, "s3:PutObjectLegalHold").object(key)]
                }
            })
        }
        R::Layout { .. } => Need::Root,
        R::Preflight { .. } => Need::Anyone,
    }
}

/// What admitted a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Grant,
    Policy,
    Acl,
}

/// A bucket's access settings, as one authorization reads them.
#[derive(Debug, Clone, Default)]
pub struct BucketAccess {
    pub owner: Option<String>,
    pub policy: Option<Arc<Policy>>,
    pub block: PublicAccessBlock,
    pub ownership: Option<Ownership>,
    /// The bucket's ACL row, if it has one (none: private to the owner).
    pub acl: Option<Acl>,
    /// The bucket's CORS rules (`s3::cors`), if it has them.
    pub cors: Option<Vec<CorsRule>>,
}

impl BucketAccess {
    /// Whether the bucket's ACLs count (they do unless ownership is enforced).
    pub fn acls_on(&self) -> bool {
        self.ownership != Some(Ownership::BucketOwnerEnforced)
    }
}

/// What authorization decided, for the request to go on with.
#[derive(Default)]
pub struct Authorized {
    /// The view it read (none for the root key): as fresh as the request's own would be.
    pub view: Option<MetaReader>,
    /// A DeleteObjects' keys the caller may not delete.
    pub denied: Vec<String>,
}

impl Authorized {
    fn by(view: MetaReader) -> Self {
        Self {
            view: Some(view),
            denied: Vec::new(),
        }
    }
}

/// Whether a key with record `key` (none: deleted since it signed) meets `need` by its
/// grants alone.
pub fn allows(key: Option<&AccessKey>, need: &Need) -> bool {
    let Some(key) = key else { return false };
    match need {
        Need::Signed => true,
        Need::CreateBucket => key.create_bucket,
        Need::On(checks) => checks.iter().all(|c| key.perms(&c.bucket).covers(c.perms)),
        Need::Root => false,
        Need::Anyone => true,
    }
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::Internal(e.to_string())
}

/// The x-amz-acl a request carries, for the `s3:x-amz-acl` condition.
fn canned_acl(request: &Request) -> Option<&str> {
    let acl = match request {
        Request::PutObject(a) => a.acl.as_ref(),
        Request::CopyObject(a) => a.acl.as_ref(),
        Request::CreateMultipartUpload(a) => a.acl.as_ref(),
        Request::Access {
            request: AccessRequest::PutBucketAcl(acl) | AccessRequest::PutObjectAcl { acl, .. },
            ..
        } => Some(acl),
        _ => None,
    };
    match acl {
        Some(AclInput::Canned(name)) => Some(name),
        _ => None,
    }
}

/// The listing arguments a request carries, for the `s3:prefix`, `s3:delimiter` and
/// `s3:max-keys` conditions.
fn list_args(request: &Request) -> (Option<&str>, Option<&str>, Option<String>) {
    match request {
        Request::ListObjects {
            prefix,
            delimiter,
            max_keys,
            ..
        }
        | Request::ListObjectsV2 {
            prefix,
            delimiter,
            max_keys,
            ..
        }
        | Request::ListObjectVersions {
            prefix,
            delimiter,
            max_keys,
            ..
        } => (
            prefix.as_deref(),
            delimiter.as_deref(),
            max_keys.map(|m| m.to_string()),
        ),
        _ => (None, None, None),
    }
}

impl<E: Env> S3<E> {
    /// Refuses `request` with AccessDenied unless `caller` may make it. The view it
    /// decided on, if it took one (after a ReadIndex), is returned for the request to
    /// read from: it is as fresh as one the request would take itself. A DeleteObjects
    /// is decided per key: the keys refused are returned, and the rest go ahead.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        origin: &Origin,
        request: &Request,
    ) -> Result<Authorized, S3Error> {
        let id = match caller {
            Caller::Root => return Ok(Authorized::default()),
            Caller::Key(id) => Some(id.as_str()),
            Caller::Anonymous => None,
        };
        let need = need(request);
        let reader = match need {
            Need::Anyone => return Ok(Authorized::default()),
            Need::Root => return Err(S3Error::AccessDenied),
            Need::Signed | Need::CreateBucket if id.is_none() => {
                return Err(S3Error::AccessDenied);
            }
            _ => self.reader().await?,
        };
        let key = match id {
            Some(id) => match self.known_key(&reader, id)? {
                Some(known) => Some(known.key),
                // Deleted since it signed: it may do nothing.
                None => return Err(S3Error::AccessDenied),
            },
            None => None,
        };
        let checks = match &need {
            Need::On(checks) => checks,
            _ if allows(key.as_deref(), &need) => return Ok(Authorized::by(reader)),
            _ => return Err(S3Error::AccessDenied),
        };
        let (prefix, delimiter, max_keys) = list_args(request);
        let mut cx = Context {
            principal: id,
            source_ip: origin.source_ip,
            secure: origin.secure,
            referer: origin.referer.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            prefix,
            delimiter,
            max_keys,
            acl: canned_acl(request),
            ..Context::default()
        };
        let per_key = matches!(request, Request::DeleteObjects { .. });
        let mut denied = Vec::new();
        let mut buckets: BTreeMap<&str, Arc<BucketAccess>> = BTreeMap::new();
        let resources: Vec<String> = checks.iter().map(Check::resource).collect();
        for (check, resource) in checks.iter().zip(&resources) {
            if !buckets.contains_key(check.bucket.as_str()) {
                let access = self.bucket_access(&reader, &check.bucket)?;
                buckets.insert(&check.bucket, access);
            }
            let access = &buckets[check.bucket.as_str()];
            cx.action = check.action;
            cx.resource = resource;
            let tags = match (&check.key, &access.policy) {
                (Some(k), Some(p)) if p.uses_object_tags() => {
                    self.object_tags(&reader, &check.bucket, k)?
                }
                _ => Vec::new(),
            };
            let by = if tags.is_empty() {
                self.admits(&reader, key.as_deref(), &cx, access, check)?
            } else {
                let mut tagged = cx.clone();
                tagged.tags = &tags;
                self.admits(&reader, key.as_deref(), &tagged, access, check)?
            };
            let ok = match by {
                None => false,
                // A read the policy allows of an object that is not there: S3 says so
                // only to a caller who may list the bucket, and AccessDenied to others.
                Some(By::Policy) if check.action == "s3:GetObject" => {
                    let key = check.key.as_deref().unwrap_or_default();
                    let exists = reader
                        .object(&check.bucket, key)
                        .map_err(internal)?
                        .is_some();
                    let list = Check::new(&check.bucket, Perms::READ, "s3:ListBucket")
                        .bucket_acl(Permission::Read);
                    let bucket_arn = list.resource();
                    let mut list_cx = cx.clone();
                    list_cx.action = list.action;
                    list_cx.resource = &bucket_arn;
                    exists
                        || self
                            .admits(&reader, None, &list_cx, access, &list)?
                            .is_some()
                }
                Some(_) => true,
            };
            if !ok {
                match (per_key, &check.key) {
                    (true, Some(key)) => denied.push(key.clone()),
                    _ => return Err(S3Error::AccessDenied),
                }
            }
        }
        let mut done = Authorized::by(reader);
        done.denied = denied;
        Ok(done)
    }

    /// What admits one check, if anything: an explicit Deny of the policy refuses it
    /// whatever else would.
    fn admits(
        &self,
        reader: &MetaReader,
        key: Option<&AccessKey>,
        cx: &Context,
        access: &BucketAccess,
        check: &Check,
    ) -> Result<Option<By>, S3Error> {
        let decision = access
            .policy
            .as_ref()
            .map_or(Decision::Silent, |p| p.evaluate(cx));
        let restricted = cx.principal.is_none()
            && access.block.restrict_public_buckets
            && access.policy.as_ref().is_some_and(|p| p.is_public());
        Ok(match decision {
            Decision::Deny => None,
            _ if key.is_some_and(|k| k.perms(&check.bucket).covers(check.perms)) => Some(By::Grant),
            Decision::Allow if !restricted => Some(By::Policy),
            _ if self.acl_allows(reader, access, check, cx.principal)? => Some(By::Acl),
            _ => None,
        })
    }

    /// The tags of the current version of `key` (none if there is none).
    fn object_tags(
        &self,
        reader: &MetaReader,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<Tag>, S3Error> {
        match reader.object(bucket, key).map_err(internal)? {
            Some(s) => crate::s3::tags::version_tags(reader, bucket, s.version),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the ACL a check names admits the caller `id`.
    fn acl_allows(
        &self,
        reader: &MetaReader,
        access: &BucketAccess,
        check: &Check,
        id: Option<&str>,
    ) -> Result<bool, S3Error> {
        let (Some((need, on_object)), true, Some(owner)) =
            (check.acl, access.acls_on(), access.owner.as_deref())
        else {
            return Ok(false);
        };
        let acl = if on_object {
            let key = check.key.as_deref().unwrap_or_default();
            let Some(s) = reader.object(&check.bucket, key).map_err(internal)? else {
                // No object to read: refused like any other read the caller may not make.
                return Ok(false);
            };
            match reader
                .setting(&check.bucket, &settings::object_acl(s.version))
                .map_err(internal)?
            {
                Some(Setting::Acl(acl)) => Some(acl),
                _ => None,
            }
        } else {
            access.acl.clone()
        };
        let acl = acl.unwrap_or_else(|| Acl::private(owner));
        Ok(acl.allows(id, need, access.block.ignore_public_acls))
    }

    /// The owner, policy, public access block, ownership and ACL of `bucket`, as of
    /// `reader`'s view (a missing bucket has none of them).
    pub(crate) fn bucket_access(
        &self,
        reader: &MetaReader,
        bucket: &str,
    ) -> Result<Arc<BucketAccess>, S3Error> {
        let found = self
            .buckets
            .get_or_fill(reader, bucket, |r| self.read_bucket_access(r, bucket))?;
        Ok(found.unwrap_or_default())
    }

    fn read_bucket_access(
        &self,
        reader: &MetaReader,
        bucket: &str,
    ) -> Result<Option<Arc<BucketAccess>>, S3Error> {
        let Some(b) = reader.bucket(bucket).map_err(internal)? else {
            return Ok(None);
        };
        let mut access = BucketAccess {
            owner: Some(b.owner),
            ..BucketAccess::default()
        };
        for (name, setting) in reader.bucket_settings(bucket).map_err(internal)? {
            match (name.as_str(), setting) {
                (settings::POLICY, Setting::Policy(text)) => {
                    access.policy = self.policies.get(bucket, text);
                }
                (settings::PUBLIC_ACCESS_BLOCK, Setting::PublicAccessBlock(block)) => {
                    access.block = block;
                }
                (settings::OWNERSHIP, Setting::Ownership(o)) => access.ownership = Some(o),
                (settings::BUCKET_ACL, Setting::Acl(acl)) => access.acl = Some(acl),
                (settings::CORS, Setting::Cors(rules)) => access.cors = Some(rules),
                _ => {}
            }
        }
        Ok(Some(Arc::new(access)))
    }

    /// Key `id` with its secret, as of `reader`'s view (none: no such key).
    pub(crate) fn known_key(
        &self,
        reader: &MetaReader,
        id: &str,
    ) -> Result<Option<KnownKey>, S3Error> {
        self.keys.get_or_fill(reader, id, |r| {
            let Some(key) = r.access_key(id).map_err(internal)? else {
                return Ok(None);
            };
            let Some(secret) = unseal(&self.config.seal_key, id, &key.sealed_secret) else {
                return Err(S3Error::Internal(format!(
                    "the secret of key {id} does not unseal: was the root secret changed since it was made?"
                )));
            };
            Ok(Some(KnownKey {
                key: Arc::new(key),
                secret: secret.into(),
            }))
        })
    }

    /// A key as this node last applied it.
    pub(crate) fn local_key(&self, id: &str) -> Result<Option<KnownKey>, S3Error> {
        let reader = self.raft.reader().map_err(propose_error)?;
        self.known_key(&reader, id)
    }

    /// The id buckets record as their owner for `caller`.
    pub(crate) fn owner_id(&self, caller: &Caller) -> String {
        match caller {
            Caller::Key(id) => id.clone(),
            Caller::Root | Caller::Anonymous => self.config.owner.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::s3::api::{CopyArgs, SourceArgs};

    fn key(grants: &[(&str, Perms)], create_bucket: bool) -> AccessKey {
        AccessKey {
            name: "k".into(),
            sealed_secret: Vec::new(),
            create_bucket,
            created_ms: 0,
            grants: grants
                .iter()
                .map(|(b, p)| (b.to_string(), *p))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn each_request_needs_the_right_it_should() {
        let reader = key(&[("b", Perms::READ)], false);
        let writer = key(&[("b", Perms::WRITE)], true);
        let head = Request::HeadBucket { bucket: "b".into() };
        let delete = Request::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            bypass_governance: false,
        };
        // Bypassing governance retention is an owner's right.
        let bypassing = Request::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("null".into()),
            bypass_governance: true,
        };
        assert!(!allows(Some(&writer), &need(&bypassing)));
        assert!(allows(
            Some(&key(
                &[(
                    "b",
                    Perms {
                        read: false,
                        write: true,
                        owner: true
                    }
                )],
                false
            )),
            &need(&bypassing)
        ));
        let drop_bucket = Request::DeleteBucket { bucket: "b".into() };
        let other = Request::HeadBucket { bucket: "c".into() };
        let create = Request::CreateBucket {
            bucket: "n".into(),
            acl: None,
            ownership: None,
            object_lock: false,
        };
        assert!(allows(Some(&reader), &need(&head)));
        assert!(!allows(Some(&reader), &need(&delete)));
        assert!(allows(Some(&writer), &need(&delete)));
        assert!(!allows(Some(&writer), &need(&head)));
        assert!(!allows(Some(&writer), &need(&drop_bucket)));
        assert!(allows(
            Some(&key(&[("b", Perms::OWNER)], false)),
            &need(&drop_bucket)
        ));
        assert!(!allows(Some(&reader), &need(&other)));
        assert!(!allows(Some(&reader), &need(&create)));
        assert!(allows(Some(&writer), &need(&create)));
        assert!(!allows(None, &need(&head)), "a deleted key may do nothing");
        assert!(!allows(Some(&key(&[("b", Perms::ALL)], true)), &Need::Root));
        // A copy reads its source and writes its target.
        let copy = |src: &str, dst: &str| {
            Request::CopyObject(Box::new(CopyArgs {
                bucket: dst.into(),
                key: "k".into(),
                source: SourceArgs {
                    bucket: src.into(),
                    key: "s".into(),
                    ..Default::default()
                },
                ..Default::default()
            }))
        };
        let both = key(&[("src", Perms::READ), ("dst", Perms::WRITE)], false);
        assert!(allows(Some(&both), &need(&copy("src", "dst"))));
        assert!(!allows(Some(&both), &need(&copy("dst", "src"))));
    }
}
