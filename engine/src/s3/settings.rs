//! The access settings of a bucket and its objects (`AccessRequest`): bucket policies,
//! ACLs (canned or granted), the public access block and object ownership. Each is a
//! row of the replicated settings table (`meta::access`), put by one command; who may
//! change them was decided in `s3::access`.

use crate::env::Env;
use crate::meta::access::{
    self as settings, Acl, Grant, Grantee, Ownership, Permission, Setting, VersionSettings,
};
use crate::meta::encryption::{
    BUCKET_ENCRYPTION, BucketEncryption, ObjectEncryption, upload_encryption,
};
use crate::meta::lifecycle::LIFECYCLE;
use crate::meta::retention::{VersionLock, upload_lock};
use crate::meta::{Applied, CommandV1};
use crate::s3::access::{BucketAccess, Caller};
use crate::s3::api::{AccessRequest, AclInput, Response};
use crate::s3::policy::Policy;
use crate::s3::{S3, S3Error, applied_error};

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::Internal(e.to_string())
}

/// The ACL `input` names for something owned by `owner` in a bucket owned by
/// `bucket_owner`, if the bucket's settings accept it.
pub(crate) fn resolve_acl(
    input: &AclInput,
    owner: &str,
    bucket_owner: &str,
    access: &BucketAccess,
) -> Result<Acl, S3Error> {
    let grant = |grantee, permission| Grant {
        grantee,
        permission,
    };
    let mut acl = Acl::private(owner);
    let only_owner = match input {
        AclInput::Canned(name) => {
            let extra = match name.as_str() {
                "private" => vec![],
                "public-read" => vec![grant(Grantee::AllUsers, Permission::Read)],
                "public-read-write" => vec![
                    grant(Grantee::AllUsers, Permission::Read),
                    grant(Grantee::AllUsers, Permission::Write),
                ],
                "authenticated-read" => {
                    vec![grant(Grantee::AuthenticatedUsers, Permission::Read)]
                }
                "bucket-owner-read" => {
                    vec![grant(Grantee::Id(bucket_owner.into()), Permission::Read)]
                }
                "bucket-owner-full-control" => vec![grant(
                    Grantee::Id(bucket_owner.into()),
                    Permission::FullControl,
                )],
                other => {
                    return Err(S3Error::InvalidArgument(format!(
                        "{other} is not a canned ACL"
                    )));
                }
            };
            acl.grants.extend(extra);
            matches!(name.as_str(), "private" | "bucket-owner-full-control")
        }
        AclInput::Grants { grants, .. } => {
            acl.grants = grants.clone();
            grants.iter().all(|g| {
                g.grantee == Grantee::Id(bucket_owner.into())
                    && g.permission == Permission::FullControl
            })
        }
    };
    acl.grants.dedup();
    if !access.acls_on() && !only_owner {
        return Err(S3Error::AclNotSupported);
    }
    if access.block.block_public_acls && acl.is_public() {
        return Err(S3Error::AccessDenied);
    }
    Ok(acl)
}

