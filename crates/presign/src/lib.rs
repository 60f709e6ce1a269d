//! The pre-signer of ocspd: signs every known certificate's responses (SHA-1 and SHA-256
//! CertIDs) ahead of need, stores them beside the status, and signs them again on the BR
//! cadence. Certificates whose status changed or that were just recorded go to the front.
//!
//! It runs on its own threads, uses every core for signing, never stops at an error (it counts
//! and logs it), and keeps no state that a crash could corrupt: what is due is derived from the
//! database each pass (a missing, stale or old response), so after a restart it simply resumes.
//! It does not serve responses; the HTTP front reads what it stores.

pub use ocsp_proto::{Cadence, CadenceError};

use ocsp_domain::ResponseStore;
use ocsp_proto::{Answer, Clock, HashAlg, IssuerKey, ResponseBuilder, Serial};
use ocsp_records::{StatusRecord, StoredResponse};
use ocsp_sign::IssuerRegistry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Certificates scanned per step of a pass.
const SCAN_CHUNK: usize = 4096;

/// Counters of the pre-signer, for metrics and `ocspctl presign`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, Clone, PartialEq, Eq)]
pub struct PresignStats {
    /// A pass is running.
    pub pass_running: bool,
    /// Certificates looked at in the current (or last) pass.
    pub pass_done: u64,
    /// Certificates in the database (estimate) when the pass started.
    pub pass_total: u64,
    /// Passes completed since start.
    pub passes: u64,
    /// Responses signed and stored since start.
    pub signed: u64,
    /// Signed responses dropped because the status changed meanwhile.
    pub superseded: u64,
    /// Failures (signing or storing) since start.
    pub errors: u64,
    /// Changed certificates waiting at the front of the queue.
    pub urgent: u64,
    /// Seconds the last completed pass took.
    pub last_pass_seconds: u64,
    /// Milliseconds the last completed pass took.
    #[serde(default)]
    pub last_pass_ms: u64,
    /// Responses signed by the last completed pass.
    #[serde(default)]
    pub last_pass_signed: u64,
}

#[derive(Default)]
struct Counters {
    pass_running: AtomicBool,
    pass_done: AtomicU64,
    pass_total: AtomicU64,
    passes: AtomicU64,
    signed: AtomicU64,
    superseded: AtomicU64,
    errors: AtomicU64,
    last_pass_seconds: AtomicU64,
    last_pass_ms: AtomicU64,
    last_pass_signed: AtomicU64,
}

#[derive(Default)]
struct Queue {
    urgent: VecDeque<(IssuerKey, Serial)>,
    /// When changed certificates last arrived, and since when some have been waiting.
    last_arrival: Option<Instant>,
    waiting_since: Option<Instant>,
    /// `Some(None)`: a pass over every issuer was asked for; `Some(Some(k))`: over one.
    pass: Option<Option<IssuerKey>>,
    stop: bool,
}

/// The pre-signing engine.
pub struct Presigner {
    store: Arc<dyn ResponseStore>,
    registry: Arc<IssuerRegistry>,
    clock: Arc<dyn Clock>,
    cadence: Cadence,
    threads: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
    counters: Counters,
    /// Fleet mode: whether this node signs now (it holds the signer lease).
    gate: std::sync::OnceLock<Gate>,
}

/// Whether this pre-signer may sign now.
pub type Gate = Arc<dyn ocsp_domain::runtime::Role>;

/// Jobs handed to a signing worker at a time.
const JOB_BATCH: usize = 512;
/// Jobs signed and stored at a time when re-signing changed certificates outside a pass
/// (larger than [`JOB_BATCH`]: in a fleet every write is a transaction with a commit, and
/// 512 halved the fleet's signing rate; 4096 holds the feed lock for about 0.1 s).
const URGENT_BATCH: usize = 4096;

