//! Where item commands are executed: the [`Backend`] trait and the single-node
//! [`LocalBackend`] over a [`shoal_store::Store`]. A cluster backend implements the same
//! trait by forwarding to the owners of each key.

use std::future::Future;
use std::sync::Arc;

use shoal_command::{Command, Outcome};
use shoal_store::{Store, StoreStats};

/// Executes item commands (get, store, delete, arith, touch, flush, me). Server-level
/// commands (stats, version, verbosity, quit, shutdown, noop) never reach a backend.
pub trait Backend: Send + Sync + 'static {
    /// Runs one item command.
    fn execute(&self, command: Command) -> impl Future<Output = Outcome> + Send;

    /// The storage counters behind this backend.
    fn store_stats(&self) -> StoreStats;

    /// How many keys of a multi-get to hand over in one command. A local store answers
    /// key by key (1: the output stays bounded by one item); a cluster batches keys so it
    /// can ask each owner once for all of its keys.
    fn get_batch(&self) -> usize {
        1
    }
}

/// A backend that keeps every item in this process.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    store: Arc<Store>,
}

impl LocalBackend {
    /// A backend over `store`.
    pub fn new(store: Arc<Store>) -> LocalBackend {
        LocalBackend { store }
    }

    /// The store behind it.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Runs one item command synchronously.
    pub fn execute_now(&self, command: Command) -> Outcome {
        self.store.execute(command)
    }
}

impl Backend for LocalBackend {
    fn execute(&self, command: Command) -> impl Future<Output = Outcome> + Send {
        std::future::ready(self.execute_now(command))
    }

    fn store_stats(&self) -> StoreStats {
        self.store.stats()
    }
}
