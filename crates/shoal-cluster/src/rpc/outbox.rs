//! [`Outbox`]: the sending side of one connection, shared by every task that sends on it.
//!
//! Frames are appended to one buffer under a lock, so they go out in the order they were
//! pushed. Whoever finds the outbox idle when it [`flush`](Outbox::flush)es writes
//! everything queued at once with non-blocking writes, on its own thread: a frame costs
//! no task wake-up, and frames pushed while a write is under way go out together with
//! the next one. [`schedule`](Outbox::schedule) instead has the writer task flush at the
//! end of the scheduler's round, so that the frames many tasks push in that round share
//! one write. When the socket cannot take everything, the writer task
//! ([`Outbox::run_writer`]) takes over and waits for the socket to drain.

use std::io;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::RpcError;

/// A buffer grown beyond this (by large frames) is not kept for reuse.
const KEEP_CAPACITY: usize = 256 * 1024;

/// The sending side of one connection.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The socket, once connected: until then frames only queue.
    socket: OnceLock<OwnedWriteHalf>,
    /// Wakes the writer task: a write stalled, or the outbox closed.
    wake: Notify,
    /// Wakes everyone waiting in [`closed`](Outbox::closed).
    on_close: Notify,
    /// Where the in-flight slots of written frames go back to (server side).
    slots: Option<Arc<Semaphore>>,
}

/// The mutable part of an [`Outbox`].
struct State {
    /// Frames pushed and not yet taken by a writer.
    queued: Vec<u8>,
    /// In-flight slots held by the frames in `queued`.
    queued_slots: usize,
    /// An emptied buffer to swap in for `queued`, so buffers are reused.
    spare: Vec<u8>,
    /// A writer (a caller of `flush`, or the writer task) owns the socket's write side:
    /// others only append.
    busy: bool,
    /// What the socket could not take at once, for the writer task.
    stalled: Option<Taken>,
    /// The writer task is to flush at the end of its worker's current round of tasks.
    scheduled: bool,
    /// Why the outbox closed: nothing more is written.
    closed: Option<io::ErrorKind>,
}

/// Bytes taken from the queue by a writer, `written` of them already written.
struct Taken {
    bytes: Vec<u8>,
    written: usize,
    slots: usize,
}

