//! The feed-consumer runtime: every follower of a change feed, run one way.
//!
//! A consumer is named, reads a [`Source`] (this node's change feed, or in a fleet the shared
//! feed its replica follows) from a [`Cursor`] in batches of a set size, applies each batch,
//! and moves its cursor only once what it read is *done* (a CRL signed, a purge accepted, a
//! replica written). It may need a [`Role`] (signing, delivering purges): it runs only while
//! this node holds the role, resumes from the role's cursor each time it takes the role (where
//! the last holder *finished*), and stops the moment a commit finds the role gone. It may be
//! held back by a bound (a purge waits until every origin applied its change). Failures are
//! retried with a backoff; changes it can no longer read make it rebuild
//! ([`Consumer::resync`]) or wait, as the consumer says, never skip.
//!
//! The loop is [`Runner::step`]: one decision, no sleeping, returning what to wait for
//! ([`Next`]). [`Runtime`] drives each runner on a thread of its own against the real clock;
//! a simulator drives the same runners against its own clock, its own sources and cursors
//! (the traits here), deciding when each step runs. Each runner's [`Progress`] is one lag
//! view for the metrics and `ocspctl feed status`.

use ocsp_records::{Change, Mirrored, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Time as the runtime sees it: the real monotonic clock, or a simulator's.
pub trait Time: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
    /// Waits `d` (a simulator advances its clock instead).
    fn sleep(&self, d: Duration);
}

/// The process's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealTime;

impl Time for RealTime {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// An item of a feed, numbered in it.
pub trait Sequenced {
    /// Its number in the feed.
    fn seq(&self) -> u64;
}

impl Sequenced for Change {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Sequenced for Mirrored {
    fn seq(&self) -> u64 {
        self.change.as_ref().map_or(0, |c| c.seq)
    }
}

/// What one read of a source found.
#[derive(Debug)]
pub enum Read<I> {
    /// Items from the position asked for, in order (the first is that position).
    Items(Vec<I>),
    /// Nothing at or after the position yet; the source's head.
    UpToDate(u64),
    /// The source no longer holds the position (trimmed, never recorded); its head.
    Gone(u64),
}

/// Where a consumer reads from.
pub trait Source<I>: Send + Sync {
    /// The number the next item will get.
    fn head(&self) -> Result<u64, StoreError>;
    /// Up to `limit` items from `from` on.
    fn read(&self, from: u64, limit: usize) -> Result<Read<I>, StoreError>;
    /// Waits until an item at or after `from` may exist, at most `within` (it may return early).
    fn wait(&self, from: u64, within: Duration);
}

/// A node's change feed as a source.
pub struct FeedSource(pub Arc<dyn crate::ChangeFeed>);

impl Source<Change> for FeedSource {
    fn head(&self) -> Result<u64, StoreError> {
        // The published head: `ChangeFeed::head` may count a change still being written.
        Ok(self.0.wait_for_changes(u64::MAX, Duration::ZERO))
    }
    fn read(&self, from: u64, limit: usize) -> Result<Read<Change>, StoreError> {
        // The published head first (what `wait_for_changes` reports counts a change only
        // once it can be read; `head` may count one still being written), so a change below it
        // that cannot be read is really gone.
        let head = self.0.wait_for_changes(from, Duration::ZERO);
        let changes = self.0.changes(from, limit)?;
        Ok(match changes.first() {
            Some(c) if c.seq == from => Read::Items(changes),
            Some(_) => Read::Gone(head.max(from)),
            None if head > from => Read::Gone(head),
            None => Read::UpToDate(head),
        })
    }
    fn wait(&self, from: u64, within: Duration) {
        self.0.wait_for_changes(from, within);
    }
}

/// Where a consumer's position is kept. A role-held consumer's cursor lives where the role
/// lives, and a commit is checked against the role in the same write.
pub trait Cursor: Send + Sync {
    /// The first item not yet done; `None` when nothing was ever recorded (nobody knows what
    /// was done: the consumer rebuilds).
    fn load(&self) -> Result<Option<u64>, StoreError>;
    /// Records that every item before `next` is done; false (nothing written) when this node
    /// no longer holds the consumer's role.
    fn commit(&self, next: u64) -> Result<bool, StoreError>;
}

/// A cursor kept only in this process: the consumer starts from the source's head (what it
/// holds was built from the database as it is then).
#[derive(Debug)]
pub struct VolatileCursor(AtomicU64);

impl VolatileCursor {
    /// Starting at `at`.
    pub fn at(at: u64) -> VolatileCursor {
        VolatileCursor(AtomicU64::new(at))
    }
}

impl Cursor for VolatileCursor {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.0.load(Ordering::SeqCst)))
    }
    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        self.0.fetch_max(next, Ordering::SeqCst);
        Ok(true)
    }
}

