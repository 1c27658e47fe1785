//! Framing: encoding a message as a frame at the end of a buffer, and [`FrameReader`],
//! which splits the incoming byte stream into frames.

use std::io;
use std::ops::Range;

use postcard::ser_flavors::Flavor;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::RpcError;

/// Bytes before the payload: the `u32` length and the `u64` request id.
pub(crate) const HEADER: usize = 12;

/// How many bytes a read asks for at least; also the read buffer's resting capacity.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

/// A read buffer grown beyond this (by a large frame) is shrunk back once emptied.
const SHRINK_ABOVE: usize = 4 * READ_BUFFER;

/// A postcard output that appends to a `Vec` without taking ownership of it.
struct Append<'a>(&'a mut Vec<u8>);

impl Flavor for Append<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `msg` to `buf` as a complete frame with request id `id`.
///
/// Fails with [`RpcError::TooLarge`] if the frame's length (id + payload) exceeds
/// `max_frame` (or `u32::MAX`), or [`RpcError::Encode`]; `buf` is then left as it was.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    msg: &T,
    id: u64,
    max_frame: usize,
) -> Result<(), RpcError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&id.to_be_bytes());
    if let Err(e) = postcard::serialize_with_flavor(msg, Append(buf)) {
        buf.truncate(start);
        return Err(RpcError::Encode(e));
    }
    let len = buf.len() - start - 4;
    match u32::try_from(len) {
        Ok(len32) if len <= max_frame => {
            buf[start..start + 4].copy_from_slice(&len32.to_be_bytes());
            Ok(())
        }
        _ => {
            buf.truncate(start);
            Err(RpcError::TooLarge(len))
        }
    }
}

/// Splits a byte stream into frames: reads as much as the socket has (so one read often
/// brings many frames) and hands out the complete frames buffered.
///
/// A length above `max_frame` or below 8 is an `InvalidData` error (the caller closes the
/// connection), reported as soon as the length arrives. The buffer grows only as bytes
/// arrive, so a peer announcing a large frame without sending it costs no memory.
pub(crate) struct FrameReader<R> {
    read: R,
    buf: Vec<u8>,
    /// Bytes of `buf` before this are consumed.
    start: usize,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of frames of at most `max_frame` bytes (as the length field counts).
    pub(crate) fn new(read: R, max_frame: usize) -> Self {
        FrameReader {
            read,
            buf: Vec::with_capacity(READ_BUFFER),
            start: 0,
            max_frame,
        }
    }

    /// The next frame already buffered, as its request id and the position of its payload
    /// (see [`payload`](Self::payload)); `None` if more bytes are needed.
    pub(crate) fn next_buffered(&mut self) -> io::Result<Option<(u64, Range<usize>)>> {
        let avail = &self.buf[self.start..];
        let Some(len) = avail.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > self.max_frame {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "incoming frame of {len} bytes exceeds the maximum of {}",
                    self.max_frame
                ),
            ));
        }
        if len < 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("incoming frame of {len} bytes is shorter than its request id"),
            ));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let mut id = [0; 8];
        id.copy_from_slice(&avail[4..HEADER]);
        let payload = self.start + HEADER..self.start + 4 + len;
        self.start = payload.end;
        Ok(Some((u64::from_be_bytes(id), payload)))
    }

    /// The payload at `range`, as returned by the last [`next_buffered`](Self::next_buffered).
    pub(crate) fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads more bytes (waiting for some): `Ok(false)` on a clean end of stream (between
    /// frames), an `UnexpectedEof` error if the stream ends inside a frame.
    pub(crate) async fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf.shrink_to(READ_BUFFER);
            }
        } else if self.start > 0 && self.buf.capacity() - self.buf.len() < READ_BUFFER {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_BUFFER / 2 {
            self.buf.reserve(READ_BUFFER);
        }
        if self.read.read_buf(&mut self.buf).await? > 0 {
            return Ok(true);
        }
        if self.start == self.buf.len() {
            Ok(false)
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }
}

/// Aborts a task when dropped, so a task's helper dies with it.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
