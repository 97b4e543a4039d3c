//! Who may do what: every request is authorized here, before it runs, for the caller
//! the front end authenticated (`Caller`). The root key may do anything; an access key
//! what its grants on the bucket allow (`meta::keys`: read, write, owner); an anonymous
//! caller nothing (bucket policies and ACLs will open that up).
//!
//! A key's grants are read after a ReadIndex, so authorization is linearizable: a grant
//! or revocation acknowledged before a request began is in force for it, on every node
//! (a lagging follower waits to apply it first). ReadIndex calls are batched, so
//! concurrent requests share one round; the root key skips it.

use crate::env::Env;
use crate::meta::keys::{AccessKey, Perms};
use crate::s3::api::Request;
use crate::s3::{S3, S3Error, propose_error};

pub use crate::s3::api::Caller;

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Any authenticated caller (ListBuckets: each sees the buckets it may read).
    Signed,
    /// The right to create buckets.
    CreateBucket,
    /// Rights on one bucket.
    Bucket(String, Perms),
    /// Read on a copy's source bucket, write on its destination.
    Copy { source: String, target: String },
    /// The root key only.
    Root,
}

/// What `request` needs.
pub fn need(request: &Request) -> Need {
    use Request as R;
    let on = |bucket: &String, perms| Need::Bucket(bucket.clone(), perms);
    match request {
        R::ListBuckets => Need::Signed,
        R::CreateBucket { .. } => Need::CreateBucket,
        R::DeleteBucket { bucket } => on(bucket, Perms::OWNER),
        R::HeadBucket { bucket }
        | R::GetBucketLocation { bucket }
        | R::GetBucketVersioning { bucket }
        | R::HeadObject { bucket, .. }
        | R::ListObjects { bucket, .. }
        | R::ListObjectsV2 { bucket, .. }
        | R::ListParts { bucket, .. }
        | R::ListMultipartUploads { bucket, .. }
        | R::ListObjectVersions { bucket, .. } => on(bucket, Perms::READ),
        R::GetObject(a) => on(&a.bucket, Perms::READ),
        R::PutObject(a) => on(&a.bucket, Perms::WRITE),
        R::UploadPart(a) => on(&a.bucket, Perms::WRITE),
        R::CreateMultipartUpload(a) => on(&a.bucket, Perms::WRITE),
        R::DeleteObject { bucket, .. }
        | R::DeleteObjects { bucket, .. }
        | R::CompleteMultipartUpload { bucket, .. }
        | R::AbortMultipartUpload { bucket, .. } => on(bucket, Perms::WRITE),
        R::CopyObject(a) => Need::Copy {
            source: a.source.bucket.clone(),
            target: a.bucket.clone(),
        },
        R::UploadPartCopy(a) => Need::Copy {
            source: a.source.bucket.clone(),
            target: a.bucket.clone(),
        },
        R::Layout { .. } => Need::Root,
    }
}

/// Whether a key with record `key` (none: deleted since it signed) meets `need`.
pub fn allows(key: Option<&AccessKey>, need: &Need) -> bool {
    let Some(key) = key else { return false };
    match need {
        Need::Signed => true,
        Need::CreateBucket => key.create_bucket,
        Need::Bucket(bucket, perms) => key.perms(bucket).covers(*perms),
        Need::Copy { source, target } => {
            key.perms(source).covers(Perms::READ) && key.perms(target).covers(Perms::WRITE)
        }
        Need::Root => false,
    }
}

impl<E: Env> S3<E> {
    /// Refuses `request` with AccessDenied unless `caller` may make it.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        request: &Request,
    ) -> Result<(), S3Error> {
        let ok = match caller {
            Caller::Root => true,
            Caller::Anonymous => false,
            Caller::Key(id) => {
                let key = self
                    .reader()
                    .await?
                    .access_key(id)
                    .map_err(|e| S3Error::Internal(e.to_string()))?;
                allows(key.as_ref(), &need(request))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(S3Error::AccessDenied)
        }
    }

    /// A key as this node last applied it.
    pub(crate) fn local_key(&self, id: &str) -> Result<Option<AccessKey>, S3Error> {
        let reader = self.raft.reader().map_err(propose_error)?;
        reader
            .access_key(id)
            .map_err(|e| S3Error::Internal(e.to_string()))
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
        };
        let drop_bucket = Request::DeleteBucket { bucket: "b".into() };
        let other = Request::HeadBucket { bucket: "c".into() };
        let create = Request::CreateBucket { bucket: "n".into() };
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
