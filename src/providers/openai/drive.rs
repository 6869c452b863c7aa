//! Connection tasks that the reader of a response body may poll too.
//!
//! hyper's HTTP/1 client hands a response body to its reader through a one-frame slot: its
//! connection task decodes one chunk, waits until the reader has taken it, then decodes the
//! next. A stream whose events arrived in one read therefore cost a scheduler round trip per
//! event: the connection task's poll, then the reader's — for a relayed stream, actix's
//! dispatcher, which writes to the client every time the body leaves it waiting. Under load each
//! of those hops waits its turn in the worker's run queue: the load harness's stream, ten events
//! the upstream writes at once, went out as ten writes, each a turn after the last.
//!
//! With [`Spawner`] as the client's executor, every background future hyper spawns sits in a
//! [`Task`] that someone other than its own tokio task may poll. The connection's I/O is wrapped
//! in [`Tracked`], which notes the task polling it (that is the connection's) and hands a
//! [`Link`] to it to every response on the connection (`Connected::extra`). [`Driven`], the
//! response body, polls the connection once whenever its slot is empty: every chunk already
//! read is decoded and taken in one pass, and the client gets the burst in one write, as from
//! nginx. The connection is polled with its own task's waker, so what it waits on still wakes
//! the task that owns it; when it ends under the reader's poll, that task is woken to finish.
//!
//! HTTP/2 connections get no link: there each stream's body is read from the connection's
//! buffers directly, with no one-frame hand-off.

use std::cell::RefCell;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// A spawned future that a reader may poll on its task's behalf.
trait Drive: Send + Sync {
    /// Polls the future once with its task's waker; `false` when it could not be polled (done,
    /// never yet polled by its task, or being polled right now elsewhere).
    fn drive(&self) -> bool;

    /// A connection's I/O noted this task as its own: its polls need not say who they are.
    fn claimed(&self);
}

thread_local! {
    /// The task polling its future on this thread, while it does.
    static POLLING: RefCell<Option<Weak<dyn Drive>>> = const { RefCell::new(None) };
}

/// hyper's executor: spawns each future on the current tokio runtime, inside a [`Task`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Spawner;

impl<F> hyper::rt::Executor<F> for Spawner
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        let task = Arc::new(Task {
            claimed: AtomicBool::new(false),
            slot: Mutex::new(Slot {
                future: Some(Box::pin(future)),
                waker: None,
            }),
        });
        tokio::spawn(Running(task));
    }
}

struct Task<F> {
    /// Set once a connection's I/O noted this task.
    claimed: AtomicBool,
    slot: Mutex<Slot<F>>,
}

struct Slot<F> {
    /// `None` once it has completed.
    future: Option<Pin<Box<F>>>,
    /// The waker of the tokio task that owns the future, as of its last poll.
    waker: Option<Waker>,
}

impl<F> Drive for Task<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    fn drive(&self) -> bool {
        let Ok(mut slot) = self.slot.try_lock() else {
            return false;
        };
        let Slot {
            future: Some(future),
            waker: Some(waker),
        } = &mut *slot
        else {
            return false;
        };
        if future
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_ready()
        {
            let done = slot.future.take();
            let owner = slot.waker.take();
            drop(slot);
            drop(done);
            // Its task is waiting on a future that is no more: let it end.
            owner.into_iter().for_each(Waker::wake);
        }
        true
    }

    fn claimed(&self) {
        self.claimed.store(true, Ordering::Relaxed);
    }
}

/// The tokio task that owns a [`Task`].
struct Running<F>(Arc<Task<F>>);

impl<F> Future for Running<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let task = &self.0;
        let mut slot = task.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let Slot { future, waker } = &mut *slot;
        let Some(running) = future.as_mut() else {
            return Poll::Ready(());
        };
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        // Until a connection's I/O claims it, say which task is polling.
        let polled = if task.claimed.load(Ordering::Relaxed) {
            running.as_mut().poll(cx)
        } else {
            let _polling = Polling::enter(Arc::downgrade(task) as Weak<dyn Drive>);
            running.as_mut().poll(cx)
        };
        if polled.is_ready() {
            let done = slot.future.take();
            drop(slot);
            drop(done);
        }
        polled
    }
}

/// Says which task is polling on this thread, until dropped (a panicking poll included).
struct Polling;

impl Polling {
    fn enter(task: Weak<dyn Drive>) -> Self {
        POLLING.with(|polling| *polling.borrow_mut() = Some(task));
        Polling
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.with(|polling| polling.borrow_mut().take());
    }
}

