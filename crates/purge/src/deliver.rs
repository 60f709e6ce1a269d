use crate::config::{fill, PurgeConfig, TargetConfig, VarnishMode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ocsp_domain::runtime::{Applied, Consumer, Cursor, Kind, Read, RealTime, Retry, Runner, Runtime, Source, Spec};
use ocsp_domain::ChangeFeed;
use ocsp_records::Change;
use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type HttpClient = Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

/// Changes read from the feed at a time.
const READ_BATCH: usize = 256;
/// The most of a target's answer that is read (for the error message); the rest is dropped.
const MAX_ANSWER_BYTES: usize = 4096;
/// Undeliverable tags kept for `ocspctl purge status`.
const MAX_SHOWN: usize = 1000;
/// Backoff between failed attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One target's delivery state, for metrics and `ocspctl purge status`.
#[derive(Debug, Default)]
struct State {
    last_error: Option<String>,
    last_error_at: Option<i64>,
    last_success_at: Option<i64>,
    oldest_pending: Option<i64>,
    retry_in_ms: u64,
    /// Tags the target refused even alone (oldest first, at most [`MAX_SHOWN`]).
    undeliverable: Vec<PendingCert>,
}

/// Why an attempt failed.
#[derive(Debug)]
struct SendError {
    message: String,
    /// The target said the request is too large (or malformed, as Varnish says of an
    /// over-long header): a smaller one may pass.
    too_large: bool,
}

impl SendError {
    fn other(message: String) -> SendError {
        SendError { message, too_large: false }
    }
}

/// 400 (Varnish's answer to a header over `http_req_hdr_len`), 413, 414 and 431: the request
/// itself is refused, so splitting it may help; anything else is retried as it is.
fn refused_as_too_large(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 414 | 431)
}

/// One tag to purge and the change it stands for.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) text: String,
    issuer: ocsp_proto::IssuerKey,
    serial: Option<ocsp_proto::Serial>,
    since: i64,
}

impl Tag {
    fn pending(&self) -> PendingCert {
        PendingCert {
            issuer: self.issuer.to_hex(),
            serial: self.serial.as_ref().map(|s| s.to_string()),
            since: self.since,
        }
    }

    fn describe(&self) -> String {
        self.serial.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "all (issuer-wide)".into())
    }
}

/// One purge request: its tags, and for peers the event they come from.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub(crate) tags: Vec<Tag>,
    peer_event: Option<Change>,
}

impl Batch {
    /// Bytes of the tags joined by one separator.
    pub(crate) fn bytes(&self) -> usize {
        self.tags.iter().map(|t| t.text.len() + 1).sum::<usize>().saturating_sub(1)
    }

    fn texts(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.text.clone()).collect()
    }

    fn split(self) -> (Batch, Batch) {
        let mut first = self.tags;
        let second = first.split_off(first.len() / 2);
        (Batch { tags: first, peer_event: None }, Batch { tags: second, peer_event: None })
    }
}

/// Splits `events` into requests within the target's limits: at most `max_tags` tags and
/// `max_bytes` bytes of tags each (a single tag over the limit goes alone). Peers get one
/// request per event.
pub(crate) fn plan(config: &TargetConfig, events: &[Change]) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    if matches!(config, TargetConfig::Peer { .. }) {
        for e in events {
            let tags = tags_of(e);
            out.push(Batch { tags, peer_event: Some(e.clone()) });
        }
        return out;
    }
    let (max_tags, max_bytes) = config.limits();
    let mut current = Batch { tags: Vec::new(), peer_event: None };
    let mut bytes = 0usize;
    for tag in events.iter().flat_map(tags_of) {
        let full = current.tags.len() >= max_tags || bytes + 1 + tag.text.len() > max_bytes;
        if !current.tags.is_empty() && full {
            out.push(std::mem::replace(&mut current, Batch { tags: Vec::new(), peer_event: None }));
        }
        // Bytes of the tags joined by one separator, as `Batch::bytes` counts them.
        bytes = if current.tags.is_empty() { tag.text.len() } else { bytes + 1 + tag.text.len() };
        current.tags.push(tag);
    }
    if !current.tags.is_empty() {
        out.push(current);
    }
    out
}

