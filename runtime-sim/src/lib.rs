//! The engine's Env on madsim's deterministic executor, with our own SimDisk and SimNet.
//!
//! One simulated run is a [`World`]: a seeded source of fault decisions, every node's
//! disk and the network between them, the trace hash, and counters of the faults that
//! were actually injected. Everything that happens is decided by the run seed: madsim
//! schedules tasks and advances virtual time from it, and the World draws latencies,
//! losses and crash outcomes from its own ChaCha stream. Same seed, same trace.
//!
//! A node crash ([`Cluster::crash`]) drops all the node's tasks, cuts it off the network
//! and resolves each unsynced disk write as dropped, applied or torn; unsynced creates,
//! renames and removes survive only as an ordered prefix per directory. A restart runs
//! the node's main function again over the same disk.
//!
//! Each node reads its own [`NodeClock`], which runs at the true rate unless a run sets
//! it faster or slower (clock drift).

mod clock;
mod disk;
mod net;
mod world;

pub use clock::{NodeClock, SIM_EPOCH_MS, SimClock, TRUE_RATE_PPM};
pub use disk::SimDisk;
pub use net::{NetConfig, SimNet};
pub use world::{Cluster, FaultStats, SimEnv, World};
