//! The feed-consumer runtime's rules, stepped by hand on in-memory models of a feed, a
//! role-held cursor and a role (the simulator's way: no thread, no sleep, no real clock). The
//! real sources and cursors (RocksDB, PostgreSQL) are run by the integration tests.
#![allow(clippy::unwrap_used)]

use ocsp_domain::runtime::{
    Applied, Consumer, Cursor, Kind, Next, Read, Retry, Role, Runner, Sequenced, Source, Spec, Time,
};
use ocsp_proto::IssuerKey;
use ocsp_records::{Change, ChangeKind, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn change(seq: u64) -> Change {
    Change { seq, time: 0, issuer: IssuerKey([1; 64]), kind: ChangeKind::Status, serials: Vec::new() }
}

/// A feed holding changes from `first` to `head`.
struct Feed {
    first: AtomicU64,
    head: AtomicU64,
    failing: AtomicBool,
}

impl Feed {
    fn new(head: u64) -> Arc<Feed> {
        Arc::new(Feed { first: AtomicU64::new(0), head: AtomicU64::new(head), failing: AtomicBool::new(false) })
    }
}

impl Source<Change> for Feed {
    fn head(&self) -> Result<u64, StoreError> {
        Ok(self.head.load(Ordering::SeqCst))
    }
    fn read(&self, from: u64, limit: usize) -> Result<Read<Change>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk".into()));
        }
        let head = self.head.load(Ordering::SeqCst);
        if from < self.first.load(Ordering::SeqCst) {
            return Ok(Read::Gone(head));
        }
        if from >= head {
            return Ok(Read::UpToDate(head));
        }
        Ok(Read::Items((from..head).take(limit).map(change).collect()))
    }
    fn wait(&self, _from: u64, _within: Duration) {}
}

/// A role and its cursor, as PostgreSQL keeps them: a commit checks the holder in the same
/// write.
struct Lease {
    holder: Mutex<&'static str>,
    cursor: Mutex<Option<u64>>,
    commits: AtomicU64,
}

struct Holder {
    lease: Arc<Lease>,
    node: &'static str,
}

impl Role for Holder {
    fn held(&self) -> bool {
        *self.lease.holder.lock().unwrap() == self.node
    }
}

impl Cursor for Holder {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        Ok(*self.lease.cursor.lock().unwrap())
    }
    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        if !self.held() {
            return Ok(false);
        }
        let mut c = self.lease.cursor.lock().unwrap();
        *c = Some(c.unwrap_or(0).max(next));
        self.lease.commits.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
}

/// A consumer that notes what it is given and answers as told.
#[derive(Default)]
struct Notes {
    seen: Mutex<Vec<u64>>,
    answer: Mutex<Option<Result<Applied, String>>>,
    resyncs: Mutex<Vec<u64>>,
    refuse_resync: AtomicBool,
    bound: Mutex<Option<u64>>,
    fresh_at_head: AtomicBool,
    committed: Mutex<Vec<u64>>,
    read_errors_resync: AtomicBool,
}

impl Consumer<Change> for Notes {
    fn apply(&self, items: &[Change]) -> Result<Applied, String> {
        let answer = self.answer.lock().unwrap().clone().unwrap_or(Ok(Applied::Done));
        if answer.is_ok() {
            self.seen.lock().unwrap().extend(items.iter().map(Sequenced::seq));
        }
        answer
    }
    fn resync(&self, head: u64) -> Result<u64, String> {
        self.resyncs.lock().unwrap().push(head);
        if self.refuse_resync.load(Ordering::SeqCst) {
            Err("never skip".into())
        } else {
            Ok(head)
        }
    }
    fn bound(&self) -> Result<Option<u64>, String> {
        Ok(*self.bound.lock().unwrap())
    }
    fn start_fresh(&self, head: u64) -> Result<u64, String> {
        if self.fresh_at_head.load(Ordering::SeqCst) {
            Ok(head)
        } else {
            self.resync(head)
        }
    }
    fn committed(&self, next: u64) {
        self.committed.lock().unwrap().push(next);
    }
    fn on_read_error(&self) -> ocsp_domain::runtime::OnReadError {
        if self.read_errors_resync.load(Ordering::SeqCst) {
            ocsp_domain::runtime::OnReadError::Resync
        } else {
            ocsp_domain::runtime::OnReadError::Retry
        }
    }
}

/// Time that moves only when told.
struct Manual(Mutex<Instant>);

