//! One entry point from the protocol-neutral [`Command`] to the store: [`Store::execute`].
//! The single-node backend and the cluster's primaries both run item commands through it,
//! so a command means the same wherever it is executed.

use shoal_command::{Command, Get, Outcome};

use crate::Store;

impl Store {
    /// Runs one item command (get, store, delete, arith, touch, flush, me). Server-level
    /// commands (stats, version, verbosity, noop, quit, shutdown) are not the store's:
    /// they answer [`Outcome::UnknownCommand`].
    pub fn execute(&self, command: Command) -> Outcome {
        match command {
            Command::Get(Get { keys, options }) => {
                Outcome::Values(keys.iter().map(|key| self.get(key, &options)).collect())
            }
            Command::Store(cmd) => match self.store(&cmd) {
                Ok(outcome) => Outcome::Stored(outcome),
                Err(error) => Outcome::Error(error),
            },
            Command::Delete(cmd) => Outcome::Deleted(self.delete(&cmd)),
            Command::Arith(cmd) => match self.arith(&cmd) {
                Ok(outcome) => Outcome::Arith(outcome),
                Err(error) => Outcome::Error(error),
            },
            Command::Touch(cmd) => Outcome::Touched(self.touch(&cmd.key, cmd.exptime)),
            Command::FlushAll(cmd) => {
                self.flush_all(cmd.delay);
                Outcome::Ok
            }
            Command::MetaDebug(key) => Outcome::Debug(self.peek(&key)),
            Command::Stats(_)
            | Command::Version
            | Command::Verbosity(_)
            | Command::NoOp
            | Command::Quit
            | Command::Shutdown(_) => Outcome::UnknownCommand,
        }
    }
}