/// Changed certificates waiting that make a burst (a bulk revocation in progress).
const BURST: usize = 10_000;
/// A burst has ended when no changed certificate arrived for this long.
const BURST_QUIET: Duration = Duration::from_secs(5);
/// Re-signing waits for a burst to end at most this long.
const BURST_WAIT: Duration = Duration::from_secs(120);

impl Queue {
    /// While a burst of changes is arriving (a bulk revocation, batch after batch), re-signing
    /// them waits, at most [`BURST_WAIT`]: storing the revocations comes first, and until they
    /// are re-signed every node answers them revoked by live signing (cached in its memory
    /// tier). Returns how long to wait yet, or `None` to sign now.
    fn burst_wait(&self) -> Option<Duration> {
        if self.urgent.len() < BURST {
            return None;
        }
        let (Some(last), Some(since)) = (self.last_arrival, self.waiting_since) else { return None };
        let left = BURST_QUIET.saturating_sub(last.elapsed()).min(BURST_WAIT.saturating_sub(since.elapsed()));
        (!left.is_zero()).then_some(left)
    }
}

/// One response to sign.
#[derive(Clone)]
struct Job {
    issuer: IssuerKey,
    serial: Serial,
    status: StatusRecord,
    alg: HashAlg,
}

impl Presigner {
    /// A pre-signer over `store` for the issuers in `registry`, signing on `threads` threads.
    pub fn new(
        store: Arc<dyn ResponseStore>,
        registry: Arc<IssuerRegistry>,
        clock: Arc<dyn Clock>,
        cadence: Cadence,
        threads: usize,
    ) -> Arc<Presigner> {
        Arc::new(Presigner {
            store,
            registry,
            clock,
            cadence,
            threads: threads.max(1),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            counters: Counters::default(),
            gate: std::sync::OnceLock::new(),
        })
    }

    /// Signs only while `gate` says so (fleet mode: while this node holds the signer lease).
    /// While closed, changed certificates are left to the node that signs, and the first
    /// moment it opens starts a pass over everything.
    pub fn set_gate(&self, gate: Gate) {
        let _ = self.gate.set(gate);
    }

