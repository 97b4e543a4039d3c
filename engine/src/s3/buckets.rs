//! Bucket operations: list, create, head, delete.

use crate::env::Env;
use crate::meta::access::{Ownership, Setting, Versioning};
use crate::meta::lock::{LOCK_CONFIG, LockConfig};
use crate::meta::versions::VERSIONING;
use crate::meta::{Applied, CommandV1};
use crate::s3::access::{BucketAccess, Caller};
use crate::s3::api::AclInput;
use crate::s3::settings::resolve_acl;
use crate::s3::{S3, S3Error, applied_error, validate_bucket};

impl<E: Env> S3<E> {
    /// The buckets `caller` may read, in name order.
    pub async fn list_buckets(&self, caller: &Caller) -> Result<Vec<(String, u64)>, S3Error> {
        let r = self.reader().await?;
        let key = match caller {
            Caller::Key(id) => Some(
                r.access_key(id)
                    .map_err(|e| S3Error::Internal(e.to_string()))?
                    .ok_or(S3Error::AccessDenied)?,
            ),
            Caller::Root | Caller::Anonymous => None,
        };
        Ok(r.buckets()
            .map_err(|e| S3Error::Internal(e.to_string()))?
            .into_iter()
            .filter(|(name, _)| key.as_ref().is_none_or(|k| k.perms(name).read))
            .map(|(name, b)| (name, b.created_ms))
            .collect())
    }

    /// Creates a bucket owned by `caller`, with the ACL and object ownership given (and
    /// with `object_lock`, versioning Enabled and object lock on). One
    /// that exists is the caller's (`BucketAlreadyOwnedByYou`) or someone else's
    /// (`BucketAlreadyExists`).
    pub async fn create_bucket(
        &self,
        caller: &Caller,
        bucket: &str,
        acl: Option<&AclInput>,
        ownership: Option<Ownership>,
        object_lock: bool,
    ) -> Result<(), S3Error> {
        validate_bucket(bucket)?;
        let owner = self.owner_id(caller);
        let access = BucketAccess {
            owner: Some(owner.clone()),
            ownership,
            ..BucketAccess::default()
        };
        let acl = acl
            .map(|a| resolve_acl(a, &owner, &owner, &access))
            .transpose()?;
        let (name, created_ms) = (bucket.to_string(), self.now_ms());
        let command = if object_lock {
            // Versioning Enabled and the lock, in the bucket's own commit.
            let settings = vec![
                (
                    VERSIONING.to_string(),
                    Setting::Versioning(Versioning::Enabled),
                ),
                (
                    LOCK_CONFIG.to_string(),
                    Setting::LockConfig(LockConfig::default()),
                ),
            ];
            CommandV1::CreateBucketWith {
                name,
                owner: owner.clone(),
                created_ms,
                settings,
            }
        } else {
            CommandV1::CreateBucket {
                name,
                owner: owner.clone(),
                created_ms,
            }
        };
        match self.propose(command).await? {
            Applied::Done => self.new_bucket_settings(bucket, acl, ownership).await,
            Applied::BucketExists => {
                let r = self.reader().await?;
                match r
                    .bucket(bucket)
                    .map_err(|e| S3Error::Internal(e.to_string()))?
                {
                    Some(b) if b.owner != owner => Err(S3Error::BucketAlreadyExists),
                    _ => Err(S3Error::BucketAlreadyOwnedByYou),
                }
            }
            other => Err(applied_error(other)),
        }
    }

    pub async fn head_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await
    }

    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        validate_bucket(bucket).map_err(|_| S3Error::NoSuchBucket)?;
        match self
            .propose(CommandV1::DeleteBucket {
                name: bucket.into(),
            })
            .await?
        {
            Applied::Done => Ok(()),
            other => Err(applied_error(other)),
        }
    }
}