/// The tags to purge for one change: the issuer's tag for an issuer-wide event, else one
/// tag per certificate; the tags ocspd puts in `Cache-Tag` and `Surrogate-Key`.
fn tags_of(event: &Change) -> Vec<Tag> {
    if event.issuer_wide() {
        vec![Tag { text: event.issuer.cache_tag(), issuer: event.issuer, serial: None, since: event.time }]
    } else if let Some(shard) = event.crl_shard() {
        vec![Tag { text: event.issuer.crl_cache_tag(shard), issuer: event.issuer, serial: None, since: event.time }]
    } else {
        event
            .serials
            .iter()
            .map(|s| Tag {
                text: event.issuer.cert_cache_tag(s),
                issuer: event.issuer,
                serial: Some(s.clone()),
                since: event.time,
            })
            .collect()
    }
}

struct Target {
    config: TargetConfig,
    token: Option<String>,
    /// The first change not yet accepted by the target.
    cursor: AtomicU64,
    /// The first change not yet accepted, as durably recorded (what trimming may pass).
    durable: AtomicU64,
    sent: AtomicU64,
    failures: AtomicU64,
    /// Requests split after a target refused them as too large.
    splits: AtomicU64,
    /// Tags refused even alone, skipped.
    undeliverable: AtomicU64,
    /// Sum and count of delivery delays (event time to acceptance), milliseconds.
    delay_ms_sum: AtomicU64,
    delay_count: AtomicU64,
    delay_ms_max: AtomicU64,
    state: Mutex<State>,
}

/// What `ocspctl purge status` shows of a target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// Name.
    pub name: String,
    /// varnish-ban, varnish-xkey, http or peer.
    pub kind: String,
    /// Outbox events not yet accepted.
    pub pending_events: u64,
    /// Certificates (or whole issuers) not yet purged there, oldest first, at most 1,000.
    pub pending: Vec<PendingCert>,
    /// Seconds since the oldest pending change (0 when nothing is pending).
    pub lag_seconds: i64,
    /// Purge requests accepted.
    pub sent: u64,
    /// Failed attempts.
    pub failures: u64,
    /// The last failure, if any since the last success.
    pub last_error: Option<String>,
    /// When the target last accepted a purge.
    pub last_success_at: Option<i64>,
    /// The wait before the next attempt, when failing.
    pub retry_in_ms: u64,
    /// Changes the target refused even alone: skipped, so their answers stay cached there
    /// until they expire (at most 1,000 shown).
    pub undeliverable: Vec<PendingCert>,
}

/// A change not yet purged at a target.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PendingCert {
    /// The issuer key (hex).
    pub issuer: String,
    /// The serial (hex), or none for every answer of the issuer.
    pub serial: Option<String>,
    /// When the change was made.
    pub since: i64,
}