impl<E: Env> S3<E> {
    /// Answers one access-settings request on `bucket`.
    pub(crate) async fn access_request(
        &self,
        bucket: &str,
        request: AccessRequest,
    ) -> Result<Response, S3Error> {
        use AccessRequest as A;
        let reader = self.reader().await?;
        let access = self.bucket_access(&reader, bucket)?;
        let Some(owner) = access.owner.clone() else {
            return Err(S3Error::NoSuchBucket);
        };
        let get = |name: &str| reader.setting(bucket, name).map_err(internal);
        let put = |name: &str, setting| CommandV1::PutSetting {
            bucket: bucket.into(),
            name: name.into(),
            setting,
        };
        let delete = |name: &str| CommandV1::DeleteSetting {
            bucket: bucket.into(),
            name: name.into(),
        };
        let command = match request {
            A::GetBucketPolicy => {
                return match get(settings::POLICY)? {
                    Some(Setting::Policy(text)) => Ok(Response::Policy(text)),
                    _ => Err(S3Error::NoSuchBucketPolicy),
                };
            }
            A::GetBucketPolicyStatus => {
                return match &access.policy {
                    Some(p) => Ok(Response::PolicyStatus(p.is_public())),
                    None => Err(S3Error::NoSuchBucketPolicy),
                };
            }
            A::PutBucketPolicy(text) => {
                let policy = Policy::parse(&text, bucket)?;
                if access.block.block_public_policy && policy.is_public() {
                    return Err(S3Error::AccessDenied);
                }
                put(settings::POLICY, Setting::Policy(text))
            }
            A::DeleteBucketPolicy => delete(settings::POLICY),
            A::GetBucketAcl => {
                return Ok(Response::Acl(match get(settings::BUCKET_ACL)? {
                    Some(Setting::Acl(acl)) => acl,
                    _ => Acl::private(&owner),
                }));
            }
            A::PutBucketAcl(input) => put(
                settings::BUCKET_ACL,
                Setting::Acl(resolve_acl(&input, &owner, &owner, &access)?),
            ),
            A::GetObjectAcl { key, version_id } => {
                let stored = self
                    .resolve(&reader, bucket, &key, version_id.as_deref())
                    .await?;
                return Ok(Response::Acl(
                    match get(&settings::object_acl(stored.version))? {
                        Some(Setting::Acl(acl)) => acl,
                        _ => Acl::private(&owner),
                    },
                ));
            }
            A::PutObjectAcl {
                key,
                version_id,
                acl,
            } => {
                let stored = self
                    .resolve(&reader, bucket, &key, version_id.as_deref())
                    .await?;
                let current = match get(&settings::object_acl(stored.version))? {
                    Some(Setting::Acl(acl)) => acl.owner,
                    _ => owner.clone(),
                };
                CommandV1::PutObjectAcl {
                    bucket: bucket.into(),
                    key,
                    version: Some(stored.version),
                    acl: resolve_acl(&acl, &current, &owner, &access)?,
                }
            }
            A::GetPublicAccessBlock => {
                return match get(settings::PUBLIC_ACCESS_BLOCK)? {
                    Some(Setting::PublicAccessBlock(b)) => Ok(Response::PublicAccessBlock(b)),
                    _ => Err(S3Error::NoSuchPublicAccessBlock),
                };
            }
            A::PutPublicAccessBlock(b) => {
                put(settings::PUBLIC_ACCESS_BLOCK, Setting::PublicAccessBlock(b))
            }
            A::DeletePublicAccessBlock => delete(settings::PUBLIC_ACCESS_BLOCK),
            A::GetBucketOwnershipControls => {
                return access
                    .ownership
                    .map(Response::Ownership)
                    .ok_or(S3Error::NoOwnershipControls);
            }
            A::PutBucketOwnershipControls(o) => put(settings::OWNERSHIP, Setting::Ownership(o)),
            A::GetBucketCors => {
                return access
                    .cors
                    .clone()
                    .map(Response::CorsRules)
                    .ok_or(S3Error::NoSuchCorsConfiguration);
            }
            A::PutBucketCors(rules) => {
                crate::s3::cors::validate(&rules)?;
                put(settings::CORS, Setting::Cors(rules))
            }
            A::DeleteBucketCors => delete(settings::CORS),
            A::GetBucketLifecycleConfiguration => {
                return match get(LIFECYCLE)? {
                    Some(Setting::Lifecycle(rules)) => Ok(Response::Lifecycle(rules)),
                    _ => Err(S3Error::NoSuchLifecycleConfiguration),
                };
            }
            A::PutBucketLifecycleConfiguration(rules) => {
                crate::s3::lifecycle::validate(&rules)?;
                put(LIFECYCLE, Setting::Lifecycle(rules))
            }
            A::DeleteBucketLifecycle => delete(LIFECYCLE),
            A::GetBucketEncryption => {
                return match get(BUCKET_ENCRYPTION)? {
                    Some(Setting::BucketEncryption(e)) => Ok(Response::Encryption(e)),
                    _ => Err(S3Error::NoEncryptionConfiguration),
                };
            }
            A::PutBucketEncryption {
                algorithm,
                bucket_key_enabled,
            } => {
                crate::s3::encryption::default_algorithm(
                    &algorithm,
                    self.config.master_key.is_some(),
                )?;
                let setting = BucketEncryption { bucket_key_enabled };
                put(BUCKET_ENCRYPTION, Setting::BucketEncryption(setting))
            }
            A::DeleteBucketEncryption => delete(BUCKET_ENCRYPTION),
            A::DeleteBucketOwnershipControls => delete(settings::OWNERSHIP),
        };
        match self.propose(command).await? {
            Applied::Done => Ok(Response::Done),
            // The object was overwritten between the read and the commit.
            Applied::PreconditionFailed => Err(S3Error::OutcomeUnknown(
                "the object changed while its ACL was set; retry".into(),
            )),
            other => Err(applied_error(other)),
        }
    }

