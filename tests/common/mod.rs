//! Shared helpers for Shoal's whole-binary integration tests: starting Shoal and real
//! memcached nodes on free loopback ports, a multi-process Shoal cluster with fault
//! injection (`cluster`), a small text-protocol client, and checks that the external
//! tools the tests need (memcached, memccapable, python3 + pymemcache) exist.
//! `netns` runs nodes in Linux network namespaces, to cut the network between them;
//! `model` keeps what clients were told and checks it key by key.
//!
//! Every test crate includes this module but uses only part of it, hence the
//! `dead_code` / `unused_imports` allowances below.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod cluster;
pub mod memccapable;
pub mod model;
pub mod netns;
pub mod process;
pub mod tools;

pub use client::TextClient;
pub use process::{MemcachedProcess, ShoalProcess};
