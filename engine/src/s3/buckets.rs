//! Bucket operations: list, create, head, delete.

use crate::env::Env;
use crate::meta::{Applied, CommandV1};
use crate::s3::{S3, S3Error, applied_error, validate_bucket};

impl<E: Env> S3<E> {
    pub async fn list_buckets(&self) -> Result<Vec<(String, u64)>, S3Error> {
        let r = self.reader().await?;
        Ok(r.buckets()
            .map_err(|e| S3Error::Internal(e.to_string()))?
            .into_iter()
            .map(|(name, b)| (name, b.created_ms))
            .collect())
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        validate_bucket(bucket)?;
        let command = CommandV1::CreateBucket {
            name: bucket.into(),
            owner: self.config.owner.clone(),
            created_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::Done => Ok(()),
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
