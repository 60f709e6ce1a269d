//! Following the change feed inside one process.
//!
//! Everything that holds or derives answers (the memory tier, live signings in flight, the
//! pre-signer's queue, the purge fan-out) is a [`Follower`]. One thread, [`Followers`], reads
//! the feed in order from where the process started and hands each change to every follower in
//! turn; an operation is acknowledged only once the followers have applied its own change
//! ([`Followers::wait_applied`]), so no tier of this process answers from before a change
//! that was acknowledged. If the feed cannot be read, or has a gap, every follower drops what
//! it holds ([`Follower::reset`]) instead of missing a change.

use crate::runtime::{
    Applied, Consumer, FeedSource, Kind, OnReadError, Progress, RealTime, Retry, Runner, Runtime, Spec, VolatileCursor,
};
use ocsp_records::{Change, StoreError};
use std::sync::Arc;
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
/// How often the followers wake with no news (to notice a stop or a drop).
const IDLE_WAKE: Duration = Duration::from_millis(200);

/// The in-process followers: one consumer of the feed-consumer runtime
/// ([`crate::runtime`]) that hands each change to every follower in turn, from the head at
/// start (what they hold was built from the database as it was then), with a cursor kept only
/// in this process. A change the feed can no longer give, or a feed that cannot be read,
/// makes every follower drop what it holds.
pub struct Followers {
    fanout: Arc<Fanout>,
    progress: Arc<Progress>,
    /// The runtime it runs on, stopped with it when it was started alone.
    runtime: Arc<Runtime>,
    owns_runtime: bool,
}

/// Hands each change to every follower.
struct Fanout {
    feed: Arc<dyn ChangeFeed>,
    list: Vec<Arc<dyn Follower>>,
}

impl Consumer<Change> for Fanout {
    fn apply(&self, changes: &[Change]) -> Result<Applied, String> {
        // Read: the database need not keep them for us any more.
        if let Some(last) = changes.last() {
            self.feed.hold(last.seq + 1);
        }
        for change in changes {
            for follower in &self.list {
                follower.apply(change);
            }
        }
        Ok(Applied::Done)
    }

    fn resync(&self, head: u64) -> Result<u64, String> {
        tracing::error!(
            head,
            "the change feed cannot give every change since the last one applied; every in-process cache is dropped"
        );
        self.reset_all();
        self.feed.hold(head);
        Ok(head)
    }

    fn on_read_error(&self) -> OnReadError {
        OnReadError::Resync
    }
}

impl Fanout {
    fn reset_all(&self) {
        for follower in &self.list {
            follower.reset();
        }
    }
}

impl Followers {
    /// Starts following `feed` from its head on a runtime of its own; `list` is applied in
    /// order. Dropping the last handle stops it.
    pub fn start(feed: Arc<dyn ChangeFeed>, list: Vec<Arc<dyn Follower>>) -> std::io::Result<Arc<Followers>> {
        Self::start_with(&Runtime::new(), feed, list, true)
    }

    /// Starts following `feed` from its head as one consumer of `runtime` (stopped with it).
    pub fn start_on(
        runtime: &Arc<Runtime>,
        feed: Arc<dyn ChangeFeed>,
        list: Vec<Arc<dyn Follower>>,
    ) -> std::io::Result<Arc<Followers>> {
        Self::start_with(runtime, feed, list, false)
    }

    fn start_with(
        runtime: &Arc<Runtime>,
        feed: Arc<dyn ChangeFeed>,
        list: Vec<Arc<dyn Follower>>,
        owns_runtime: bool,
    ) -> std::io::Result<Arc<Followers>> {
        let head = feed.head();
        feed.hold(head);
        let fanout = Arc::new(Fanout { feed: feed.clone(), list });
        let mut spec = Spec::new("followers", Kind::InProcess);
        spec.batch = READ_BATCH;
        spec.idle = IDLE_WAKE;
        spec.retry = Retry { first: Duration::from_millis(200), max: Duration::from_millis(200) };
        let mut runner = Runner::new(
            spec,
            Arc::new(FeedSource(feed)),
            Arc::new(VolatileCursor::at(head)),
            None,
            fanout.clone(),
            Arc::new(RealTime),
        );
        // The first step takes the position (the head), so waiters see it at once.
        let _ = runner.step();
        let progress = runtime.spawn(Box::new(runner))?;
        Ok(Arc::new(Followers { fanout, progress, runtime: runtime.clone(), owns_runtime }))
    }

    /// Waits until every follower applied the change `seq`, at most `within`; false if they
    /// have not.
    pub fn wait_applied(&self, seq: u64, within: Duration) -> bool {
        self.progress.wait_past(seq, within)
    }

    /// The first change not yet applied by every follower.
    pub fn applied(&self) -> u64 {
        self.progress.next().unwrap_or(0)
    }

    /// Its progress (for the lag view).
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Stops the runtime it runs on after each consumer's current step and waits for them
    /// (they then hold no reference to the store).
    pub fn stop(&self) {
        self.runtime.stop();
    }

    /// Makes every follower drop what it holds.
    pub fn reset_all(&self) {
        self.fanout.reset_all();
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        // Its thread ends by itself within one wait; `stop` waits for it.
        if self.owns_runtime {
            self.runtime.signal_stop();
        }
    }
}
