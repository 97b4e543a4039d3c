//! Clocks under simulation: [`SimClock`] is madsim's virtual time, the harness's clock;
//! [`NodeClock`] is one node's view of it, running at the node's own rate.
//!
//! Real clocks drift: a node's monotonic clock may run a little faster or slower than
//! another's, and anything timed across nodes (a leader's read lease against its voters'
//! election timers) must allow for it. A node clock's rate is set in parts per million
//! of true time ([`TRUE_RATE_PPM`] by default); its `now` advances at that rate and a
//! `sleep(d)` ends once `d` has passed on it. At the true rate both are exactly madsim's,
//! so runs without drift trace as before. The rate survives the node's restarts (it is
//! the machine's oscillator, not the process's). The network's call timeouts and the
//! disk's delays run in true time.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::env::Clock;

/// Wall-clock origin of every simulated run: 2026-01-01T00:00:00Z, so timestamps are
/// plausible and identical across runs (ms).
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;
/// A clock that keeps true time.
pub const TRUE_RATE_PPM: u64 = 1_000_000;

/// Virtual time from madsim.
#[derive(Clone, Copy, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> Duration {
        madsim::time::Instant::now().duration_since(sim_origin())
    }
    fn wall_ms(&self) -> u64 {
        SIM_EPOCH_MS + self.now().as_millis() as u64
    }
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        madsim::time::sleep(duration)
    }
}

/// madsim's virtual clock starts at a fixed instant per runtime; measuring from the
/// runtime's own start keeps `now` small and identical across runs.
fn sim_origin() -> madsim::time::Instant {
    let handle = madsim::time::TimeHandle::current();
    handle.now_instant() - handle.elapsed()
}

/// The rate of one node's clock since the true instant `true_at`, when it read
/// `local_at`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    ppm: u64,
    true_at: Duration,
    local_at: Duration,
}

impl Rate {
    fn local(&self, true_now: Duration) -> Duration {
        let elapsed = true_now.saturating_sub(self.true_at).as_nanos();
        self.local_at + nanos(elapsed * u128::from(self.ppm) / u128::from(TRUE_RATE_PPM))
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).expect("simulated time fits u64 nanoseconds"))
}

/// One node's clock (shared by its incarnations).
#[derive(Debug, Clone)]
pub struct NodeClock(Arc<Mutex<Rate>>);

impl Default for NodeClock {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Rate {
            ppm: TRUE_RATE_PPM,
            true_at: Duration::ZERO,
            local_at: Duration::ZERO,
        })))
    }
}

impl NodeClock {
    /// From now on the clock runs at `ppm` millionths of true time (it never jumps).
    pub fn set_rate_ppm(&self, ppm: u64) {
        assert!(ppm > 0, "a clock that stands still");
        let true_now = SimClock.now();
        let mut rate = self.0.lock().expect("clock");
        *rate = Rate {
            ppm,
            true_at: true_now,
            local_at: rate.local(true_now),
        };
    }

    pub fn rate_ppm(&self) -> u64 {
        self.0.lock().expect("clock").ppm
    }
}

impl Clock for NodeClock {
    fn now(&self) -> Duration {
        self.0.lock().expect("clock").local(SimClock.now())
    }
    fn wall_ms(&self) -> u64 {
        SIM_EPOCH_MS + self.now().as_millis() as u64
    }
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        // True time for `duration` on this clock, rounded up (at the current rate).
        let ppm = u128::from(self.rate_ppm());
        let scaled = (duration.as_nanos() * u128::from(TRUE_RATE_PPM)).div_ceil(ppm);
        madsim::time::sleep(nanos(scaled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_reads_ahead_and_a_rate_change_does_not_jump() {
        let r = Rate {
            ppm: TRUE_RATE_PPM,
            true_at: Duration::ZERO,
            local_at: Duration::ZERO,
        };
        assert_eq!(
            r.local(Duration::from_millis(1234)),
            Duration::from_millis(1234)
        );
        let fast = Rate {
            ppm: 1_100_000,
            ..r
        };
        assert_eq!(fast.local(Duration::from_secs(10)), Duration::from_secs(11));
        // Rebased at true 10 s (local 11 s), then slow: local time goes on from 11 s.
        let slow = Rate {
            ppm: 500_000,
            true_at: Duration::from_secs(10),
            local_at: fast.local(Duration::from_secs(10)),
        };
        assert_eq!(slow.local(Duration::from_secs(10)), Duration::from_secs(11));
        assert_eq!(slow.local(Duration::from_secs(12)), Duration::from_secs(12));
    }
}