impl Outbox {
    /// An outbox without a socket yet; `slots` receives the in-flight slots of the frames
    /// once they are written.
    pub(crate) fn new(slots: Option<Arc<Semaphore>>) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                queued: Vec::new(),
                queued_slots: 0,
                spare: Vec::new(),
                busy: false,
                stalled: None,
                scheduled: false,
                closed: None,
            }),
            socket: OnceLock::new(),
            wake: Notify::new(),
            on_close: Notify::new(),
            slots,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives the outbox its socket and writes what queued meanwhile.
    pub(crate) fn attach(&self, socket: OwnedWriteHalf) {
        // Only the connection task attaches, once.
        let _ = self.socket.set(socket);
        self.flush();
    }

    /// Appends one frame: `encode` appends it to the buffer it is given (and leaves the
    /// buffer as it was on failure). `slot`, if any, is held until the frame is written.
    /// Nothing is written yet: see [`flush`](Self::flush).
    ///
    /// Fails with [`RpcError::Closed`] if the outbox is closed, or with `encode`'s error.
    pub(crate) fn push(
        &self,
        slot: Option<OwnedSemaphorePermit>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), RpcError>,
    ) -> Result<(), RpcError> {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Err(RpcError::Closed);
        }
        encode(&mut state.queued)?;
        if let Some(slot) = slot {
            // Given back to the semaphore by `release` once written.
            slot.forget();
            state.queued_slots += 1;
        }
        Ok(())
    }

    /// Writes what is queued now, on this thread, unless someone else is writing (they
    /// write it) or there is no socket yet. If the socket cannot take it all, the writer
    /// task finishes the job.
    pub(crate) fn flush(&self) {
        let Some(socket) = self.socket.get() else {
            return;
        };
        let mut state = self.lock();
        if state.busy || state.queued.is_empty() || state.closed.is_some() {
            return;
        }
        state.busy = true;
        loop {
            let mut taken = take(&mut state);
            drop(state);
            let result = write_now(socket, &mut taken);
            state = self.lock();
            match result {
                Ok(true) => {
                    self.release(&mut state, taken);
                    if state.queued.is_empty() || state.closed.is_some() {
                        state.busy = false;
                        return;
                    }
                }
                Ok(false) => {
                    // Still busy: the writer task owns the write side until it drains.
                    state.stalled = Some(taken);
                    drop(state);
                    self.wake.notify_one();
                    return;
                }
                Err(e) => {
                    drop(state);
                    self.close(e.kind());
                    return;
                }
            }
        }
    }

    /// Has the writer task flush once the tasks ready to run on this thread have run, so
    /// that the frames they push go out in one write.
    pub(crate) fn schedule(&self) {
        let mut state = self.lock();
        if state.busy || state.scheduled || state.closed.is_some() || self.socket.get().is_none() {
            return;
        }
        state.scheduled = true;
        drop(state);
        self.wake.notify_one();
    }

    /// Closes the outbox: nothing more is pushed or written, the writer task ends with an
    /// error of kind `why`, and [`closed`](Self::closed) resolves.
    pub(crate) fn close(&self, why: io::ErrorKind) {
        self.lock().closed.get_or_insert(why);
        self.wake.notify_one();
        self.on_close.notify_waiters();
    }

    /// Resolves once the outbox is closed.
    pub(crate) async fn closed(&self) {
        loop {
            // Registered before the check, so a close in between is not missed.
            let notified = self.on_close.notified();
            if self.lock().closed.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// The writer task: waits for writes the socket could not take at once and finishes
    /// them, then writes whatever queued meanwhile, until the outbox closes (an error).
    pub(crate) async fn run_writer(self: Arc<Self>) -> io::Result<()> {
        loop {
            self.wake.notified().await;
            if self.lock().scheduled {
                tokio::task::yield_now().await;
                self.lock().scheduled = false;
                self.flush();
            }
            let mut next = self.stalled()?;
            while let Some(mut taken) = next {
                let socket = self.socket.get().expect("a write stalled on a socket");
                if let Err(e) = write_all(socket, &mut taken).await {
                    self.close(e.kind());
                    return Err(e);
                }
                next = self.written(taken)?;
            }
        }
    }

    /// The stalled write, if any; an error if the outbox is closed.
    fn stalled(&self) -> io::Result<Option<Taken>> {
        let mut state = self.lock();
        if let Some(why) = state.closed {
            return Err(io::Error::new(why, "connection closed"));
        }
        Ok(state.stalled.take())
    }

    /// The writer task wrote all of `taken`: what queued meanwhile, or `None` (and the
    /// outbox idle again) if nothing did; an error if the outbox is closed.
    fn written(&self, taken: Taken) -> io::Result<Option<Taken>> {
        let mut state = self.lock();
        self.release(&mut state, taken);
        if let Some(why) = state.closed {
            return Err(io::Error::new(why, "connection closed"));
        }
        if state.queued.is_empty() {
            state.busy = false;
            return Ok(None);
        }
        Ok(Some(take(&mut state)))
    }

    /// Done with `taken`, all written: gives back its slots, keeps its buffer for reuse.
    fn release(&self, state: &mut State, taken: Taken) {
        if let Some(slots) = &self.slots {
            if taken.slots > 0 {
                slots.add_permits(taken.slots);
            }
        }
        let mut bytes = taken.bytes;
        if bytes.capacity() <= KEEP_CAPACITY {
            bytes.clear();
            state.spare = bytes;
        }
    }
}

/// Closes an outbox when dropped: a connection task that ends, even aborted, stops the
/// handler futures still writing to its outbox (which keep the socket open otherwise).
pub(crate) struct CloseOnDrop(pub(crate) Arc<Outbox>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(io::ErrorKind::ConnectionAborted);
    }
}

/// Takes everything queued, leaving the spare buffer in its place.
fn take(state: &mut State) -> Taken {
    let spare = mem::take(&mut state.spare);
    Taken {
        bytes: mem::replace(&mut state.queued, spare),
        written: 0,
        slots: mem::take(&mut state.queued_slots),
    }
}

/// Writes as much of `taken` as the socket takes without waiting: `Ok(true)` once all is
/// written, `Ok(false)` if the socket is full.
fn write_now(socket: &OwnedWriteHalf, taken: &mut Taken) -> io::Result<bool> {
    while taken.written < taken.bytes.len() {
        match socket.try_write(&taken.bytes[taken.written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => taken.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes the rest of `taken`, waiting for the socket as needed.
async fn write_all(socket: &OwnedWriteHalf, taken: &mut Taken) -> io::Result<()> {
    while !write_now(socket, taken)? {
        socket.writable().await?;
    }
    Ok(())
}
