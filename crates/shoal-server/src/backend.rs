//! Where item commands are executed: the [`Backend`] trait and the single-node
//! [`LocalBackend`] over a [`shoal_store::Store`]. A cluster backend implements the same
//! trait by forwarding to the owners of each key.

use std::future::Future;
use std::sync::Arc;

use shoal_command::{Command, Get, Outcome};
use shoal_store::{Store, StoreStats};

/// Executes item commands (get, store, delete, arith, touch, flush, me). Server-level
/// commands (stats, version, verbosity, quit, shutdown, noop) never reach a backend.
pub trait Backend: Send + Sync + 'static {
    /// Runs one item command.
    fn execute(&self, command: Command) -> impl Future<Output = Outcome> + Send;

    /// The storage counters behind this backend.
    fn store_stats(&self) -> StoreStats;
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
        let store = &self.store;
        match command {
            Command::Get(Get { keys, options }) => {
                Outcome::Values(keys.iter().map(|key| store.get(key, &options)).collect())
            }
            Command::Store(cmd) => match store.store(&cmd) {
                Ok(outcome) => Outcome::Stored(outcome),
                Err(error) => Outcome::Error(error),
            },
            Command::Delete(cmd) => Outcome::Deleted(store.delete(&cmd)),
            Command::Arith(cmd) => match store.arith(&cmd) {
                Ok(outcome) => Outcome::Arith(outcome),
                Err(error) => Outcome::Error(error),
            },
            Command::Touch(cmd) => Outcome::Touched(store.touch(&cmd.key, cmd.exptime)),
            Command::FlushAll(cmd) => {
                store.flush_all(cmd.delay);
                Outcome::Ok
            }
            Command::MetaDebug(key) => Outcome::Debug(store.peek(&key)),
            Command::Stats(_)
            | Command::Version
            | Command::Verbosity(_)
            | Command::NoOp
            | Command::Quit
            | Command::Shutdown(_) => Outcome::UnknownCommand,
        }
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