    fn open(&self) -> bool {
        self.gate.get().is_none_or(|g| g.held())
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Puts certificates at the front of the queue (their status changed, or they are new).
    pub fn urgent(&self, issuer: &IssuerKey, serials: &[Serial]) {
        let mut q = self.queue();
        let now = Instant::now();
        if q.urgent.is_empty() {
            q.waiting_since = Some(now);
        }
        q.last_arrival = Some(now);
        q.urgent.extend(serials.iter().map(|s| (*issuer, s.clone())));
        self.wake.notify_all();
    }

    /// Asks for a pass over every issuer (`None`) or one.
    pub fn request_pass(&self, issuer: Option<IssuerKey>) {
        let mut q = self.queue();
        q.pass = match (q.pass, issuer) {
            (Some(None), _) | (_, None) => Some(None),
            (_, Some(k)) => Some(Some(k)),
        };
        self.wake.notify_all();
    }

    /// Stops the background loop after its current step.
    pub fn stop(&self) {
        self.queue().stop = true;
        self.wake.notify_all();
    }

    /// Current counters.
    pub fn stats(&self) -> PresignStats {
        let c = &self.counters;
        PresignStats {
            pass_running: c.pass_running.load(Ordering::Relaxed),
            pass_done: c.pass_done.load(Ordering::Relaxed),
            pass_total: c.pass_total.load(Ordering::Relaxed),
            passes: c.passes.load(Ordering::Relaxed),
            signed: c.signed.load(Ordering::Relaxed),
            superseded: c.superseded.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            urgent: self.queue().urgent.len() as u64,
            last_pass_seconds: c.last_pass_seconds.load(Ordering::Relaxed),
            last_pass_ms: c.last_pass_ms.load(Ordering::Relaxed),
            last_pass_signed: c.last_pass_signed.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text for these counters.
    pub fn render_metrics(&self) -> String {
        let s = self.stats();
        let mut out = String::new();
        for (name, help, kind, value) in [
            ("ocspd_presign_signed_total", "Responses pre-signed and stored.", "counter", s.signed),
            (
                "ocspd_presign_superseded_total",
                "Pre-signed responses dropped because the status changed while signing.",
                "counter",
                s.superseded,
            ),
            ("ocspd_presign_errors_total", "Pre-signing failures.", "counter", s.errors),
            ("ocspd_presign_passes_total", "Completed pre-signing passes.", "counter", s.passes),
            (
                "ocspd_presign_urgent_queue",
                "Changed certificates waiting at the front of the queue.",
                "gauge",
                s.urgent,
            ),
            ("ocspd_presign_pass_running", "1 while a pass runs.", "gauge", u64::from(s.pass_running)),
            ("ocspd_presign_pass_done", "Certificates looked at in the current or last pass.", "gauge", s.pass_done),
            (
                "ocspd_presign_pass_total",
                "Certificates in the database when the pass started (estimate).",
                "gauge",
                s.pass_total,
            ),
            ("ocspd_presign_last_pass_seconds", "Duration of the last completed pass.", "gauge", s.last_pass_seconds),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        out
    }

    /// True when the stored response must be signed (again).
    fn due(&self, stored: Option<&StoredResponse>, status: &StatusRecord, now: i64) -> bool {
        match stored {
            None => true,
            Some(r) => !r.signed_from(status) || now >= self.cadence.refresh_at(r.this_update, r.next_update),
        }
    }

    /// Signs and stores the due responses of these certificates, on every thread.
    /// The responses of these certificates that are due.
    fn jobs_for(&self, entries: Vec<(IssuerKey, Serial, StatusRecord)>) -> Vec<Job> {
        if entries.is_empty() {
            return Vec::new();
        }
        let now = self.clock.now();
        let keys: Vec<ocsp_proto::AnswerKey> = entries
            .iter()
            .flat_map(|(i, s, _)| HashAlg::ALL.into_iter().map(move |a| ocsp_proto::AnswerKey::new(*i, s.clone(), a)))
            .collect();
        let stored = match self.store.responses(&keys) {
            Ok(r) => r,
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "reading stored responses");
                return Vec::new();
            }
        };
        let mut jobs = Vec::new();
        for (n, (issuer, serial, status)) in entries.into_iter().enumerate() {
            for (j, alg) in HashAlg::ALL.into_iter().enumerate() {
                if self.due(stored[n * 2 + j].as_ref(), &status, now) {
                    jobs.push(Job { issuer, serial: serial.clone(), status, alg });
                }
            }
        }
        jobs
    }

    /// Signs and stores the due responses of changed certificates. One core is left to the
    /// admin API and the HTTP front: while a bulk revocation is being written, acknowledging it
    /// durably matters more than re-signing (answers are signed live meanwhile, and say revoked
    /// from the moment the revocation is acknowledged).
    fn process(&self, entries: Vec<(IssuerKey, Serial, StatusRecord)>) {
        let jobs = self.jobs_for(entries);
        let workers = self.threads.saturating_sub(1).max(1);
        // Stored a batch at a time: a write never holds the store (in a fleet, the shared
        // feed's lock) long enough to delay a revocation much.
        let parts: Vec<&[Job]> = jobs.chunks(URGENT_BATCH).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..workers.min(parts.len()) {
                scope.spawn(|| {
                    while let Some(part) = parts.get(next.fetch_add(1, Ordering::Relaxed)) {
                        self.sign_chunk(part);
                    }
                });
            }
        });
    }

