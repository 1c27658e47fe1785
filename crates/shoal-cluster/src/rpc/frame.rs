//! Framing: encoding a message into a frame, reading one frame, and the batching writer
//! loop shared by clients and servers.

use std::io;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;

use super::RpcError;

/// Bytes before the payload: the `u32` length and the `u64` request id.
pub(crate) const HEADER: usize = 12;

/// Frames queued up to this many bytes are written with one `write`; a frame at least
/// this large is written on its own without being copied.
const BATCH: usize = 64 * 1024;

/// Capacity of the read buffer in front of a socket's read half.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

/// Encodes `msg` as a complete frame with request id `id`.
///
/// Fails with [`RpcError::TooLarge`] if the frame's length (id + payload) exceeds
/// `max_frame` (or `u32::MAX`).
pub(crate) fn encode<T: Serialize>(
    msg: &T,
    id: u64,
    max_frame: usize,
) -> Result<Vec<u8>, RpcError> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&[0; HEADER]);
    let mut buf = postcard::to_extend(msg, buf).map_err(RpcError::Encode)?;
    let len = buf.len() - 4;
    if len > max_frame || u32::try_from(len).is_err() {
        return Err(RpcError::TooLarge(len));
    }
    buf[0..4].copy_from_slice(&(len as u32).to_be_bytes());
    set_id(&mut buf, id);
    Ok(buf)
}

/// Overwrites the request id of an encoded frame.
pub(crate) fn set_id(frame: &mut [u8], id: u64) {
    frame[4..HEADER].copy_from_slice(&id.to_be_bytes());
}

/// Reads one frame: `Ok(None)` on a clean end of stream before a frame starts, the
/// request id and payload otherwise.
///
/// A length above `max_frame` or below 8 is an `InvalidData` error (the caller closes the
/// connection). The payload buffer grows as bytes arrive, so a peer announcing a large
/// frame without sending it costs no memory.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame: usize,
) -> io::Result<Option<(u64, Vec<u8>)>> {
    let len = match r.read_u32().await {
        Ok(len) => len as usize,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > max_frame {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("incoming frame of {len} bytes exceeds the maximum of {max_frame}"),
        ));
    }
    let Some(payload_len) = len.checked_sub(8) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("incoming frame of {len} bytes is shorter than its request id"),
        ));
    };
    let id = r.read_u64().await?;
    let mut payload = Vec::with_capacity(payload_len.min(BATCH));
    (&mut *r)
        .take(payload_len as u64)
        .read_to_end(&mut payload)
        .await?;
    if payload.len() != payload_len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((id, payload)))
}

/// An item of a writer queue.
pub(crate) trait OutFrame: Send + 'static {
    /// The frame's bytes, or `None` to close the connection.
    fn bytes(&self) -> Option<&[u8]>;
}

impl OutFrame for Vec<u8> {
    fn bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

/// Writes queued frames to `w` until the queue closes or a write fails: waits for one,
/// takes every frame already queued behind it into one buffer, writes it, repeats.
///
/// Returns `Ok` when the queue closes, an error when a write fails or a queued item asks
/// to close the connection.
pub(crate) async fn write_frames<W, T>(w: &mut W, rx: &mut UnboundedReceiver<T>) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: OutFrame,
{
    let mut buf = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            let Some(bytes) = item.bytes() else {
                return Err(io::Error::other("connection closed by its owner"));
            };
            if bytes.len() >= BATCH {
                if !buf.is_empty() {
                    w.write_all(&buf).await?;
                    buf.clear();
                }
                w.write_all(bytes).await?;
            } else {
                if buf.len() + bytes.len() > BATCH {
                    w.write_all(&buf).await?;
                    buf.clear();
                }
                buf.extend_from_slice(bytes);
            }
            drop(item);
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            w.write_all(&buf).await?;
            buf.clear();
        }
    }
    Ok(())
}

/// Aborts a task when dropped, so a task's helper dies with it.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