    /// Gives a new bucket the ACL (resolved before it was created) and the object
    /// ownership CreateBucket asked for.
    pub(crate) async fn new_bucket_settings(
        &self,
        bucket: &str,
        acl: Option<Acl>,
        ownership: Option<Ownership>,
    ) -> Result<(), S3Error> {
        let ownership = ownership.map(|o| (settings::OWNERSHIP, Setting::Ownership(o)));
        let acl = acl.map(|a| (settings::BUCKET_ACL, Setting::Acl(a)));
        for (name, setting) in ownership.into_iter().chain(acl) {
            let command = CommandV1::PutSetting {
                bucket: bucket.into(),
                name: name.into(),
                setting,
            };
            match self.propose(command).await? {
                Applied::Done => {}
                other => return Err(applied_error(other)),
            }
        }
        Ok(())
    }

    /// The ACL an object written by `caller` gets from `input`, checked against the
    /// bucket's settings before anything is written.
    pub(crate) async fn acl_for_write(
        &self,
        caller: &Caller,
        bucket: &str,
        input: Option<&AclInput>,
    ) -> Result<Option<Acl>, S3Error> {
        let Some(input) = input else { return Ok(None) };
        let reader = self.reader().await?;
        let access = self.bucket_access(&reader, bucket)?;
        let Some(bucket_owner) = access.owner.clone() else {
            return Err(S3Error::NoSuchBucket);
        };
        let writer = match access.ownership {
            Some(Ownership::BucketOwnerEnforced) => bucket_owner.clone(),
            Some(Ownership::BucketOwnerPreferred)
                if *input == AclInput::Canned("bucket-owner-full-control".into()) =>
            {
                bucket_owner.clone()
            }
            _ => self.owner_id(caller),
        };
        resolve_acl(input, &writer, &bucket_owner, &access).map(Some)
    }
}

/// The settings rows an upload gets at its creation: the ACL, tags, lock and encryption
/// its object will have when it completes.
pub(crate) fn upload_rows(
    upload_id: &str,
    (given, lock): (VersionSettings, Option<VersionLock>),
    encryption: Option<ObjectEncryption>,
) -> Vec<(String, Setting)> {
    let acl = given
        .acl
        .map(|acl| (settings::upload_acl(upload_id), Setting::Acl(acl)));
    let tags = given
        .tags
        .map(|tags| (settings::upload_tags(upload_id), Setting::Tags(tags)));
    let lock = lock.map(|l| (upload_lock(upload_id), Setting::Lock(l)));
    let sealed = encryption.map(|e| (upload_encryption(upload_id), Setting::Encryption(e)));
    acl.into_iter()
        .chain(tags)
        .chain(lock)
        .chain(sealed)
        .collect()
}
