//! Following the change feed inside one process.
//!
//! Everything that holds or derives answers (the memory tier, live signings in flight, the
//! pre-signer's queue, the purge fan-out) is a [`Follower`]. One thread, [`Followers`], reads
//! the feed in order from where the process started and hands each change to every follower in
//! turn; an operation is acknowledged only once the followers have applied its own change
//! ([`Followers::wait_applied`]), so no tier of this process answers from before a change
//! that was acknowledged. If the feed cannot be read, or has a gap, every follower drops what
//! it holds ([`Follower::reset`]) instead of missing a change.

use ocsp_records::{Change, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The ordered, resumable change feed, as the domain needs it from a store.
pub trait ChangeFeed: Send + Sync {
    /// The number the next change will get.
    fn head(&self) -> u64;
    /// Up to `limit` changes from `from` on, oldest first.
    fn changes(&self, from: u64, limit: usize) -> Result<Vec<Change>, StoreError>;
    /// Waits until a change at or after `from` exists, at most `timeout`; returns the head.
    fn wait_for_changes(&self, from: u64, timeout: Duration) -> u64;
    /// Keeps the changes from `from` on for the in-process followers.
    fn hold(&self, from: u64);
    /// Where the durable consumer `name` stands (the head, for one never seen before).
    fn cursor(&self, name: &str) -> Result<u64, StoreError>;
    /// Records durably that `name` has applied every change before `next`.
    fn set_cursor(&self, name: &str, next: u64) -> Result<(), StoreError>;
    /// Deletes the changes before `before` that nothing still needs.
    fn trim(&self, before: u64) -> Result<(), StoreError>;
}

/// Where a consumer that only one node at a time may run (signing CRLs) keeps its cursor:
/// with its role. In a fleet that is PostgreSQL, and a commit is checked against the role's
/// lease in the same transaction, so whoever takes the role next resumes from where the last
/// holder *finished*, and a holder that lost the role writes nothing. On a single node it is
/// the database's own consumer cursor.
pub trait RoleCursor: Send + Sync {
    /// Where the role's work stands: the first change not yet done; `None` when the role has
    /// never recorded one (everything must be done again: nobody knows what was).
    fn load(&self) -> Result<Option<u64>, StoreError>;
    /// Records that every change before `next` is done; false (nothing written) when this
    /// node no longer holds the role.
    fn commit(&self, next: u64) -> Result<bool, StoreError>;
}

/// Something in this process that must learn of every change, in order.
pub trait Follower: Send + Sync {
    /// Applies one change (drops what it made wrong, queues work). Must not block for long:
    /// acknowledgements wait for it.
    fn apply(&self, change: &Change);
    /// Drops everything derived from the database: changes may have been missed.
    fn reset(&self);
}

/// Changes read from the feed at a time.
const READ_BATCH: usize = 1024;
/// How often the follower thread wakes with no news (to notice a stop or a drop).
const IDLE_WAKE: Duration = Duration::from_millis(200);

/// The in-process followers and the thread that feeds them.
pub struct Followers {
    feed: Arc<dyn ChangeFeed>,
    list: Vec<Arc<dyn Follower>>,
    /// The first change not yet applied by every follower.
    applied: Mutex<u64>,
    moved: Condvar,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Followers {
    /// Starts following `feed` from its head (what the followers hold now was built from the
    /// database as it is) on a thread of its own; `list` is applied in order.
    pub fn start(feed: Arc<dyn ChangeFeed>, list: Vec<Arc<dyn Follower>>) -> std::io::Result<Arc<Followers>> {
        let head = feed.head();
        feed.hold(head);
        let me = Arc::new(Followers {
            feed,
            list,
            applied: Mutex::new(head),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        // The thread holds the followers weakly: dropping the last handle stops it.
        let runner = Arc::downgrade(&me);
        let mut next = head;
        let thread = std::thread::Builder::new().name("feed-follow".into()).spawn(move || {
            while let Some(me) = runner.upgrade() {
                if me.stop.load(Ordering::SeqCst) {
                    break;
                }
                next = me.step(next);
            }
        })?;
        *me.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(me)
    }

    /// Waits until every follower applied the change `seq`, at most `within`; false if they
    /// have not.
    pub fn wait_applied(&self, seq: u64, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = std::time::Instant::now();
            if *applied > seq {
                return true;
            }
            if now >= deadline {
                return false;
            }
            applied = self.moved.wait_timeout(applied, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// The first change not yet applied by every follower.
    pub fn applied(&self) -> u64 {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the thread after its current step and waits for it to end (it then holds no
    /// reference to the store).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }

    /// Waits for news once and applies what came; returns the new `next`.
    fn step(&self, next: u64) -> u64 {
        let head = self.feed.wait_for_changes(next, IDLE_WAKE);
        if head <= next {
            return next;
        }
        let next = match self.feed.changes(next, READ_BATCH) {
            Ok(changes) if changes.first().is_some_and(|c| c.seq == next) => {
                // Read: the database need not keep them for us any more.
                self.feed.hold(changes.last().map_or(next, |c| c.seq + 1));
                for change in &changes {
                    for follower in &self.list {
                        follower.apply(change);
                    }
                }
                changes.last().map_or(next, |c| c.seq + 1)
            }
            Ok(changes) => {
                tracing::error!(expected = next, found = ?changes.first().map(|c| c.seq), "the change feed has a gap; every in-process cache is dropped");
                self.reset_all();
                head
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the change feed; every in-process cache is dropped");
                self.reset_all();
                head
            }
        };
        self.feed.hold(next);
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        *applied = next;
        self.moved.notify_all();
        next
    }

    /// Makes every follower drop what it holds.
    pub fn reset_all(&self) {
        for follower in &self.list {
            follower.reset();
        }
    }
}
