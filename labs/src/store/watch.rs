//! The client's end of a watch.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::Event;

// ANCHOR: watch_type
/// A stream of [`Event`]s under one prefix, from [`Store::watch`](super::Store::watch).
///
/// It is the receiving end of a channel the store feeds while holding its
/// lock, so events arrive in exactly the order the writes happened. Read it
/// with [`Watch::recv`] or as a [`futures::Stream`] (what the API server's
/// streaming response wants). Dropping it ends the watch; the store notices
/// on its next write and forgets the watcher. The stream ends (`None`) only
/// when the store itself is gone.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::UnboundedReceiver<Event>,
}
// ANCHOR_END: watch_type

impl Watch {
    pub(super) fn new(rx: mpsc::UnboundedReceiver<Event>) -> Watch {
        Watch { rx }
    }

    /// The next event, waiting for one if none is pending. `None` once the
    /// store has been dropped and every pending event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is already pending, without waiting.
    ///
    /// Useful outside async code and in tests: a write delivers its event
    /// before it returns, so after `store.update(..)` the event is already
    /// here.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for Watch {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        // `Watch` is `Unpin` (a channel receiver is), so we can reach the
        // receiver through the pin safely.
        self.get_mut().rx.poll_recv(cx)
    }
}