/// Why the purge fan-out cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A peer's token file does not read.
    #[error("target {target}: {path}: {reason}")]
    TokenFile {
        /// The target.
        target: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The database does not give a target's cursor.
    #[error("purge cursor: {0}")]
    Store(#[from] ocsp_records::StoreError),
    /// The TLS client (for HTTPS purge APIs) cannot be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// The purge fan-out.
pub struct Purger {
    feed: Arc<dyn ChangeFeed>,
    targets: Vec<Arc<Target>>,
    client: HttpClient,
    /// The head as the in-process followers last saw it: wakes the deliverers.
    wake: Arc<Wake>,
    /// Where each target's cursor lives (the feed's own cursors unless set).
    cursors: std::sync::OnceLock<CursorFor>,
    /// The runtime the deliverers run on, when [`Purger::spawn`] started one of its own.
    own_runtime: std::sync::OnceLock<Arc<Runtime>>,
    /// The tokio runtime the deliveries' HTTP exchanges run on.
    io: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Set by [`Purger::stop`].
    stopping: std::sync::atomic::AtomicBool,
    now: Box<dyn Fn() -> i64 + Send + Sync>,
    /// The deadline of one attempt, whole.
    timeout: Duration,
    /// Bumped, and `progress_cv` notified, whenever a cursor moves or an attempt fails.
    progress: Mutex<u64>,
    progress_cv: std::sync::Condvar,
    /// Fleet mode: whether this node delivers now (it holds the purger lease).
    gate: std::sync::OnceLock<Gate>,
    /// The first change whose purge may not go out yet (see [`Purger::set_bound`]).
    bound: std::sync::OnceLock<Bound>,
}

/// The first change not yet applied everywhere an edge may refetch from.
pub type Bound = Arc<dyn Fn() -> Result<u64, String> + Send + Sync>;

/// Whether this node may deliver purges now (fleet mode: it holds the purger lease).
pub type Gate = Arc<dyn ocsp_domain::runtime::Role>;

impl Purger {
    /// Prepares delivery to the targets of `config` (reading peer tokens now).
    pub fn new(feed: Arc<dyn ChangeFeed>, config: &PurgeConfig) -> Result<Arc<Purger>, SetupError> {
        let mut targets = Vec::new();
        for t in &config.targets {
            let token = match t {
                TargetConfig::Peer { token_file, .. } => Some(
                    ocsp_sign::files::read_operator_file(token_file, ocsp_sign::files::MAX_OPERATOR_FILE)
                        .map_err(|e| SetupError::TokenFile {
                            target: t.name().to_string(),
                            path: token_file.display().to_string(),
                            reason: e.to_string(),
                        })?
                        .trim()
                        .to_string(),
                ),
                _ => None,
            };
            // Read again from the feed before this node delivers (`run`); unknown (0) until then.
            let cursor = feed.cursor(t.name()).unwrap_or_else(|e| {
                tracing::warn!(target = %t.name(), error = %e, "purge cursor unavailable; read again before delivering");
                0
            });
            targets.push(Arc::new(Target {
                config: t.clone(),
                token,
                cursor: AtomicU64::new(cursor),
                durable: AtomicU64::new(cursor),
                sent: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                splits: AtomicU64::new(0),
                undeliverable: AtomicU64::new(0),
                delay_ms_sum: AtomicU64::new(0),
                delay_count: AtomicU64::new(0),
                delay_ms_max: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| SetupError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        let wake = Arc::new(Wake { head: Mutex::new(feed.head()), moved: std::sync::Condvar::new() });
        Ok(Arc::new(Purger {
            feed,
            targets,
            client,
            wake,
            cursors: std::sync::OnceLock::new(),
            own_runtime: std::sync::OnceLock::new(),
            io: std::sync::OnceLock::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            now: Box::new(now_secs),
            timeout: config.timeout(),
            progress: Mutex::new(0),
            progress_cv: std::sync::Condvar::new(),
            gate: std::sync::OnceLock::new(),
            bound: std::sync::OnceLock::new(),
        }))
    }

    /// Delivers only while `gate` says so (fleet mode: while this node holds the purger
    /// lease). While closed, each target's cursor follows the shared one, so a caller waiting
    /// for its purge learns when the delivering node sent it, and this node goes on from
    /// there the moment the gate opens.
    pub fn set_gate(&self, gate: Gate) {
        let _ = self.gate.set(gate);
    }

    /// Delivers the purge of a change only once `bound` is past it: once every origin an edge
    /// may refetch from has applied it (this process's followers on a single node; every
    /// node that may answer in a fleet). A purge delivered earlier would let the edge fetch
    /// and cache the answer from before the change again.
    pub fn set_bound(&self, bound: Bound) {
        let _ = self.bound.set(bound);
    }

    /// Keeps each target's cursor where `cursors` says (fleet mode: in PostgreSQL with the
    /// purger lease, so a node that lost the lease writes none). Call before spawning.
    pub fn set_cursors(&self, cursors: CursorFor) {
        let _ = self.cursors.set(cursors);
    }

    /// Starts one deliverer per target on a feed-consumer runtime of its own (stopped when the
    /// purger is dropped); call within a tokio runtime, which the HTTP exchanges use.
    pub fn spawn(self: &Arc<Self>) {
        let runtime = self.own_runtime.get_or_init(Runtime::new).clone();
        if let Err(e) = self.spawn_on(&runtime) {
            tracing::error!(error = %e, "cannot start the purge deliverers");
        }
    }

    /// Starts one deliverer per target as consumers of `runtime`: named `purge/<target>`,
    /// each with its durable cursor, the purger role in fleet mode, and the bound. Call within
    /// a tokio runtime, which the HTTP exchanges use.
    pub fn spawn_on(self: &Arc<Self>, runtime: &Runtime) -> std::io::Result<()> {
        let io = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let _ = self.io.set(io);
        let source: Arc<dyn Source<Change>> =
            Arc::new(PurgeSource { feed: self.feed.clone(), wake: self.wake.clone() });
        for target in &self.targets {
            let name = target.config.name().to_string();
            let cursor: Arc<dyn Cursor> = match self.cursors.get() {
                Some(make) => make(&name),
                None => Arc::new(ocsp_domain::runtime::FeedCursor { feed: self.feed.clone(), name: name.clone() }),
            };
            let role = self.gate.get().cloned();
            let kind = if role.is_some() { Kind::Role } else { Kind::Durable };
            let mut spec = Spec::new(format!("purge/{name}"), kind);
            spec.batch = READ_BATCH;
            spec.retry = Retry { first: Duration::from_secs(1), max: BACKOFF_MAX.min(Duration::from_secs(5)) };
            spec.idle = Duration::from_secs(5);
            let deliverer = Arc::new(Deliverer { purger: Arc::downgrade(self), target: target.clone() });
            let runner = Runner::new(spec, source.clone(), cursor, role, deliverer, Arc::new(RealTime));
            runtime.spawn(Box::new(runner))?;
        }
        // Nothing to deliver to: keep the outbox from growing.
        if self.targets.is_empty() {
            let mut spec = Spec::new("purge/outbox", Kind::InProcess);
            spec.idle = Duration::from_secs(5);
            let head = self.feed.head();
            let runner = Runner::new(
                spec,
                source,
                Arc::new(ocsp_domain::runtime::VolatileCursor::at(head)),
                None,
                Arc::new(Outbox { feed: self.feed.clone() }),
                Arc::new(RealTime),
            );
            runtime.spawn(Box::new(runner))?;
        }
        Ok(())
    }

    /// Sends `events` to `target`, retrying each request until it is accepted. A request the
    /// target refuses as too large is split in halves; a single tag still refused is reported
    /// as undeliverable and skipped, so it never holds up the events behind it.
    async fn deliver(&self, target: &Target, events: &[Change]) -> bool {
        let mut queue: std::collections::VecDeque<Batch> = plan(&target.config, events).into();
        while let Some(batch) = queue.pop_front() {
            let mut backoff = BACKOFF_FIRST;
            loop {
                match self.send(target, &batch).await {
                    Ok(()) => {
                        ocsp_domain::failpoint::hit("purge.after_send");
                        target.sent.fetch_add(1, Ordering::Relaxed);
                        let mut st = self.state(target);
                        st.last_error = None;
                        st.last_success_at = Some((self.now)());
                        st.retry_in_ms = 0;
                        break;
                    }
                    Err(e) if e.too_large && batch.tags.len() > 1 => {
                        target.failures.fetch_add(1, Ordering::Relaxed);
                        target.splits.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            target = %target.config.name(),
                            error = %e.message,
                            tags = batch.tags.len(),
                            bytes = batch.bytes(),
                            "purge refused as too large; sending it again in two halves"
                        );
                        let (first, second) = batch.split();
                        queue.push_front(second);
                        queue.push_front(first);
                        break;
                    }
                    Err(e) if e.too_large => {
                        target.failures.fetch_add(1, Ordering::Relaxed);
                        target.undeliverable.fetch_add(1, Ordering::Relaxed);
                        let tag = &batch.tags[0];
                        tracing::error!(
                            target = %target.config.name(),
                            error = %e.message,
                            tag = %tag.text,
                            "purge can never be accepted by this target (refused even alone); skipped so the purges behind it go on. Its answers stay cached there until they expire: purge them by hand"
                        );
                        let mut st = self.state(target);
                        if st.undeliverable.len() < MAX_SHOWN {
                            st.undeliverable.push(tag.pending());
                        }
                        st.last_error = Some(format!("undeliverable: {}", e.message));
                        st.last_error_at = Some((self.now)());
                        break;
                    }
                    Err(e) => {
                        target.failures.fetch_add(1, Ordering::Relaxed);
                        let certs: Vec<String> = batch.tags.iter().map(|t| t.describe()).collect();
                        let shown: Vec<&str> = certs.iter().take(20).map(String::as_str).collect();
                        tracing::warn!(
                            target = %target.config.name(),
                            error = %e.message,
                            serials = %format!("{}{}", shown.join(","), if certs.len() > 20 { format!(" and {} more", certs.len() - 20) } else { String::new() }),
                            retry_in_ms = backoff.as_millis() as u64,
                            "purge not accepted; it stays queued and will be retried"
                        );
                        {
                            let mut st = self.state(target);
                            st.last_error = Some(e.message);
                            st.last_error_at = Some((self.now)());
                            st.retry_in_ms = backoff.as_millis() as u64;
                        }
                        self.progressed();
                        // Stopping: what was not accepted stays in the outbox (the cursor has
                        // not moved), for the next start or the next purger.
                        let step = Duration::from_millis(100);
                        let mut waited = Duration::ZERO;
                        while waited < backoff {
                            if self.stopping.load(Ordering::SeqCst) {
                                return false;
                            }
                            tokio::time::sleep(step.min(backoff - waited)).await;
                            waited += step;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
        let now_ms = (self.now)() * 1000;
        for e in events {
            let delay = (now_ms - e.time * 1000).max(0) as u64;
            target.delay_ms_sum.fetch_add(delay, Ordering::Relaxed);
            target.delay_count.fetch_add(1, Ordering::Relaxed);
            target.delay_ms_max.fetch_max(delay, Ordering::Relaxed);
        }
        true
    }

    /// Stops delivering: a delivery waiting to retry gives up (its changes stay in the
    /// outbox); call before stopping the runtime the deliverers run on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// One attempt: the whole exchange (connect, send, answer and body) within
    /// the configured deadline, and at most [`MAX_ANSWER_BYTES`] of the answer read.
    async fn send(&self, target: &Target, batch: &Batch) -> Result<(), SendError> {
        let request = build_request(target, batch).map_err(SendError::other)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("{e}: {}", source_chain(&e)))?;
            let status = response.status();
            // A target may stream a body forever or send it a byte at a time: read a little,
            // within the same deadline, and drop the rest with the connection.
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SendError::other(format!("no complete answer within {:.1} s", self.timeout.as_secs_f64())))?
            .map_err(SendError::other)?;
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
            Err(SendError { message: format!("HTTP {status}: {text}"), too_large: refused_as_too_large(status) })
        }
    }

    fn state<'a>(&self, target: &'a Target) -> std::sync::MutexGuard<'a, State> {
        target.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trim(&self) {
        let min = self.targets.iter().map(|t| t.durable.load(Ordering::SeqCst)).min();
        if let Some(min) = min {
            if let Err(e) = self.feed.trim(min) {
                tracing::warn!(error = %e, "cannot trim the change feed");
            }
        }
    }

    /// Waits until every target that is not failing has accepted every event before `next`,
    /// at most `timeout`. Returns the names of the targets that have not (failing ones
    /// included), so a caller can say where a purge is still pending.
    pub fn wait_delivered(&self, next: u64, timeout: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let behind: Vec<&Arc<Target>> =
                self.targets.iter().filter(|t| t.cursor.load(Ordering::SeqCst) < next).collect();
            let waiting = behind.iter().any(|t| self.state(t).last_error.is_none());
            let now = std::time::Instant::now();
            if !waiting || now >= deadline {
                return behind.iter().map(|t| t.config.name().to_string()).collect();
            }
            // Woken when a target's cursor moves or an attempt fails (`progressed`).
            seen = self.progress_cv.wait_timeout(seen, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Wakes the callers of [`Purger::wait_delivered`]: a cursor moved or an attempt failed.
    fn progressed(&self) {
        let mut n = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.wrapping_add(1);
        self.progress_cv.notify_all();
    }

    /// Each target's name and the first change it has not been sent.
    pub fn cursors(&self) -> Vec<(String, u64)> {
        self.targets.iter().map(|t| (t.config.name().to_string(), t.cursor.load(Ordering::SeqCst))).collect()
    }

    /// Every target's state, with the changes still pending there.
    pub fn status(&self) -> Vec<TargetStatus> {
        let now = (self.now)();
        self.targets
            .iter()
            .map(|t| {
                let cursor = t.cursor.load(Ordering::SeqCst);
                let events: Vec<Change> = self
                    .feed
                    .changes(cursor, 1000)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(Change::needs_purge)
                    .collect();
                let mut pending = Vec::new();
                'outer: for e in &events {
                    let issuer = e.issuer.to_hex();
                    if e.issuer_wide() {
                        pending.push(PendingCert { issuer: issuer.clone(), serial: None, since: e.time });
                    }
                    if let Some(shard) = e.crl_shard() {
                        let serial = Some(format!("CRL shard {shard}"));
                        pending.push(PendingCert { issuer: issuer.clone(), serial, since: e.time });
                        continue;
                    }
                    for s in &e.serials {
                        if pending.len() >= 1000 {
                            break 'outer;
                        }
                        pending.push(PendingCert {
                            issuer: issuer.clone(),
                            serial: Some(s.to_string()),
                            since: e.time,
                        });
                    }
                }
                let st = self.state(t);
                TargetStatus {
                    name: t.config.name().to_string(),
                    kind: t.config.kind().to_string(),
                    pending_events: self.feed.head().saturating_sub(cursor),
                    lag_seconds: events.first().map(|e| (now - e.time).max(0)).unwrap_or(0),
                    pending,
                    sent: t.sent.load(Ordering::Relaxed),
                    failures: t.failures.load(Ordering::Relaxed),
                    last_error: st.last_error.clone(),
                    last_success_at: st.last_success_at,
                    retry_in_ms: st.retry_in_ms,
                    undeliverable: st.undeliverable.clone(),
                }
            })
            .collect()
    }

    /// Prometheus lines: outbox depth and lag, sent and failed purges, delivery delay.
    pub fn render_metrics(&self) -> String {
        let now = (self.now)();
        let head = self.feed.head();
        let depth = |t: &Target| head.saturating_sub(t.cursor.load(Ordering::SeqCst));
        let mut s = String::new();
        let mut family = |name: &str, help: &str, kind: &str, value: &dyn Fn(&Target) -> String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for t in &self.targets {
                let _ = writeln!(s, "{name}{{target=\"{}\"}} {}", t.config.name(), value(t));
            }
        };
        family("ocspd_purge_outbox_depth", "Purge events not yet accepted by a target.", "gauge", &|t| {
            depth(t).to_string()
        });
        family(
            "ocspd_purge_lag_seconds",
            "Age of the oldest change a target has not yet accepted (0 when none).",
            "gauge",
            &|t| {
                let oldest = self.state(t).oldest_pending;
                let lag = if depth(t) == 0 { 0 } else { oldest.map(|o| (now - o).max(0)).unwrap_or(0) };
                lag.to_string()
            },
        );
        family("ocspd_purge_requests_total", "Purge requests accepted by each target.", "counter", &|t| {
            t.sent.load(Ordering::Relaxed).to_string()
        });
        family("ocspd_purge_failures_total", "Purge attempts that failed (each is retried).", "counter", &|t| {
            t.failures.load(Ordering::Relaxed).to_string()
        });
        family(
            "ocspd_purge_splits_total",
            "Purge requests refused as too large and sent again in halves.",
            "counter",
            &|t| t.splits.load(Ordering::Relaxed).to_string(),
        );
        family(
            "ocspd_purge_undeliverable_total",
            "Tags a target refused even alone; skipped, their answers stay cached there until they expire.",
            "counter",
            &|t| t.undeliverable.load(Ordering::Relaxed).to_string(),
        );
        family("ocspd_purge_delay_seconds_sum", "Sum of delays from a change to its acceptance.", "counter", &|t| {
            (t.delay_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0).to_string()
        });
        family("ocspd_purge_delay_seconds_count", "Changes accepted, for the delay sum.", "counter", &|t| {
            t.delay_count.load(Ordering::Relaxed).to_string()
        });
        family("ocspd_purge_delay_max_seconds", "The longest delay from a change to its acceptance.", "gauge", &|t| {
            (t.delay_ms_max.load(Ordering::Relaxed) as f64 / 1000.0).to_string()
        });
        s
    }
}

fn build_request(target: &Target, batch: &Batch) -> Result<hyper::Request<Full<Bytes>>, String> {
    let tags = &batch.texts();
    let bad = |e: http::Error| format!("building the request: {e}");
    match &target.config {
        TargetConfig::Varnish { url, mode, .. } => {
            let (method, header) = match mode {
                VarnishMode::Ban => ("BAN", "ocsp-purge-tags"),
                VarnishMode::Xkey => ("PURGE", "xkey-purge"),
            };
            hyper::Request::builder()
                .method(method)
                .uri(url)
                .header(header, tags.join(" "))
                .body(Full::new(Bytes::new()))
                .map_err(bad)
        }
        TargetConfig::Http { method, url, headers, body, .. } => {
            let mut b = hyper::Request::builder().method(method.as_str()).uri(fill(url, tags)?);
            for (k, v) in headers {
                b = b.header(k.as_str(), fill(v, tags)?);
            }
            b.body(Full::new(Bytes::from(fill(body, tags)?))).map_err(bad)
        }
        TargetConfig::Peer { url, .. } => {
            let event = batch.peer_event.as_ref().ok_or("a peer purge names its event")?;
            let body = serde_json::json!({
                "issuer": event.issuer.to_hex(),
                "serials": event.serials.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            });
            hyper::Request::builder()
                .method("POST")
                .uri(format!("{}/v1/purge", url.trim_end_matches('/')))
                .header("authorization", format!("Bearer {}", target.token.as_deref().unwrap_or("")))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .map_err(bad)
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The purge fan-out follows the change feed only to wake its deliverers: each reads the feed
/// from its own durable cursor.
impl ocsp_domain::Follower for Purger {
    fn apply(&self, change: &ocsp_records::Change) {
        self.wake.set(change.seq + 1);
    }

    fn reset(&self) {
        self.wake.set(self.feed.head());
    }
}

impl Drop for Purger {
    fn drop(&mut self) {
        if let Some(runtime) = self.own_runtime.get() {
            self.stop();
            runtime.stop();
        }
    }
}

/// Makes the cursor of the target named by its argument.
pub type CursorFor = Arc<dyn Fn(&str) -> Arc<dyn Cursor> + Send + Sync>;

/// The head as the in-process followers saw it; deliverers wait on it.
struct Wake {
    head: Mutex<u64>,
    moved: std::sync::Condvar,
}

impl Wake {
    fn set(&self, head: u64) {
        let mut h = self.head.lock().unwrap_or_else(|p| p.into_inner());
        *h = head;
        self.moved.notify_all();
    }
}

/// The feed as the deliverers read it, woken by the in-process followers (a change counts
/// once this node applied it).
struct PurgeSource {
    feed: Arc<dyn ChangeFeed>,
    wake: Arc<Wake>,
}

impl Source<Change> for PurgeSource {
    fn head(&self) -> Result<u64, ocsp_records::StoreError> {
        Ok(self.feed.head())
    }

    fn read(&self, from: u64, limit: usize) -> Result<Read<Change>, ocsp_records::StoreError> {
        ocsp_domain::runtime::FeedSource(self.feed.clone()).read(from, limit)
    }

    fn wait(&self, from: u64, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        let mut head = self.wake.head.lock().unwrap_or_else(|p| p.into_inner());
        while *head <= from {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            head = self.wake.moved.wait_timeout(head, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// One target's deliverer: a consumer of the feed-consumer runtime.
struct Deliverer {
    purger: std::sync::Weak<Purger>,
    target: Arc<Target>,
}

impl Deliverer {
    fn purger(&self) -> Result<Arc<Purger>, String> {
        self.purger.upgrade().ok_or_else(|| "the purge fan-out is gone".to_string())
    }
}

impl Consumer<Change> for Deliverer {
    fn apply(&self, changes: &[Change]) -> Result<Applied, String> {
        let purger = self.purger()?;
        let target = &self.target;
        let Some(last) = changes.last().map(|c| c.seq) else {
            purger.state(target).oldest_pending = None;
            return Ok(Applied::Done);
        };
        let events: Vec<Change> = changes.iter().filter(|c| c.needs_purge()).cloned().collect();
        if let Some(first) = events.first() {
            purger.state(target).oldest_pending = Some(first.time);
            // The exchange runs as a task of the tokio runtime; this thread waits for its end.
            // A runtime shutting down drops the task, and the changes stay in the outbox.
            let io = purger.io.get().cloned().ok_or("no tokio runtime for the purge deliveries")?;
            let (done, outcome) = std::sync::mpsc::sync_channel(1);
            let (task_purger, task_target) = (purger.clone(), target.clone());
            drop(purger);
            io.spawn(async move {
                let _ = done.send(task_purger.deliver(&task_target, &events).await);
            });
            if outcome.recv() != Ok(true) {
                return Err("stopping; the rest stays in the outbox".into());
            }
        }
        let purger = self.purger()?;
        target.cursor.store(last + 1, Ordering::SeqCst);
        purger.progressed();
        Ok(Applied::Done)
    }

    fn committed(&self, next: u64) {
        // Only once every target's cursor is durable may the outbox lose what they passed.
        self.target.durable.fetch_max(next, Ordering::SeqCst);
        if let Ok(purger) = self.purger() {
            purger.trim();
        }
    }

    fn start_fresh(&self, head: u64) -> Result<u64, String> {
        // Never delivered to by any node: a target added now owes nothing from before.
        Ok(head)
    }

    fn resync(&self, head: u64) -> Result<u64, String> {
        // Never skip what was not delivered: wait for the feed to bring it.
        let cursor = self.target.cursor.load(Ordering::SeqCst);
        let why = format!("the change feed lacks changes from {cursor} on (head {head}); purges wait");
        if let Ok(purger) = self.purger() {
            purger.state(&self.target).last_error = Some(why.clone());
        }
        Err(why)
    }

    fn resumed(&self, at: u64) {
        // The cursor as the role's last holder (or this node) left it.
        self.target.cursor.store(at, Ordering::SeqCst);
        self.target.durable.store(at, Ordering::SeqCst);
        if let Ok(purger) = self.purger() {
            purger.progressed();
        }
    }

    fn bound(&self) -> Result<Option<u64>, String> {
        let purger = self.purger()?;
        match purger.bound.get() {
            Some(bound) => {
                bound().map(Some).map_err(|e| format!("cannot tell whether every origin applied the changes: {e}"))
            }
            None => Ok(None),
        }
    }

    fn standby(&self, shared: Option<u64>) {
        // Another node delivers now: follow its cursor, so a caller waiting for its purge
        // learns when it was sent; what this node saw itself no longer says anything.
        let Ok(purger) = self.purger() else { return };
        {
            let mut st = purger.state(&self.target);
            st.last_error = None;
            st.retry_in_ms = 0;
        }
        if let Some(shared) = shared {
            if self.target.cursor.fetch_max(shared, Ordering::SeqCst) < shared {
                purger.progressed();
            }
        }
    }
}

/// With no target, the outbox is trimmed as the feed moves.
struct Outbox {
    feed: Arc<dyn ChangeFeed>,
}

impl Consumer<Change> for Outbox {
    fn apply(&self, changes: &[Change]) -> Result<Applied, String> {
        if let Some(last) = changes.last() {
            self.feed.trim(last.seq + 1).map_err(|e| format!("cannot trim the change feed: {e}"))?;
        }
        Ok(Applied::Done)
    }

    fn resync(&self, head: u64) -> Result<u64, String> {
        Ok(head)
    }
}