/// A durable consumer cursor kept in a node's change feed (`ChangeFeed::cursor`).
pub struct FeedCursor {
    /// The feed that keeps it.
    pub feed: Arc<dyn crate::ChangeFeed>,
    /// The consumer's name there.
    pub name: String,
}

impl Cursor for FeedCursor {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        self.feed.cursor(&self.name).map(Some)
    }
    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        self.feed.set_cursor(&self.name, next).map(|()| true)
    }
}

impl<T: crate::RoleCursor + ?Sized> Cursor for Arc<T> {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        crate::RoleCursor::load(&**self)
    }
    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        crate::RoleCursor::commit(&**self, next)
    }
}

/// A role only one node holds at a time (signing, delivering purges).
pub trait Role: Send + Sync {
    /// Whether this node holds it now.
    fn held(&self) -> bool;
}

impl<F: Fn() -> bool + Send + Sync> Role for F {
    fn held(&self) -> bool {
        self()
    }
}

/// How far a batch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Everything given is done: the cursor may move past it.
    Done,
    /// Read and noted, not yet done (a CRL still to sign): the cursor stays; the next step
    /// brings what came since, or nothing.
    Pending,
    /// Read and noted, and the work failed: as `Pending`, after the retry policy's backoff.
    Failed,
}

/// What to do when the source cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReadError {
    /// Retry after the backoff (the consumer keeps what it holds).
    Retry,
    /// Rebuild from the head ([`Consumer::resync`]): what the consumer holds may be wrong.
    Resync,
}

/// One follower of a feed.
pub trait Consumer<I>: Send + Sync {
    /// Applies `items` in order (empty: time passed without news, for work that is due by
    /// time). `Err` counts nothing as read: the same items come again after the backoff.
    fn apply(&self, items: &[I]) -> Result<Applied, String>;
    /// The items from the cursor on cannot be read (or no cursor was ever recorded): rebuild
    /// whatever derives from them; returns the position to go on from (the source's head,
    /// which is given), or `Err` to wait and try again (a purge never skips what it did not
    /// send).
    fn resync(&self, head: u64) -> Result<u64, String>;
    /// No cursor was ever recorded: where to begin. Rebuilds (as [`Consumer::resync`]) unless
    /// the consumer owes nothing from before it existed (a purge target added now).
    fn start_fresh(&self, head: u64) -> Result<u64, String> {
        self.resync(head)
    }
    /// It takes up the work at `at` (from its cursor, or after a rebuild).
    fn resumed(&self, _at: u64) {}
    /// Its cursor was committed at `next` (what only a durable cursor allows: trimming).
    fn committed(&self, _next: u64) {}
    /// What a read error means for this consumer.
    fn on_read_error(&self) -> OnReadError {
        OnReadError::Retry
    }
    /// The first item it may not apply yet (a purge waits for every origin), if any.
    fn bound(&self) -> Result<Option<u64>, String> {
        Ok(None)
    }
    /// Called while another node holds the consumer's role, with the role's cursor as last
    /// read (how far the holder got), and once when this node loses the role.
    fn standby(&self, _shared: Option<u64>) {}
}

/// How failures are retried: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// The first wait.
    pub first: Duration,
    /// The longest.
    pub max: Duration,
}

/// The kind of a consumer, as `ocspctl feed status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In this process only, from the head at start.
    InProcess,
    /// With a cursor of its own in the database.
    Durable,
    /// With a cursor that lives with a role.
    Role,
    /// Copies the fleet's feed into this node's replica.
    Replica,
}

impl Kind {
    /// As shown.
    pub fn name(self) -> &'static str {
        match self {
            Kind::InProcess => "in-process",
            Kind::Durable => "durable",
            Kind::Role => "role",
            Kind::Replica => "replica",
        }
    }
}

/// A consumer's settings.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its name (metrics, logs, `ocspctl feed status`).
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Items read at a time.
    pub batch: usize,
    /// How failures are retried.
    pub retry: Retry,
    /// How long it waits for news before it is given an empty batch.
    pub idle: Duration,
    /// How often it looks at the role (and the role's cursor) while another node holds it.
    pub standby: Duration,
}

