//! Object lock as S3 answers it: Get/PutObjectLockConfiguration, Get/PutObjectRetention,
//! Get/PutObjectLegalHold, and the x-amz-object-lock-* headers of a write. What a lock
//! keeps, and who may change it, is decided at apply time (`meta::lock`); this module
//! checks the request's arguments and says S3's errors.

use crate::env::Env;
use crate::meta::access::Setting;
use crate::meta::lock::{
    self, LOCK_CONFIG, LockChange, LockConfig, LockMode, Period, Retention, VersionLock,
};
use crate::meta::store::MetaReader;
use crate::meta::{Applied, CommandV1};
use crate::s3::api::{DefaultRetentionArgs, LockArgs, LockRequest, Response};
use crate::s3::{S3, S3Error, applied_error};

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::Internal(e.to_string())
}

fn missing_lock() -> S3Error {
    S3Error::InvalidRequest("Bucket is missing Object Lock Configuration".into())
}

fn mode(s: &str) -> Result<LockMode, S3Error> {
    LockMode::parse(s).ok_or_else(|| S3Error::MalformedXml(format!("unknown lock mode {s:?}")))
}

/// A retention as a request gives it: both mode and date, or neither (`None`); the
/// date must be after `now_ms`.
fn retention(
    mode_given: Option<&str>,
    until_ms: Option<i64>,
    now_ms: u64,
) -> Result<Option<Retention>, S3Error> {
    match (mode_given, until_ms) {
        (None, None) => Ok(None),
        (Some(m), Some(until)) => {
            let mode = LockMode::parse(m).ok_or_else(|| {
                S3Error::InvalidArgument(format!("Unknown wormMode directive {m:?}"))
            })?;
            let until_ms = u64::try_from(until).unwrap_or(0);
            if until_ms <= now_ms {
                return Err(S3Error::InvalidArgument(
                    "The retain until date must be in the future!".into(),
                ));
            }
            Ok(Some(Retention { mode, until_ms }))
        }
        _ => Err(S3Error::InvalidArgument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                .into(),
        )),
    }
}

/// `ON` or `OFF`.
fn hold(status: &str) -> Result<bool, S3Error> {
    match status {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        other => Err(S3Error::InvalidArgument(format!(
            "Legal hold status must be ON or OFF, not {other:?}"
        ))),
    }
}

/// A lock configuration's default retention: a mode and a positive number of days or
/// of years, not both.
fn default_retention(d: &DefaultRetentionArgs) -> Result<(LockMode, Period), S3Error> {
    let mode = mode(d.mode.as_deref().unwrap_or_default())?;
    let positive = |n: i32| {
        u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            S3Error::InvalidArgument(
                "Default retention period must be a positive integer value".into(),
            )
        })
    };
    let period = match (d.days, d.years) {
        (Some(days), None) => Period::Days(positive(days)?),
        (None, Some(years)) => Period::Years(positive(years)?),
        _ => {
            return Err(S3Error::MalformedXml(
                "a default retention has either Days or Years".into(),
            ));
        }
    };
    Ok((mode, period))
}

impl<E: Env> S3<E> {
    /// The lock a write's x-amz-object-lock-* headers give its new version, checked:
    /// the bucket must have object lock (read locally where it shows; a write without
    /// lock headers reads nothing here).
    pub(crate) async fn lock_for_write(
        &self,
        bucket: &str,
        args: &LockArgs,
    ) -> Result<Option<VersionLock>, S3Error> {
        if *args == LockArgs::default() {
            return Ok(None);
        }
        let lock = VersionLock {
            retention: retention(args.mode.as_deref(), args.retain_until_ms, self.now_ms())?,
            legal_hold: args.legal_hold.as_deref().map(hold).transpose()? == Some(true),
        };
        // A bucket's lock is never removed: the local replica showing it is enough, and
        // only where it does not (not applied here yet) does a ReadIndex decide.
        let locked = |r: &MetaReader| lock::config(r, bucket).map(|c| c.is_some());
        if let Ok(r) = self.raft.reader()
            && locked(&r).map_err(internal)?
        {
            return Ok(Some(lock));
        }
        let r = self.reader().await?;
        self.bucket_must_exist(&r, bucket).await?;
        if !locked(&r).map_err(internal)? {
            return Err(missing_lock());
        }
        Ok(Some(lock))
    }

