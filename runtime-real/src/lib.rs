//! The engine's Env on tokio: real files, TCP, the OS clock and OS randomness.
//! The `hamster` binary lives here too (src/main.rs).
//!
//! Architecture Invariant: this crate is the production side of the Env seam; it adds
//! no node logic of its own. Anything it does beyond moving bytes (framing, limits) is
//! about transport, not about what the bytes mean.

pub mod admin;
pub mod admin_api;
pub mod admin_socket;
pub mod bench;
pub mod breakdown;
pub mod cluster;
pub mod disk;
pub mod key_cli;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod s3_http;
pub mod server;
pub mod sigv4;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::env::{Clock, Env, NodeId, SeededRng};
use rand::RngCore;

pub use disk::RealDisk;
pub use net::{NetLimits, RealNet, Transport};

/// The OS clock: monotonic time from `Instant`, timestamps from `SystemTime`.
#[derive(Clone, Copy)]
pub struct RealClock {
    origin: Instant,
}

impl Default for RealClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
    fn wall_ms(&self) -> u64 {
        wall_ms()
    }
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

struct Inner {
    node: NodeId,
    clock: RealClock,
    disk: RealDisk,
    net: RealNet,
    rng: SeededRng,
}

/// One production node's Env. Cheap to clone.
#[derive(Clone)]
pub struct RealEnv(Arc<Inner>);

impl RealEnv {
    /// A node's Env over `disk` and `net`; its Rng is seeded from the OS.
    pub fn new(node: NodeId, disk: RealDisk, net: RealNet) -> Self {
        Self(Arc::new(Inner {
            node,
            clock: RealClock::default(),
            disk,
            net,
            rng: SeededRng::from_seed({
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                seed
            }),
        }))
    }
}

impl Env for RealEnv {
    type Clock = RealClock;
    type Disk = RealDisk;
    type Net = RealNet;
    type Rng = SeededRng;
    fn node_id(&self) -> NodeId {
        self.0.node
    }
    fn clock(&self) -> &RealClock {
        &self.0.clock
    }
    fn disk(&self) -> &RealDisk {
        &self.0.disk
    }
    fn net(&self) -> &RealNet {
        &self.0.net
    }
    fn rng(&self) -> &SeededRng {
        &self.0.rng
    }
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(tokio::spawn(task));
    }
}