impl Spec {
    /// A consumer named `name` of kind `kind` with the usual settings.
    pub fn new(name: impl Into<String>, kind: Kind) -> Spec {
        Spec {
            name: name.into(),
            kind,
            batch: 1024,
            retry: Retry { first: Duration::from_millis(200), max: Duration::from_secs(2) },
            idle: Duration::from_millis(250),
            standby: Duration::from_millis(200),
        }
    }
}

/// What a runner waits for before its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: step again.
    Now,
    /// News in the source at or after `from`, at most `within`.
    News {
        /// The position waited for.
        from: u64,
        /// The longest wait.
        within: Duration,
    },
    /// A pause (a backoff, the role held elsewhere, origins still applying).
    Sleep(Duration),
}

/// How far a consumer got, shared with whoever waits for it or shows it.
#[derive(Debug)]
pub struct Progress {
    name: String,
    kind: Kind,
    /// The first item not yet read and applied (`u64::MAX`: not running here).
    next: Mutex<u64>,
    moved: Condvar,
    /// The first item not yet done, as committed.
    committed: AtomicU64,
    failures: AtomicU64,
    /// Whether it runs here now (a role-held one only while this node holds the role).
    active: AtomicBool,
}

impl Progress {
    fn new(spec: &Spec) -> Progress {
        Progress {
            name: spec.name.clone(),
            kind: spec.kind,
            next: Mutex::new(u64::MAX),
            moved: Condvar::new(),
            committed: AtomicU64::new(u64::MAX),
            failures: AtomicU64::new(0),
            active: AtomicBool::new(false),
        }
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The first item not yet applied; `None` while it does not run here.
    pub fn next(&self) -> Option<u64> {
        Some(*self.next.lock().unwrap_or_else(|p| p.into_inner())).filter(|n| *n != u64::MAX)
    }

    /// The first item not yet done, as last committed (or, while another node holds the
    /// role, as that node committed it).
    pub fn committed(&self) -> Option<u64> {
        Some(self.committed.load(Ordering::SeqCst)).filter(|n| *n != u64::MAX)
    }

    /// Whether it runs here now.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Failed attempts since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn set_next(&self, next: Option<u64>) {
        let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *n = next.unwrap_or(u64::MAX);
        self.moved.notify_all();
    }

    /// Waits until item `seq` is applied, at most `within`; false if it is not.
    pub fn wait_past(&self, seq: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            if *next != u64::MAX && *next > seq {
                return true;
            }
            if now >= deadline {
                return false;
            }
            next = self.moved.wait_timeout(next, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Where a runner stands.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The next item to read.
    read: u64,
    /// The first item not yet done (as committed).
    durable: u64,
}

/// One consumer and its loop.
pub struct Runner<I> {
    spec: Spec,
    source: Arc<dyn Source<I>>,
    cursor: Arc<dyn Cursor>,
    role: Option<Arc<dyn Role>>,
    consumer: Arc<dyn Consumer<I>>,
    time: Arc<dyn Time>,
    progress: Arc<Progress>,
    position: Option<Position>,
    /// Consecutive failures (for the backoff).
    failing: u32,
    /// Consecutive looks at a bound that held everything back.
    bound_waits: u32,
    /// When the role's cursor was last read while another node held the role.
    last_standby: Option<Instant>,
}

impl<I: Sequenced + Send + 'static> Runner<I> {
    /// A runner of `consumer` over `source` from `cursor`, needing `role` if given.
    pub fn new(
        spec: Spec,
        source: Arc<dyn Source<I>>,
        cursor: Arc<dyn Cursor>,
        role: Option<Arc<dyn Role>>,
        consumer: Arc<dyn Consumer<I>>,
        time: Arc<dyn Time>,
    ) -> Runner<I> {
        let progress = Arc::new(Progress::new(&spec));
        Runner {
            spec,
            source,
            cursor,
            role,
            consumer,
            time,
            progress,
            position: None,
            failing: 0,
            bound_waits: 0,
            last_standby: None,
        }
    }

    /// Its progress.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn backoff(&mut self) -> Next {
        self.progress.failures.fetch_add(1, Ordering::Relaxed);
        let wait = self.spec.retry.first.saturating_mul(1 << self.failing.min(16)).min(self.spec.retry.max);
        self.failing = self.failing.saturating_add(1);
        Next::Sleep(wait)
    }

    fn lose_position(&mut self) {
        self.position = None;
        self.progress.active.store(false, Ordering::SeqCst);
        self.progress.set_next(None);
    }

