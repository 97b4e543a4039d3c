//! Object lock at the edge: Get/PutObjectLockConfiguration, Get/PutObjectRetention,
//! Get/PutObjectLegalHold, the x-amz-object-lock-* headers of a write and of a GET or
//! HEAD's answer. What a lock keeps is the engine's (`engine::s3::lock`,
//! `engine::meta::lock`).

use engine::meta::lock::{LockConfig, Period, VersionLock};
use engine::s3::api::{DefaultRetentionArgs, LockArgs, LockRequest, Request, Response};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result};

use super::convert::*;
use super::{Asker, Edge, unexpected};

/// A write's x-amz-object-lock-* headers.
pub(super) fn lock_args(
    mode: Option<&dto::ObjectLockMode>,
    until: Option<&dto::Timestamp>,
    hold: Option<&dto::ObjectLockLegalHoldStatus>,
) -> LockArgs {
    LockArgs {
        mode: mode.map(|m| m.as_str().to_string()),
        retain_until_ms: until.map(|t| ms_of(t) as i64),
        legal_hold: hold.map(|h| h.as_str().to_string()),
    }
}

/// A GET's or HEAD's x-amz-object-lock-* headers: mode, retain-until date, legal hold.
pub(super) type LockHeaders = (
    Option<dto::ObjectLockMode>,
    Option<dto::Timestamp>,
    Option<dto::ObjectLockLegalHoldStatus>,
);

pub(super) fn lock_headers(lock: Option<&VersionLock>) -> LockHeaders {
    let Some(lock) = lock else {
        return (None, None, None);
    };
    let retention = lock.retention.as_ref();
    (
        retention.map(|r| dto::ObjectLockMode::from(r.mode.as_str().to_string())),
        retention.map(|r| timestamp(r.until_ms)),
        Some(hold_status(lock.legal_hold)),
    )
}

fn hold_status(on: bool) -> dto::ObjectLockLegalHoldStatus {
    dto::ObjectLockLegalHoldStatus::from(if on { "ON" } else { "OFF" }.to_string())
}

fn config_dto(config: LockConfig) -> dto::ObjectLockConfiguration {
    let rule = config.default.map(|(mode, period)| {
        let (days, years) = match period {
            Period::Days(d) => (Some(d as i32), None),
            Period::Years(y) => (None, Some(y as i32)),
        };
        dto::ObjectLockRule {
            default_retention: Some(dto::DefaultRetention {
                mode: Some(dto::ObjectLockRetentionMode::from(
                    mode.as_str().to_string(),
                )),
                days,
                years,
            }),
        }
    });
    dto::ObjectLockConfiguration {
        object_lock_enabled: Some(dto::ObjectLockEnabled::from("Enabled".to_string())),
        rule,
    }
}

impl Edge {
    async fn lock_request(
        &self,
        who: &Asker,
        bucket: String,
        request: LockRequest,
    ) -> S3Result<Response> {
        self.respond(who, Request::ObjectLock { bucket, request })
            .await
    }

    pub(super) async fn lock_configuration(
        &self,
        req: S3Request<dto::GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetObjectLockConfigurationOutput>> {
        let who = asker!(req);
        let (bucket, request) = (req.input.bucket, LockRequest::GetConfiguration);
        match self.lock_request(who, bucket, request).await? {
            Response::LockConfig(c) => Ok(S3Response::new(dto::GetObjectLockConfigurationOutput {
                object_lock_configuration: Some(config_dto(c)),
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_lock_configuration(
        &self,
        req: S3Request<dto::PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutObjectLockConfigurationOutput>> {
        let who = asker!(req);
        let i = req.input;
        let config = i.object_lock_configuration.unwrap_or_default();
        let default = config
            .rule
            .and_then(|r| r.default_retention)
            .map(|d| DefaultRetentionArgs {
                mode: d.mode.map(|m| m.as_str().to_string()),
                days: d.days,
                years: d.years,
            });
        let request = LockRequest::PutConfiguration {
            enabled: config.object_lock_enabled.map(|e| e.as_str().to_string()),
            default,
        };
        self.lock_request(who, i.bucket, request).await?;
        Ok(S3Response::new(
            dto::PutObjectLockConfigurationOutput::default(),
        ))
    }

    pub(super) async fn retention(
        &self,
        req: S3Request<dto::GetObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::GetObjectRetentionOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = LockRequest::GetRetention {
            key: i.key,
            version_id: i.version_id,
        };
        match self.lock_request(who, i.bucket, request).await? {
            Response::Retention(r) => Ok(S3Response::new(dto::GetObjectRetentionOutput {
                retention: Some(dto::ObjectLockRetention {
                    mode: Some(dto::ObjectLockRetentionMode::from(
                        r.mode.as_str().to_string(),
                    )),
                    retain_until_date: Some(timestamp(r.until_ms)),
                }),
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_retention(
        &self,
        req: S3Request<dto::PutObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::PutObjectRetentionOutput>> {
        let who = asker!(req);
        let i = req.input;
        let retention = i.retention.unwrap_or_default();
        let request = LockRequest::PutRetention {
            key: i.key,
            version_id: i.version_id,
            mode: retention.mode.map(|m| m.as_str().to_string()),
            retain_until_ms: retention
                .retain_until_date
                .as_ref()
                .map(|t| ms_of(t) as i64),
            bypass_governance: i.bypass_governance_retention.unwrap_or(false),
        };
        self.lock_request(who, i.bucket, request).await?;
        Ok(S3Response::new(dto::PutObjectRetentionOutput::default()))
    }

    pub(super) async fn legal_hold(
        &self,
        req: S3Request<dto::GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::GetObjectLegalHoldOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = LockRequest::GetLegalHold {
            key: i.key,
            version_id: i.version_id,
        };
        match self.lock_request(who, i.bucket, request).await? {
            Response::LegalHold(on) => Ok(S3Response::new(dto::GetObjectLegalHoldOutput {
                legal_hold: Some(dto::ObjectLockLegalHold {
                    status: Some(hold_status(on)),
                }),
            })),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn set_legal_hold(
        &self,
        req: S3Request<dto::PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::PutObjectLegalHoldOutput>> {
        let who = asker!(req);
        let i = req.input;
        let request = LockRequest::PutLegalHold {
            key: i.key,
            version_id: i.version_id,
            status: i
                .legal_hold
                .and_then(|h| h.status)
                .map(|s| s.as_str().to_string()),
        };
        self.lock_request(who, i.bucket, request).await?;
        Ok(S3Response::new(dto::PutObjectLegalHoldOutput::default()))
    }
}
