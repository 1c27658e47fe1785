//! `shoal-loadgen`: a small memcached text-protocol load generator used by the Shoal
//! benchmark harness where memcaslap cannot do the job: pipelining, a fixed offered rate
//! with latency percentiles, Zipf-skewed keys with cache-aside refills, a preload phase and
//! the "items held" count, and keys chosen by their owners in a Shoal cluster.
//!
//! The binary (`src/main.rs`) is a thin command line over [`run::run`] and [`held::held`];
//! the runner (`shoal-bench`) reads the JSON [`report`] types back.

pub mod conn;
pub mod held;
pub mod keys;
pub mod placed;
pub mod preload;
pub mod protocol;
pub mod report;
pub mod run;
pub mod stats;