    /// One decision of the loop: reads, applies and commits at most one batch.
    pub fn step(&mut self) -> Next {
        // A role held elsewhere: follow how far its holder got, and wait.
        if self.role.as_ref().is_some_and(|r| !r.held()) {
            if self.position.is_some() {
                tracing::info!(consumer = %self.spec.name, "this node no longer holds the role; its work stops here");
                self.lose_position();
            }
            let due = self.last_standby.is_none_or(|t| self.time.now().duration_since(t) >= self.spec.standby);
            if due {
                self.last_standby = Some(self.time.now());
                let shared = self.cursor.load().ok().flatten();
                if let Some(s) = shared {
                    self.progress.committed.store(s, Ordering::SeqCst);
                }
                self.consumer.standby(shared);
            }
            return Next::Sleep(self.spec.standby);
        }
        let Some(position) = self.position else { return self.start() };
        let read = match self.source.read(position.read, self.spec.batch) {
            Ok(r) => r,
            Err(e) => {
                // Logged once per streak of failures (an outage retried every half second
                // would fill the log); the failure count is in the lag view.
                if self.failing == 0 {
                    tracing::error!(consumer = %self.spec.name, error = %e, "cannot read the feed; retrying");
                } else {
                    tracing::debug!(consumer = %self.spec.name, error = %e, "cannot read the feed; retrying");
                }
                if self.consumer.on_read_error() == OnReadError::Resync {
                    let head = self.source.head().unwrap_or(position.read);
                    let _ = self.resync(head);
                }
                // Rebuilt or not, the next read waits: the fault may last.
                return self.backoff();
            }
        };
        let mut items = match read {
            Read::Items(items) => items,
            Read::UpToDate(_) => Vec::new(),
            Read::Gone(head) => {
                tracing::warn!(consumer = %self.spec.name, from = position.read, head, "the feed no longer holds this consumer's next change");
                return self.resync(head);
            }
        };
        // A bound holds back what may not be applied yet (asked only when there is news).
        if !items.is_empty() {
            match self.consumer.bound() {
                Ok(Some(bound)) => {
                    items.retain(|i| i.seq() < bound);
                    if items.is_empty() {
                        // Still applying elsewhere: look again soon, less often the longer
                        // it takes.
                        let wait = Duration::from_millis(5).saturating_mul(1 << self.bound_waits.min(6));
                        self.bound_waits = self.bound_waits.saturating_add(1);
                        return Next::Sleep(wait.min(Duration::from_millis(250)));
                    }
                    self.bound_waits = 0;
                }
                Ok(None) => {}
                Err(e) => {
                    if self.failing == 0 {
                        tracing::warn!(consumer = %self.spec.name, error = %e, "cannot tell how far this consumer may go; it waits");
                    }
                    return self.backoff();
                }
            }
        }
        let read_to = items.last().map_or(position.read, |i| i.seq() + 1);
        match self.consumer.apply(&items) {
            Ok(applied) => {
                let mut position = Position { read: read_to, durable: position.durable };
                self.progress.set_next(Some(read_to));
                if applied == Applied::Done && read_to > position.durable {
                    match self.cursor.commit(read_to) {
                        Ok(true) => {
                            position.durable = read_to;
                            self.progress.committed.store(read_to, Ordering::SeqCst);
                            self.consumer.committed(read_to);
                        }
                        Ok(false) => {
                            tracing::warn!(consumer = %self.spec.name, "the role moved while this node worked; the next holder resumes from its cursor");
                            self.lose_position();
                            // This node may still believe it holds the role (its view lapses
                            // later than the database's): pause before looking again.
                            return Next::Sleep(self.spec.standby);
                        }
                        Err(e) => {
                            if self.failing == 0 {
                                tracing::error!(consumer = %self.spec.name, error = %e, "cannot record the consumer's cursor; retrying");
                            }
                            self.position = Some(position);
                            return self.backoff();
                        }
                    }
                }
                self.position = Some(position);
                if applied == Applied::Failed {
                    return self.backoff();
                }
                self.failing = 0;
                if items.is_empty() {
                    Next::News { from: read_to, within: self.spec.idle }
                } else {
                    Next::Now
                }
            }
            Err(e) => {
                if self.failing == 0 {
                    tracing::warn!(consumer = %self.spec.name, error = %e, "applying changes failed; retrying");
                } else {
                    tracing::debug!(consumer = %self.spec.name, error = %e, "applying changes failed; retrying");
                }
                self.backoff()
            }
        }
    }