    /// The version a lock request names, in a bucket that must have object lock.
    async fn locked_version(
        &self,
        r: &MetaReader,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<u64, S3Error> {
        self.bucket_must_exist(r, bucket).await?;
        if lock::config(r, bucket).map_err(internal)?.is_none() {
            return Err(missing_lock());
        }
        Ok(self.resolve(r, bucket, key, version_id).await?.version)
    }

    /// Proposes a change to the lock of `key`'s version (the one the request named, or
    /// whichever is current).
    async fn change_lock(
        &self,
        (bucket, key): (&str, &str),
        version_id: Option<&str>,
        change: LockChange,
    ) -> Result<Response, S3Error> {
        let r = self.reader().await?;
        let version = self.locked_version(&r, bucket, key, version_id).await?;
        drop(r);
        let command = CommandV1::ChangeLock {
            bucket: bucket.into(),
            key: key.into(),
            version: version_id.map(|_| version),
            change,
            now_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::Done => Ok(Response::Done),
            Applied::InvalidBucketState => Err(missing_lock()),
            other => Err(applied_error(other)),
        }
    }

    pub(crate) async fn object_lock(
        &self,
        bucket: &str,
        request: LockRequest,
    ) -> Result<Response, S3Error> {
        match request {
            LockRequest::GetConfiguration => {
                let r = self.reader().await?;
                self.bucket_must_exist(&r, bucket).await?;
                let config = lock::config(&r, bucket).map_err(internal)?;
                Ok(Response::LockConfig(
                    config.ok_or(S3Error::NoLockConfiguration)?,
                ))
            }
            LockRequest::PutConfiguration { enabled, default } => {
                if enabled.as_deref() != Some("Enabled") {
                    return Err(S3Error::MalformedXml(
                        "ObjectLockEnabled must be Enabled".into(),
                    ));
                }
                let config = LockConfig {
                    default: default.as_ref().map(default_retention).transpose()?,
                };
                let command = CommandV1::PutSetting {
                    bucket: bucket.into(),
                    name: LOCK_CONFIG.into(),
                    setting: Setting::LockConfig(config),
                };
                match self.propose(command).await? {
                    Applied::Done => Ok(Response::Done),
                    Applied::InvalidBucketState => Err(S3Error::InvalidBucketState(
                        "Versioning must be 'Enabled' on the bucket to apply a Object Lock \
                         configuration"
                            .into(),
                    )),
                    other => Err(applied_error(other)),
                }
            }
            LockRequest::GetRetention { key, version_id } => {
                let r = self.reader().await?;
                let version = self
                    .locked_version(&r, bucket, &key, version_id.as_deref())
                    .await?;
                let lock = lock::of(&r, bucket, version).map_err(internal)?;
                let retention = lock
                    .retention
                    .ok_or(S3Error::NoSuchObjectLockConfiguration)?;
                Ok(Response::Retention(retention))
            }
            LockRequest::PutRetention {
                key,
                version_id,
                mode,
                retain_until_ms,
                bypass_governance,
            } => {
                let retention = retention(mode.as_deref(), retain_until_ms, self.now_ms())?;
                let change = LockChange::Retention {
                    retention,
                    bypass: bypass_governance,
                };
                self.change_lock((bucket, &key), version_id.as_deref(), change)
                    .await
            }
            LockRequest::GetLegalHold { key, version_id } => {
                let r = self.reader().await?;
                let version = self
                    .locked_version(&r, bucket, &key, version_id.as_deref())
                    .await?;
                let row = r
                    .setting(bucket, &lock::version_lock(version))
                    .map_err(internal)?;
                match row {
                    Some(Setting::Lock(l)) => Ok(Response::LegalHold(l.legal_hold)),
                    _ => Err(S3Error::NoSuchObjectLockConfiguration),
                }
            }
            LockRequest::PutLegalHold {
                key,
                version_id,
                status,
            } => {
                let on = hold(status.as_deref().unwrap_or_default())
                    .map_err(|e| S3Error::MalformedXml(e.message()))?;
                let change = LockChange::LegalHold(on);
                self.change_lock((bucket, &key), version_id.as_deref(), change)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_needs_both_parts_a_known_mode_and_a_future_date() {
        assert_eq!(retention(None, None, 5), Ok(None));
        let r = retention(Some("COMPLIANCE"), Some(6), 5).unwrap().unwrap();
        assert_eq!((r.mode, r.until_ms), (LockMode::Compliance, 6));
        for (m, until) in [
            (Some("GOVERNANCE"), None),
            (None, Some(6)),
            (Some("governance"), Some(6)),
            (Some("GOVERNANCE"), Some(5)),
            (Some("GOVERNANCE"), Some(-1)),
        ] {
            let e = retention(m, until, 5).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{m:?} {until:?}");
        }
    }

    #[test]
    fn a_default_retention_has_days_or_years_and_they_are_positive() {
        let d = |mode: &str, days, years| DefaultRetentionArgs {
            mode: Some(mode.into()),
            days,
            years,
        };
        assert_eq!(
            default_retention(&d("GOVERNANCE", Some(3), None)),
            Ok((LockMode::Governance, Period::Days(3)))
        );
        assert_eq!(
            default_retention(&d("COMPLIANCE", None, Some(1))),
            Ok((LockMode::Compliance, Period::Years(1)))
        );
        let code = |a: &DefaultRetentionArgs| default_retention(a).unwrap_err().code();
        assert_eq!(code(&d("GOVERNANCE", Some(1), Some(1))), "MalformedXML");
        assert_eq!(code(&d("GOVERNANCE", None, None)), "MalformedXML");
        assert_eq!(code(&d("GOVERNANCE", Some(0), None)), "InvalidArgument");
        assert_eq!(code(&d("FOREVER", Some(1), None)), "MalformedXML");
        assert_eq!(hold("ON"), Ok(true));
        assert_eq!(hold("on").unwrap_err().code(), "InvalidArgument");
    }
}