/// The task a connection's responses may drive; set once, by the connection's first I/O.
#[derive(Clone, Default)]
pub(super) struct Link(Arc<OnceLock<Weak<dyn Drive>>>);

impl Link {
    fn drive(&self) -> bool {
        self.0
            .get()
            .and_then(Weak::upgrade)
            .is_some_and(|task| task.drive())
    }

    /// Notes the task polling this thread's future, if one is; `true` once one is noted.
    fn claim(&self) -> bool {
        if self.0.get().is_some() {
            return true;
        }
        let Some(task) = POLLING.with(|polling| polling.borrow().clone()) else {
            return false;
        };
        if let Some(task) = task.upgrade() {
            task.claimed();
        }
        let _ = self.0.set(task);
        true
    }
}

/// A connection's I/O, noting the task that polls it.
pub(super) struct Tracked<T> {
    inner: T,
    link: Link,
    /// The link is set: a plain copy of what the link says, read on every read and write
    /// (the link's own check cost 13 more instructions a call, ~80 a JSON request).
    claimed: bool,
}

impl<T> Tracked<T> {
    pub(super) fn new(inner: T) -> Self {
        Self {
            inner,
            link: Link::default(),
            claimed: false,
        }
    }

    fn claim(&mut self) {
        if !self.claimed {
            self.claimed = self.link.claim();
        }
    }
}

impl<T: Connection> Connection for Tracked<T> {
    fn connected(&self) -> Connected {
        let connected = self.inner.connected();
        if connected.is_negotiated_h2() {
            connected
        } else {
            connected.extra(self.link.clone())
        }
    }
}

impl<T: Read + Unpin> Read for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.claim();
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.claim();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.claim();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that, when it has no frame ready, polls its connection once for one.
pub(crate) struct Driven {
    body: Incoming,
    link: Option<Link>,
}

impl Driven {
    /// `body`, driving the connection `extensions` link to (when they hold one). Cloned, not
    /// removed: a removal from the map cost 130 instructions more than the clone.
    pub(super) fn new(body: Incoming, extensions: &hyper::http::Extensions) -> Self {
        Self {
            body,
            link: extensions.get::<Link>().cloned(),
        }
    }
}

impl Body for Driven {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if polled.is_ready() || !this.link.as_ref().is_some_and(Link::drive) {
            return polled;
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use hyper::rt::Executor as _;

    use super::*;

    /// Spawns a stand-in for a connection: it claims `link` as a connection's I/O does, counts
    /// its polls, keeps the waker of the last, and ends once `done` is set.
    fn spawn_connection(
        link: &Link,
        done: &Arc<AtomicBool>,
    ) -> (Arc<AtomicUsize>, Arc<Mutex<Option<Waker>>>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let (link, done, counted, kept) =
            (link.clone(), done.clone(), polls.clone(), waker.clone());
        Spawner.execute(std::future::poll_fn(move |cx| {
            link.claim();
            counted.fetch_add(1, Ordering::SeqCst);
            *kept.lock().unwrap() = Some(cx.waker().clone());
            if done.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        (polls, waker)
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while !condition() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what}");
    }

    #[tokio::test]
    async fn a_driver_polls_the_connection_with_its_own_task_s_waker() {
        let link = Link::default();
        let done = Arc::new(AtomicBool::new(false));
        assert!(!link.drive(), "nothing claimed the link yet");
        let (polls, waker) = spawn_connection(&link, &done);
        until("the task polled its future", || {
            polls.load(Ordering::SeqCst) == 1
        })
        .await;
        assert!(link.drive());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        // What the connection registered under the driver's poll wakes the task that owns it.
        waker.lock().unwrap().take().unwrap().wake();
        until("the owner was woken", || polls.load(Ordering::SeqCst) == 3).await;
        done.store(true, Ordering::SeqCst);
        assert!(link.drive(), "the driver's poll ends it");
        assert!(!link.drive(), "nothing left to drive");
    }

    #[tokio::test]
    async fn a_connection_ended_by_its_driver_ends_its_task() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let link = Link::default();
        let done = Arc::new(AtomicBool::new(false));
        let before = metrics.num_alive_tasks();
        let (polls, _waker) = spawn_connection(&link, &done);
        until("the task polled its future", || {
            polls.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(metrics.num_alive_tasks(), before + 1);
        done.store(true, Ordering::SeqCst);
        assert!(link.drive());
        // Nothing the future waits on would wake its task again: the driver must.
        until("the task ended", || metrics.num_alive_tasks() == before).await;
        assert_eq!(
            polls.load(Ordering::SeqCst),
            2,
            "ended by the driver's poll"
        );
    }
}