    /// Takes up the work: from the cursor (once the source has reached it), or rebuilt.
    fn start(&mut self) -> Next {
        let head = match self.source.head() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(consumer = %self.spec.name, error = %e, "cannot read the feed's head");
                return self.backoff();
            }
        };
        match self.cursor.load() {
            Ok(Some(c)) if c > head => {
                // The role's last holder finished changes this node has not received yet:
                // working from here would act on an older state than it did.
                tracing::info!(consumer = %self.spec.name, cursor = c, head, "waiting for this node's feed to reach the consumer's cursor");
                Next::News { from: c.saturating_sub(1), within: self.spec.idle }
            }
            Ok(Some(c)) => {
                tracing::info!(consumer = %self.spec.name, from = c, "consumer resumes from its cursor");
                self.progress.committed.store(c, Ordering::SeqCst);
                self.take_up(Position { read: c, durable: c })
            }
            Ok(None) => {
                tracing::info!(consumer = %self.spec.name, head, "no cursor recorded: the consumer starts from the head");
                match self.consumer.start_fresh(head) {
                    Ok(at) => self.take_up(Position { read: at, durable: at }),
                    Err(e) => {
                        tracing::warn!(consumer = %self.spec.name, error = %e, "the consumer waits");
                        self.backoff()
                    }
                }
            }
            Err(e) => {
                tracing::warn!(consumer = %self.spec.name, error = %e, "cannot read the consumer's cursor");
                self.backoff()
            }
        }
    }

    /// Works from `position` on, and tells the consumer and the progress view.
    fn take_up(&mut self, position: Position) -> Next {
        self.position = Some(position);
        self.progress.active.store(true, Ordering::SeqCst);
        self.progress.set_next(Some(position.read));
        self.consumer.resumed(position.read);
        Next::Now
    }

    fn resync(&mut self, head: u64) -> Next {
        match self.consumer.resync(head) {
            Ok(at) => {
                let durable = self.position.map_or(at, |p| p.durable.min(at));
                self.take_up(Position { read: at, durable })
            }
            Err(e) => {
                tracing::warn!(consumer = %self.spec.name, error = %e, "the consumer waits");
                self.backoff()
            }
        }
    }
}

/// A runner whatever its items: what a driver needs.
pub trait Runnable: Send {
    /// Its name.
    fn name(&self) -> &str;
    /// One step.
    fn step(&mut self) -> Next;
    /// Waits as `next` says, against the runner's time and source.
    fn wait(&self, next: Next);
    /// Its progress.
    fn progress(&self) -> Arc<Progress>;
}

impl<I: Sequenced + Send + 'static> Runnable for Runner<I> {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn step(&mut self) -> Next {
        Runner::step(self)
    }
    fn wait(&self, next: Next) {
        match next {
            Next::Now => {}
            Next::News { from, within } => self.source.wait(from, within),
            Next::Sleep(d) => self.time.sleep(d),
        }
    }
    fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

/// The runners of this process, each on a thread of its own.
#[derive(Default)]
pub struct Runtime {
    stop: Arc<AtomicBool>,
    all: Mutex<Vec<Arc<Progress>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Its threads end by themselves within one wait; `stop` waits for them.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The longest a runner's thread waits before it looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(250);

impl Runtime {
    /// An empty runtime.
    pub fn new() -> Arc<Runtime> {
        Arc::new(Runtime::default())
    }

    /// Starts `runner` on a thread of its own; returns its progress.
    pub fn spawn(&self, mut runner: Box<dyn Runnable>) -> std::io::Result<Arc<Progress>> {
        let progress = runner.progress();
        let stop = self.stop.clone();
        let name = format!("feed-{}", runner.name().replace('/', "-"));
        let thread = std::thread::Builder::new().name(name.chars().take(15).collect()).spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let next = runner.step();
                // Long pauses are cut so a stop is noticed.
                let next = match next {
                    Next::Sleep(d) => Next::Sleep(d.min(STOP_CHECK)),
                    Next::News { from, within } => Next::News { from, within: within.min(STOP_CHECK) },
                    Next::Now => Next::Now,
                };
                runner.wait(next);
            }
        })?;
        self.all.lock().unwrap_or_else(|p| p.into_inner()).push(progress.clone());
        self.threads.lock().unwrap_or_else(|p| p.into_inner()).push(thread);
        Ok(progress)
    }

    /// Every runner's progress, in the order they started.
    pub fn consumers(&self) -> Vec<Arc<Progress>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tells every runner to stop after its current step, without waiting for them.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops every runner after its current step and waits for them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads.into_iter().filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = t.join();
        }
    }
}