impl Time for Manual {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
    fn sleep(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

fn spec(batch: usize) -> Spec {
    let mut s = Spec::new("test", Kind::Role);
    s.batch = batch;
    s.retry = Retry { first: Duration::from_millis(100), max: Duration::from_millis(400) };
    s
}

fn runner(
    feed: &Arc<Feed>,
    lease: &Arc<Lease>,
    node: &'static str,
    consumer: &Arc<Notes>,
    batch: usize,
) -> Runner<Change> {
    let holder = Arc::new(Holder { lease: lease.clone(), node });
    Runner::new(
        spec(batch),
        feed.clone(),
        holder.clone(),
        Some(holder),
        consumer.clone(),
        Arc::new(Manual(Mutex::new(Instant::now()))),
    )
}

fn lease(holder: &'static str, cursor: Option<u64>) -> Arc<Lease> {
    Arc::new(Lease { holder: Mutex::new(holder), cursor: Mutex::new(cursor), commits: AtomicU64::new(0) })
}

fn steps(r: &mut Runner<Change>, n: usize) -> Vec<Next> {
    (0..n).map(|_| r.step()).collect()
}

#[test]
fn the_next_holder_resumes_where_the_last_one_finished_not_where_it_read() {
    // Node a reads changes 10..20 but does not finish them (a CRL not yet signed); the role
    // moves to b: b must do 10..20 again, whatever a had read.
    let feed = Feed::new(20);
    let lease = lease("a", Some(10));
    let (na, nb) = (Arc::new(Notes::default()), Arc::new(Notes::default()));
    *na.answer.lock().unwrap() = Some(Ok(Applied::Pending));
    let mut a = runner(&feed, &lease, "a", &na, 100);
    let mut b = runner(&feed, &lease, "b", &nb, 100);
    steps(&mut a, 3);
    assert_eq!(*na.seen.lock().unwrap(), (10..20).collect::<Vec<_>>());
    assert_eq!(*lease.cursor.lock().unwrap(), Some(10), "nothing finished, nothing committed");
    *lease.holder.lock().unwrap() = "b";
    assert!(matches!(a.step(), Next::Sleep(_)), "a stops working the moment the role is gone");
    assert!(!a.progress().active());
    steps(&mut b, 3);
    assert_eq!(*nb.seen.lock().unwrap(), (10..20).collect::<Vec<_>>());
    assert_eq!(*lease.cursor.lock().unwrap(), Some(20));
}

#[test]
fn a_holder_that_lost_the_role_between_its_work_and_its_commit_writes_nothing() {
    struct Flip {
        lease: Arc<Lease>,
        inner: Notes,
    }
    impl Consumer<Change> for Flip {
        fn apply(&self, items: &[Change]) -> Result<Applied, String> {
            // The lease lapses while the work is done (a pause, a partition).
            *self.lease.holder.lock().unwrap() = "b";
            self.inner.apply(items)
        }
        fn resync(&self, head: u64) -> Result<u64, String> {
            self.inner.resync(head)
        }
    }
    let feed = Feed::new(5);
    let lease = lease("a", Some(0));
    let flip = Arc::new(Flip { lease: lease.clone(), inner: Notes::default() });
    let holder = Arc::new(Holder { lease: lease.clone(), node: "a" });
    let mut a = Runner::new(
        spec(100),
        feed.clone() as Arc<dyn Source<Change>>,
        holder.clone(),
        Some(holder),
        flip.clone(),
        Arc::new(Manual(Mutex::new(Instant::now()))),
    );
    let nexts = steps(&mut a, 2);
    assert!(matches!(nexts[1], Next::Sleep(_)), "a refused commit pauses before looking again: {nexts:?}");
    assert_eq!(*flip.inner.seen.lock().unwrap(), (0..5).collect::<Vec<_>>());
    assert_eq!(*lease.cursor.lock().unwrap(), Some(0), "the fenced commit wrote nothing");
    assert_eq!(lease.commits.load(Ordering::SeqCst), 0);
    assert_eq!(a.progress().next(), None, "the runner let go of the work");
}

#[test]
fn a_consumer_whose_changes_are_gone_rebuilds_or_waits_and_never_skips() {
    let feed = Feed::new(50);
    feed.first.store(30, Ordering::SeqCst);
    // A purge deliverer refuses to skip: it stays at its cursor, backing off.
    let waits = Arc::new(Notes::default());
    waits.refuse_resync.store(true, Ordering::SeqCst);
    let lease_w = lease("a", Some(10));
    let mut w = runner(&feed, &lease_w, "a", &waits, 100);
    let nexts = steps(&mut w, 4);
    assert!(waits.seen.lock().unwrap().is_empty());
    assert_eq!(*lease_w.cursor.lock().unwrap(), Some(10));
    assert!(nexts[1..].iter().all(|n| matches!(n, Next::Sleep(_))), "{nexts:?}");
    // CRL regeneration rebuilds (signs every shard again) and goes on from the head.
    let rebuilds = Arc::new(Notes::default());
    let lease_r = lease("a", Some(10));
    let mut r = runner(&feed, &lease_r, "a", &rebuilds, 100);
    steps(&mut r, 4);
    assert_eq!(*rebuilds.resyncs.lock().unwrap(), vec![50]);
    assert_eq!(r.progress().next(), Some(50));
    // No cursor ever recorded: rebuild too.
    let fresh = Arc::new(Notes::default());
    let mut f = runner(&feed, &lease("a", None), "a", &fresh, 100);
    steps(&mut f, 2);
    assert_eq!(*fresh.resyncs.lock().unwrap(), vec![50]);
}

#[test]
fn a_bound_holds_back_what_may_not_be_applied_yet() {
    let feed = Feed::new(10);
    let lease = lease("a", Some(0));
    let n = Arc::new(Notes::default());
    *n.bound.lock().unwrap() = Some(4);
    let mut r = runner(&feed, &lease, "a", &n, 100);
    steps(&mut r, 3);
    assert_eq!(*n.seen.lock().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(*lease.cursor.lock().unwrap(), Some(4));
    *n.bound.lock().unwrap() = Some(100);
    steps(&mut r, 2);
    assert_eq!(*n.seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_cursor_ahead_of_this_nodes_feed_waits_for_the_feed_to_reach_it() {
    // The last holder finished up to 30; this node's replica holds 20: acting now would sign
    // from an older state than the last holder did.
    let feed = Feed::new(20);
    let lease = lease("a", Some(30));
    let n = Arc::new(Notes::default());
    let mut r = runner(&feed, &lease, "a", &n, 100);
    steps(&mut r, 3);
    assert!(n.seen.lock().unwrap().is_empty() && n.resyncs.lock().unwrap().is_empty());
    feed.head.store(35, Ordering::SeqCst);
    steps(&mut r, 3);
    assert_eq!(*n.seen.lock().unwrap(), (30..35).collect::<Vec<_>>());
}

#[test]
fn failures_back_off_doubling_to_the_limit_and_lose_nothing() {
    let feed = Feed::new(3);
    let lease = lease("a", Some(0));
    let n = Arc::new(Notes::default());
    *n.answer.lock().unwrap() = Some(Err("target down".into()));
    let mut r = runner(&feed, &lease, "a", &n, 100);
    let _ = r.step(); // takes the position
    let waits: Vec<Next> = steps(&mut r, 5);
    let ms = |m| Next::Sleep(Duration::from_millis(m));
    assert_eq!(waits, vec![ms(100), ms(200), ms(400), ms(400), ms(400)]);
    assert_eq!(r.progress().failures(), 5);
    *n.answer.lock().unwrap() = None;
    steps(&mut r, 2);
    assert_eq!(*n.seen.lock().unwrap(), vec![0, 1, 2], "nothing skipped while failing");
    assert_eq!(*lease.cursor.lock().unwrap(), Some(3));
}

#[test]
fn batches_are_the_configured_size_and_in_order() {
    let feed = Feed::new(10);
    let lease = lease("a", Some(0));
    let n = Arc::new(Notes::default());
    let mut r = runner(&feed, &lease, "a", &n, 3);
    let nexts = steps(&mut r, 6);
    assert_eq!(*n.seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(lease.commits.load(Ordering::SeqCst), 4, "one commit per batch: 3 + 3 + 3 + 1");
    assert!(matches!(nexts.last(), Some(Next::News { from: 10, .. })), "{nexts:?}");
}

#[test]
fn a_consumer_that_owes_nothing_from_before_starts_at_the_head_without_rebuilding() {
    // A purge target never delivered to: no cursor anywhere; it begins at the head, and its
    // cursor is recorded with its first batch.
    let feed = Feed::new(7);
    let lease = lease("a", None);
    let n = Arc::new(Notes::default());
    n.fresh_at_head.store(true, Ordering::SeqCst);
    let mut r = runner(&feed, &lease, "a", &n, 100);
    steps(&mut r, 2);
    assert!(n.resyncs.lock().unwrap().is_empty());
    assert!(n.seen.lock().unwrap().is_empty());
    feed.head.store(9, Ordering::SeqCst);
    steps(&mut r, 2);
    assert_eq!(*n.seen.lock().unwrap(), vec![7, 8]);
    assert_eq!(*lease.cursor.lock().unwrap(), Some(9));
    assert_eq!(*n.committed.lock().unwrap(), vec![9], "told after the durable commit, not before");
}

#[test]
fn a_feed_that_cannot_be_read_makes_caches_rebuild_and_then_wait_not_spin() {
    let feed = Feed::new(4);
    let lease = lease("a", Some(0));
    let n = Arc::new(Notes::default());
    n.read_errors_resync.store(true, Ordering::SeqCst);
    let mut r = runner(&feed, &lease, "a", &n, 100);
    let _ = r.step();
    feed.failing.store(true, Ordering::SeqCst);
    let nexts = steps(&mut r, 3);
    assert!(nexts.iter().all(|n| matches!(n, Next::Sleep(_))), "every failed read waits: {nexts:?}");
    assert_eq!(*n.resyncs.lock().unwrap(), vec![4, 4, 4], "each failed read drops what the caches hold");
    feed.failing.store(false, Ordering::SeqCst);
    feed.head.store(6, Ordering::SeqCst);
    steps(&mut r, 2);
    assert_eq!(*n.seen.lock().unwrap(), vec![4, 5]);
}