    /// Takes changed certificates off the front of the queue, with their current status.
    fn take_urgent(&self) -> Option<Vec<(IssuerKey, Serial, StatusRecord)>> {
        let batch: Vec<(IssuerKey, Serial)> = {
            let mut q = self.queue();
            if q.burst_wait().is_some() {
                return None;
            }
            let n = q.urgent.len().min(SCAN_CHUNK * 4);
            q.urgent.drain(..n).collect()
        };
        if batch.is_empty() {
            return None;
        }
        match self.store.statuses(&batch) {
            Ok(statuses) => {
                Some(batch.into_iter().zip(statuses).filter_map(|((i, s), st)| st.map(|st| (i, s, st))).collect())
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "reading statuses of changed certificates");
                Some(Vec::new())
            }
        }
    }

    fn sign_chunk(&self, jobs: &[Job]) {
        let now = self.clock.now();
        let (this_update, next_update) = self.cadence.window(now);
        let mut out = Vec::with_capacity(jobs.len());
        // Which identity signed for each issuer in this chunk (by its key hash).
        let mut signed_by: Vec<(IssuerKey, Vec<u8>)> = Vec::new();
        for job in jobs {
            let Some(entry) = self.registry.by_key(&job.issuer) else {
                continue; // retired or unknown issuer: nothing is served for it
            };
            if !signed_by.iter().any(|(k, _)| *k == job.issuer) {
                signed_by.push((job.issuer, entry.identity.key_hash().to_vec()));
            }
            let builder = ResponseBuilder::new(entry.identity.key_hash(), now).answer(Answer {
                cert_id: entry.hashes.cert_id(job.alg, job.serial.clone()),
                status: job.status.cert_status(),
                this_update,
                next_update,
            });
            match entry.identity.sign(&builder) {
                Ok(signed) => out.push((
                    job.issuer,
                    job.serial.clone(),
                    job.alg,
                    StoredResponse {
                        this_update,
                        next_update,
                        produced_at: now,
                        source: job.status.encode(),
                        der: signed.der,
                    },
                )),
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(issuer = %entry.name, serial = %job.serial, error = %e, "pre-signing failed");
                }
            }
        }
        // Written only if the identity that signed is still the one that signs (a promotion in
        // the meantime deleted the issuer's responses; these must not come back).
        let current = |k: &IssuerKey| {
            let used = signed_by.iter().find(|(i, _)| i == k).map(|(_, h)| h.as_slice());
            self.registry.by_key(k).is_some_and(|e| Some(e.identity.key_hash()) == used)
        };
        ocsp_domain::failpoint::hit("presign.before_store");
        match self.store.put_responses_checked(&out, &current) {
            Ok(written) => {
                self.counters.signed.fetch_add(written as u64, Ordering::Relaxed);
                self.counters.superseded.fetch_add((out.len() - written) as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "storing pre-signed responses");
            }
        }
    }

    /// Signs what waits at the front of the queue (a batch at a time). Returns 0 when it took
    /// nothing: the queue was empty, or a burst is still arriving (see `Queue::burst_wait`).
    pub fn drain_urgent(&self) -> usize {
        match self.take_urgent() {
            None => 0,
            Some(entries) => {
                self.process(entries);
                self.queue().urgent.len() + 1
            }
        }
    }

    /// One pass over every certificate (of one issuer, or all), signing what is due; changed
    /// certificates are served first between steps. This thread reads and decides what is
    /// due while `threads` workers sign, so the signers never wait on the database.
    pub fn run_pass(&self, issuer: Option<IssuerKey>) {
        let started = Instant::now();
        let c = &self.counters;
        let signed_before = c.signed.load(Ordering::Relaxed);
        c.pass_running.store(true, Ordering::Relaxed);
        c.pass_done.store(0, Ordering::Relaxed);
        c.pass_total.store(self.store.estimated_statuses(), Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Job>>(self.threads * 2);
        let rx = Mutex::new(rx);
        std::thread::scope(|scope| {
            for _ in 0..self.threads {
                scope.spawn(|| loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match next {
                        Ok(jobs) => self.sign_chunk(&jobs),
                        Err(_) => break,
                    }
                });
            }
            let send = |jobs: Vec<Job>| {
                for part in jobs.chunks(JOB_BATCH) {
                    // Workers only stop when this sender is dropped, so sending cannot fail.
                    let _ = tx.send(part.to_vec());
                }
            };
            let mut cursor: Option<ocsp_records::StatusCursor> = issuer.map(ocsp_records::StatusCursor::Issuer);
            loop {
                while let Some(entries) = self.take_urgent() {
                    send(self.jobs_for(entries));
                }
                // A burst of changes is arriving (a bulk revocation): the pass would re-sign
                // them as it meets them, so it waits with the rest (see `Queue::burst_wait`).
                let stop = loop {
                    let (stop, wait) = {
                        let q = self.queue();
                        (q.stop, q.burst_wait())
                    };
                    match wait {
                        Some(w) if !stop => std::thread::sleep(w.min(Duration::from_millis(200))),
                        _ => break stop,
                    }
                };
                if stop {
                    break;
                }
                let chunk = match self.store.scan_statuses(cursor.as_ref(), SCAN_CHUNK) {
                    Ok(c) => c,
                    Err(e) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "scanning statuses");
                        break;
                    }
                };
                let Some(last) = chunk.last() else { break };
                cursor = Some(ocsp_records::StatusCursor::After(last.issuer, last.serial.clone()));
                let n = chunk.len();
                let mut past_issuer = false;
                let entries: Vec<_> = chunk
                    .into_iter()
                    .filter(|e| match issuer {
                        Some(k) if e.issuer != k => {
                            past_issuer = true;
                            false
                        }
                        _ => true,
                    })
                    .map(|e| (e.issuer, e.serial, e.status))
                    .collect();
                send(self.jobs_for(entries));
                c.pass_done.fetch_add(n as u64, Ordering::Relaxed);
                if past_issuer || n < SCAN_CHUNK {
                    break;
                }
            }
            drop(tx);
        });
        c.passes.fetch_add(1, Ordering::Relaxed);
        c.last_pass_seconds.store(started.elapsed().as_secs(), Ordering::Relaxed);
        c.last_pass_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let signed = c.signed.load(Ordering::Relaxed) - signed_before;
        c.last_pass_signed.store(signed, Ordering::Relaxed);
        c.pass_running.store(false, Ordering::Relaxed);
    }

    /// Runs the pre-signer until [`Presigner::stop`]: changed certificates first, and a pass
    /// over everything at start, every `interval`, and when asked.
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        me.request_pass(None);
        std::thread::Builder::new().name("presign".into()).spawn(move || {
            let mut last_pass = Instant::now();
            loop {
                if !me.open() {
                    let mut q = me.queue();
                    if q.stop {
                        return;
                    }
                    q.urgent.clear();
                    q.pass = Some(None);
                    drop(q);
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                let pass = {
                    let mut q = me.queue();
                    while !q.stop
                        && (q.urgent.is_empty() || q.burst_wait().is_some())
                        && q.pass.is_none()
                        && last_pass.elapsed() < interval
                    {
                        let mut wait = interval.saturating_sub(last_pass.elapsed()).min(Duration::from_secs(1));
                        if let Some(burst) = q.burst_wait() {
                            wait = wait.min(burst);
                        }
                        q = match me.wake.wait_timeout(q, wait) {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        };
                    }
                    if q.stop {
                        return;
                    }
                    if q.urgent.is_empty() || q.burst_wait().is_some() {
                        Some(q.pass.take().unwrap_or(None))
                    } else {
                        None
                    }
                };
                match pass {
                    None => {
                        me.drain_urgent();
                    }
                    Some(issuer) => {
                        me.run_pass(issuer);
                        last_pass = Instant::now();
                    }
                }
            }
        })
    }
}

/// The pre-signer follows the change feed: changed and new certificates go to the front of
/// its queue (an issuer whose signer changed is re-signed by the pass the promotion asks for).
impl ocsp_domain::Follower for Presigner {
    fn apply(&self, change: &ocsp_records::Change) {
        if change.changes_answers() && !change.issuer_wide() {
            self.urgent(&change.issuer, &change.serials);
        }
    }

    fn reset(&self) {
        self.request_pass(None);
    }
}

#[cfg(test)]
mod tests;
