//! Object and bucket tagging: s3s's inputs as the engine's `TagRequest`s, and its tag
//! sets back. What a valid tag set is, and where tags live, is the engine's.

use engine::meta::access::Tag;
use engine::s3::api::{Request, Response, TagRequest};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::{Asker, Edge, unexpected};

/// A Tagging document's tags (a missing key or value is an empty one: the engine
/// refuses an empty key).
fn tags_of(tagging: dto::Tagging) -> Vec<Tag> {
    tagging.tag_set.into_iter().map(tag_of).collect()
}

/// One tag (a missing key or value is an empty one).
pub(super) fn tag_of(t: dto::Tag) -> Tag {
    Tag {
        key: t.key.unwrap_or_default(),
        value: t.value.unwrap_or_default(),
    }
}

pub(super) fn tag_set(tags: Vec<Tag>) -> dto::TagSet {
    tags.into_iter()
        .map(|t| dto::Tag {
            key: Some(t.key),
            value: Some(t.value),
        })
        .collect()
}

impl Edge {
    async fn tagging(
        &self,
        who: &Asker,
        bucket: String,
        request: TagRequest,
    ) -> S3Result<Response> {
        self.respond(who, Request::Tagging { bucket, request })
            .await
    }

    async fn tags(
        &self,
        who: &Asker,
        bucket: String,
        request: TagRequest,
    ) -> S3Result<dto::TagSet> {
        match self.tagging(who, bucket, request).await? {
            Response::Tags(tags) => Ok(tag_set(tags)),
            other => Err(unexpected(other)),
        }
    }

    async fn done(&self, who: &Asker, bucket: String, request: TagRequest) -> S3Result<()> {
        match self.tagging(who, bucket, request).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn object_tagging(
        &self,
        req: S3Request<dto::GetObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::GetObjectTaggingOutput>> {
        let i = req.input;
        let request = TagRequest::GetObject {
            key: i.key,
            version_id: i.version_id,
        };
        let tag_set = self.tags(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(dto::GetObjectTaggingOutput {
            tag_set,
            version_id: None,
        }))
    }

    pub(super) async fn set_object_tagging(
        &self,
        req: S3Request<dto::PutObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::PutObjectTaggingOutput>> {
        let i = req.input;
        let request = TagRequest::PutObject {
            key: i.key,
            version_id: i.version_id,
            tags: tags_of(i.tagging),
        };
        self.done(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(dto::PutObjectTaggingOutput::default()))
    }

    pub(super) async fn drop_object_tagging(
        &self,
        req: S3Request<dto::DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectTaggingOutput>> {
        let i = req.input;
        let request = TagRequest::DeleteObject {
            key: i.key,
            version_id: i.version_id,
        };
        self.done(asker!(req), i.bucket, request).await?;
        Ok(S3Response::with_status(
            dto::DeleteObjectTaggingOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn bucket_tagging(
        &self,
        req: S3Request<dto::GetBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::GetBucketTaggingOutput>> {
        let bucket = req.input.bucket;
        let tag_set = self
            .tags(asker!(req), bucket, TagRequest::GetBucket)
            .await?;
        Ok(S3Response::new(dto::GetBucketTaggingOutput { tag_set }))
    }

    pub(super) async fn set_bucket_tagging(
        &self,
        req: S3Request<dto::PutBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::PutBucketTaggingOutput>> {
        let i = req.input;
        let request = TagRequest::PutBucket(tags_of(i.tagging));
        self.done(asker!(req), i.bucket, request).await?;
        Ok(S3Response::new(dto::PutBucketTaggingOutput::default()))
    }

    pub(super) async fn drop_bucket_tagging(
        &self,
        req: S3Request<dto::DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketTaggingOutput>> {
        let bucket = req.input.bucket;
        self.done(asker!(req), bucket, TagRequest::DeleteBucket)
            .await?;
        Ok(S3Response::with_status(
            dto::DeleteBucketTaggingOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
