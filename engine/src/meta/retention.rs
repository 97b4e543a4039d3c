//! Object lock's values and their rules, with no table behind them (`meta::lock`
//! applies them): modes, retentions, a bucket's lock configuration, a version's lock,
//! and when a lock lets a version go or its retention change.

use serde::{Deserialize, Serialize};

/// The row of the lock of the object version written at log index `version`.
pub fn version_lock(version: u64) -> String {
    format!("o/l/{version:020}")
}

/// The row of the lock an upload in progress gives the version it completes into.
pub fn upload_lock(upload_id: &str) -> String {
    format!("o/ul/{upload_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Removable before its date by a request that bypasses governance retention.
    Governance,
    /// Removable by no one before its date.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<LockMode> {
        [LockMode::Governance, LockMode::Compliance]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A version's retention: kept in `mode` until `until_ms` (wall-clock milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    pub until_ms: u64,
}

/// A default retention's period, as it was put (S3 answers it back as given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    Days(u32),
    Years(u32),
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Period {
    pub fn ms(self) -> u64 {
        match self {
            Period::Days(d) => u64::from(d) * DAY_MS,
            Period::Years(y) => u64::from(y) * 365 * DAY_MS,
        }
    }
}

/// A bucket's object lock configuration: lock is enabled once it is set; a new version
/// that asks for no retention gets the default one, if there is one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConfig {
    pub default: Option<(LockMode, Period)>,
}

/// A version's lock (a row exists only for a version that has one or had one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLock {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
}

impl VersionLock {
    /// Whether a command at `now_ms` may remove the version: not under legal hold, and
    /// not retained past `now_ms` (a GOVERNANCE retention yields to `bypass`).
    pub fn allows_removal(&self, now_ms: u64, bypass: bool) -> bool {
        !self.legal_hold
            && match self.retention {
                Some(r) if r.until_ms > now_ms => bypass && r.mode == LockMode::Governance,
                _ => true,
            }
    }

    /// Whether a command at `now_ms` may replace the retention with `new` (`None`:
    /// remove it).
    pub fn allows_retention(&self, new: Option<Retention>, now_ms: u64, bypass: bool) -> bool {
        let Some(old) = self.retention.filter(|r| r.until_ms > now_ms) else {
            return true;
        };
        let longer = new.is_some_and(|n| n.until_ms >= old.until_ms);
        match old.mode {
            LockMode::Compliance => longer && new.is_some_and(|n| n.mode == LockMode::Compliance),
            LockMode::Governance => bypass || longer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockMode::{Compliance, Governance};

    fn lock(mode: LockMode, until_ms: u64, legal_hold: bool) -> VersionLock {
        VersionLock {
            retention: Some(Retention { mode, until_ms }),
            legal_hold,
        }
    }

    #[test]
    fn removal_waits_for_the_date_and_the_hold_and_only_governance_yields() {
        let g = lock(Governance, 100, false);
        assert!(!g.allows_removal(99, false));
        assert!(g.allows_removal(99, true));
        assert!(g.allows_removal(100, false));
        let c = lock(Compliance, 100, false);
        assert!(!c.allows_removal(99, true));
        assert!(c.allows_removal(100, false));
        let held = VersionLock {
            retention: None,
            legal_hold: true,
        };
        assert!(!held.allows_removal(u64::MAX, true));
        assert!(VersionLock::default().allows_removal(0, false));
    }

    #[test]
    fn retention_only_lengthens_unless_governance_is_bypassed() {
        let r = |mode, until_ms| Some(Retention { mode, until_ms });
        let g = lock(Governance, 100, false);
        assert!(g.allows_retention(r(Governance, 200), 50, false));
        assert!(g.allows_retention(r(Compliance, 100), 50, false));
        assert!(!g.allows_retention(r(Governance, 99), 50, false));
        assert!(!g.allows_retention(None, 50, false));
        assert!(g.allows_retention(None, 50, true));
        // Expired: anything goes.
        assert!(g.allows_retention(None, 100, false));
        let c = lock(Compliance, 100, false);
        assert!(c.allows_retention(r(Compliance, 100), 50, false));
        assert!(!c.allows_retention(r(Governance, 200), 50, true));
        assert!(!c.allows_retention(r(Compliance, 99), 50, true));
        assert!(!c.allows_retention(None, 50, true));
        assert!(c.allows_retention(None, 101, false));
    }
}
