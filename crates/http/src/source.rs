use crate::prepared::{Prepared, Served, Tier};
use ocsp_domain::ResponseStore;
use ocsp_proto::{Answer, CertStatus, Clock, OcspRequest, ProtoError, ResponseBuilder, ResponseStatus, SignedResponse};
use ocsp_sign::IssuerRegistry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Why a request got no signed answer. Mapped to the wire in exactly one place,
/// [`AnswerError::ocsp_status`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The request bytes are not a usable OCSP request.
    #[error(transparent)]
    Malformed(#[from] ProtoError),
    /// We do not answer for (one of) the issuers named, or the CertIDs name several issuers.
    #[error("not authoritative: {0}")]
    Unauthorized(String),
    /// Too busy to sign now.
    #[error("try later: {0}")]
    TryLater(String),
    /// A fault on our side (database, signer).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AnswerError {
    /// The OCSP response status a client is sent for this error.
    pub fn ocsp_status(&self) -> ResponseStatus {
        match self {
            AnswerError::Malformed(_) => ResponseStatus::MalformedRequest,
            AnswerError::Unauthorized(_) => ResponseStatus::Unauthorized,
            AnswerError::TryLater(_) => ResponseStatus::TryLater,
            AnswerError::Internal(_) => ResponseStatus::InternalError,
        }
    }
}

/// A boxed future, so `Source` can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request whose issuer is known: every CertID names this issuer by both hashes, in a hash
/// algorithm we accept. Made once per request by [`IssuerFilter`], in front of the tiers, which
/// then never look the issuer up again.
#[derive(Debug)]
pub struct Asked {
    /// The request.
    pub request: OcspRequest,
    /// Its issuer.
    pub issuer: Arc<ocsp_sign::IssuerEntry>,
}

/// The one filter in front of the tiers: finds the issuer of a request (an unknown issuer, or
/// CertIDs of several issuers, get unauthorized).
pub struct IssuerFilter {
    registry: Arc<IssuerRegistry>,
}

impl IssuerFilter {
    /// A filter over the issuers of `registry`.
    pub fn new(registry: Arc<IssuerRegistry>) -> IssuerFilter {
        IssuerFilter { registry }
    }

    /// The request with its issuer, or why it is not ours to answer.
    pub fn resolve(&self, request: OcspRequest) -> Result<Asked, AnswerError> {
        let mut issuer: Option<Arc<ocsp_sign::IssuerEntry>> = None;
        for id in &request.cert_ids {
            let entry = self.registry.find(id).ok_or_else(|| {
                AnswerError::Unauthorized(format!("no issuer with {} name/key hash of this CertID", id.hash.name()))
            })?;
            match &issuer {
                Some(first) if first.key != entry.key => {
                    return Err(AnswerError::Unauthorized("CertIDs of different issuers in one request".into()));
                }
                Some(_) => {}
                None => issuer = Some(entry),
            }
        }
        let issuer = issuer.ok_or(AnswerError::Malformed(ProtoError::EmptyRequest))?;
        Ok(Asked { request, issuer })
    }
}

/// Answers a request whose issuer is known with a signed response. Tiers (memory cache,
/// pre-signed store, live signing) are each a `Source`, wrapping the next one, behind one
/// [`IssuerFilter`].
pub trait Source: Send + Sync {
    /// Answers `asked`.
    fn answer<'a>(&'a self, asked: &'a Asked) -> BoxFuture<'a, Result<Served, AnswerError>>;
}

/// How live-signed responses are made.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Validity and backdating, as the pre-signer uses them.
    pub cadence: ocsp_proto::Cadence,
    /// Signings in flight at once; beyond this, requests get tryLater.
    pub max_concurrent: usize,
    /// Live signings per second (and burst) for answers no known certificate stands behind:
    /// unknown serials, and requests with several CertIDs. Beyond it: tryLater. Known
    /// certificates asked one at a time are never held back by these.
    pub untrusted_per_second: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            cadence: ocsp_proto::Cadence { validity: 24 * 3600, backdate: 3600 },
            max_concurrent: 64,
            untrusted_per_second: 50,
        }
    }
}

/// A token bucket: `rate` tokens a second, holding at most `rate` (at least one).
#[derive(Debug)]
struct RateBound {
    rate: f64,
    state: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RateBound {
    fn new(per_second: u32) -> RateBound {
        let rate = f64::from(per_second.max(1));
        RateBound { rate, state: std::sync::Mutex::new((rate, std::time::Instant::now())) }
    }

    fn try_take(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let (tokens, last) = *st;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if tokens >= 1.0 {
            *st = (tokens - 1.0, now);
            true
        } else {
            *st = (tokens, now);
            false
        }
    }
}

/// Signs every answer on request from the database status.
pub struct LiveSource {
    store: Arc<dyn ResponseStore>,
    clock: Arc<dyn Clock>,
    config: LiveConfig,
    permits: Arc<Semaphore>,
    untrusted: RateBound,
    metrics: Arc<crate::Metrics>,
}

impl LiveSource {
    /// A live signer over `store`.
    pub fn new(
        store: Arc<dyn ResponseStore>,
        clock: Arc<dyn Clock>,
        config: LiveConfig,
        metrics: Arc<crate::Metrics>,
    ) -> LiveSource {
        let permits = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        let untrusted = RateBound::new(config.untrusted_per_second);
        LiveSource { store, clock, config, permits, untrusted, metrics }
    }

    /// The response to sign, and whether a known certificate stands behind it alone (false
    /// for unknown serials and for several CertIDs).
    fn build(&self, asked: &Asked) -> Result<(ResponseBuilder, bool), AnswerError> {
        let now = self.clock.now();
        let (this_update, next_update) = self.config.cadence.window(now);
        let mut answers = Vec::with_capacity(asked.request.cert_ids.len());
        for id in &asked.request.cert_ids {
            // A point read on the reactor thread: measured cheaper than moving it off
            // (docs/decisions.md, "Database reads stay on the reactor").
            let status = match self.store.status(&asked.issuer.key, &id.serial) {
                Ok(Some(rec)) => rec.cert_status(),
                Ok(None) => CertStatus::Unknown,
                Err(e) if e.is_transient() => return Err(AnswerError::TryLater(e.to_string())),
                Err(e) => return Err(AnswerError::Internal(e.to_string())),
            };
            answers.push(Answer { cert_id: id.clone(), status, this_update, next_update });
        }
        let trusted = answers.len() == 1 && answers.iter().all(|a| !matches!(a.status, CertStatus::Unknown));
        let mut builder = ResponseBuilder::new(asked.issuer.identity.key_hash(), now);
        for a in answers {
            builder = builder.answer(a);
        }
        Ok((builder, trusted))
    }
}

impl LiveSource {
    /// Signs an answer to `request` now, echoing `nonce` (a nonce extension's extnValue,
    /// already checked) when given. Bounded like every live signing.
    async fn sign(&self, asked: &Asked, nonce: Option<&[u8]>) -> Result<Served, AnswerError> {
        let (mut builder, trusted) = self.build(asked)?;
        let issuer = asked.issuer.clone();
        if !trusted && !self.untrusted.try_take() {
            self.metrics.live_untrusted_refused.inc();
            return Err(AnswerError::TryLater(
                "live signing for unknown serials or several CertIDs at its rate bound".into(),
            ));
        }
        if let Some(value) = nonce {
            builder = builder.nonce(value);
        }
        let key = issuer.key;
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| AnswerError::TryLater("live signing at its concurrency bound".into()))?;
        self.metrics.live_signings.inc();
        // Signing may block on an HSM; keep it off the reactor threads. The task runs to
        // completion even if the client goes away.
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            issuer.identity.sign(&builder)
        });
        let resp =
            handle.await.map_err(|e| AnswerError::Internal(format!("signing task: {e}")))?.map_err(|e| match e {
                ocsp_sign::SignError::Unavailable(..) | ocsp_sign::SignError::OutsideValidity { .. } => {
                    AnswerError::TryLater(e.to_string())
                }
                other => AnswerError::Internal(other.to_string()),
            })?;
        let serials: Vec<&ocsp_proto::Serial> = asked.request.cert_ids.iter().map(|id| &id.serial).collect();
        let tier = if nonce.is_some() { Tier::Echo } else { Tier::Live };
        Ok(Served { answer: Arc::new(Prepared::new(resp, &key, &serials)), tier })
    }

    /// Answers `request` with a fresh signature echoing its nonce extension (`extn_value`, as
    /// sent, checked by the caller): for issuers whose nonce policy is `echo`.
    pub fn answer_echo<'a>(
        &'a self,
        asked: &'a Asked,
        extn_value: &'a [u8],
    ) -> BoxFuture<'a, Result<Served, AnswerError>> {
        Box::pin(self.sign(asked, Some(extn_value)))
    }
}

impl Source for LiveSource {
    fn answer<'a>(&'a self, asked: &'a Asked) -> BoxFuture<'a, Result<Served, AnswerError>> {
        Box::pin(self.sign(asked, None))
    }
}

/// How close to nextUpdate a stored response may be and still be served: a client must have
/// time to use it before it expires.
pub(crate) const SERVE_MARGIN: i64 = 60;

/// What the store holds for a request.
enum Lookup {
    /// A stored response, current and far enough from its nextUpdate.
    Fresh(Box<Prepared>),
    /// Nothing usable under this response key.
    Missing(ocsp_proto::AnswerKey),
    /// The request names several CertIDs; those are always signed live.
    Several,
}

type Flight = Arc<tokio::sync::OnceCell<Result<Served, AnswerError>>>;

/// Answers from the responses the pre-signer stored; what is not there (yet) is signed live,
/// once per CertID however many clients ask at the same time.
pub struct PresignedSource {
    store: Arc<dyn ResponseStore>,
    clock: Arc<dyn Clock>,
    live: Arc<dyn Source>,
    flights: std::sync::Mutex<std::collections::HashMap<ocsp_proto::AnswerKey, Flight>>,
    metrics: Arc<crate::Metrics>,
}

impl PresignedSource {
    /// Serves stored responses, falling back to `live`.
    pub fn new(
        store: Arc<dyn ResponseStore>,
        clock: Arc<dyn Clock>,
        live: Arc<dyn Source>,
        metrics: Arc<crate::Metrics>,
    ) -> PresignedSource {
        PresignedSource { store, clock, live, flights: Default::default(), metrics }
    }

    fn stored(&self, asked: &Asked) -> Result<Lookup, AnswerError> {
        let [id] = asked.request.cert_ids.as_slice() else {
            return Ok(Lookup::Several);
        };
        let entry = &asked.issuer;
        let key = ocsp_proto::AnswerKey::new(entry.key, id.serial.clone(), id.hash);
        let stored = self.store.response(&entry.key, &id.serial, id.hash).map_err(|e| {
            if e.is_transient() {
                AnswerError::TryLater(e.to_string())
            } else {
                AnswerError::Internal(e.to_string())
            }
        })?;
        let now = self.clock.now();
        let fresh = stored.filter(|r| r.next_update > now + SERVE_MARGIN).and_then(|r| {
            let status = ocsp_records::StatusRecord::decode(&r.source).ok()?.cert_status();
            let resp = SignedResponse {
                der: r.der,
                this_update: r.this_update,
                next_update: r.next_update,
                produced_at: r.produced_at,
                status,
            };
            Some(Box::new(Prepared::new(resp, &entry.key, &[&id.serial])))
        });
        Ok(match fresh {
            Some(resp) => Lookup::Fresh(resp),
            None => Lookup::Missing(key),
        })
    }
}

impl PresignedSource {
    /// Forgets the live signings in flight for these certificates: they may have read the
    /// status before a change, so requests from now on start a signing of their own. Called
    /// after the change is durable and before it is acknowledged.
    pub fn forget(&self, issuer: &ocsp_proto::IssuerKey, serials: &[ocsp_proto::Serial]) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.is_empty() {
            return;
        }
        for serial in serials {
            for alg in ocsp_proto::HashAlg::ALL {
                flights.remove(&ocsp_proto::AnswerKey::new(*issuer, serial.clone(), alg));
            }
        }
    }

    /// Forgets every live signing in flight for an issuer (identity or issuer-wide change).
    pub fn forget_issuer(&self, issuer: &ocsp_proto::IssuerKey) {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| k.issuer != *issuer);
    }
}

/// Stripes of certificates a change is tracked in (a status change marks the stripes of its
/// serials; a signer change, or dropping every cache, all of them).
const STRIPES: usize = 1024;

/// One stripe: changes being applied to its certificates now, and changes applied so far.
#[derive(Debug, Default)]
struct Stripe {
    open: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

/// The status and signer changes this process applies, by stripe of certificates, as a
/// sequence lock: [`ChangeEpoch::opening`] goes first in the list of followers and marks a
/// change open on its certificates' stripes, [`ChangeEpoch::closing`] goes last and marks it
/// done. An answer about a certificate is from after every change that had closed when it
/// began if no change on its stripe was open at its start or end and none closed meanwhile.
#[derive(Debug)]
pub struct ChangeEpoch {
    stripes: Box<[Stripe]>,
    /// Signer changes and resets: every certificate.
    all: Stripe,
    closed: tokio::sync::Notify,
}

impl Default for ChangeEpoch {
    fn default() -> Self {
        ChangeEpoch {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            all: Stripe::default(),
            closed: tokio::sync::Notify::new(),
        }
    }
}

/// A stripe of a certificate.
fn stripe_of(issuer: &ocsp_proto::IssuerKey, serial: &ocsp_proto::Serial) -> usize {
    // FNV-1a over the serial and the key's first bytes: spread, cheap, stable.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serial.as_bytes().iter().chain(&issuer.0[..8]) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % STRIPES as u64) as usize
}

/// What an answer saw of the changes, for the certificates it is about.
#[derive(PartialEq, Eq)]
struct Seen {
    open: u64,
    done: u64,
}

impl ChangeEpoch {
    /// The follower that opens a change (first in the list).
    pub fn opening(self: &Arc<Self>) -> Arc<dyn ocsp_domain::Follower> {
        Arc::new(EpochEdge { epoch: self.clone(), closing: false })
    }

    /// The follower that closes a change (last in the list).
    pub fn closing(self: &Arc<Self>) -> Arc<dyn ocsp_domain::Follower> {
        Arc::new(EpochEdge { epoch: self.clone(), closing: true })
    }

    /// The stripes of a change: none if it changes no answer.
    fn stripes_of(&self, change: &ocsp_records::Change) -> Option<Vec<usize>> {
        match change.kind {
            ocsp_records::ChangeKind::Status => {
                let mut list: Vec<usize> = change.serials.iter().map(|s| stripe_of(&change.issuer, s)).collect();
                list.sort_unstable();
                list.dedup();
                Some(list)
            }
            ocsp_records::ChangeKind::Signer => Some(Vec::new()),
            _ => None,
        }
    }

    fn stripe(&self, index: Option<usize>) -> &Stripe {
        index.and_then(|i| self.stripes.get(i)).unwrap_or(&self.all)
    }

    fn seen(&self, asked: &Asked) -> Seen {
        use std::sync::atomic::Ordering::SeqCst;
        let mut seen = Seen { open: self.all.open.load(SeqCst), done: self.all.done.load(SeqCst) };
        for id in &asked.request.cert_ids {
            let s = &self.stripes[stripe_of(&asked.issuer.key, &id.serial)];
            seen.open += s.open.load(SeqCst);
            seen.done += s.done.load(SeqCst);
        }
        seen
    }
}

/// One edge of a change's application.
struct EpochEdge {
    epoch: Arc<ChangeEpoch>,
    closing: bool,
}

impl EpochEdge {
    fn mark(&self, stripes: &[usize]) {
        use std::sync::atomic::Ordering::SeqCst;
        let list: Vec<Option<usize>> =
            if stripes.is_empty() { vec![None] } else { stripes.iter().map(|s| Some(*s)).collect() };
        for s in list {
            let stripe = self.epoch.stripe(s);
            if self.closing {
                // Done before no longer open: no moment shows neither.
                stripe.done.fetch_add(1, SeqCst);
                let _ = stripe.open.fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(1)));
            } else {
                stripe.open.fetch_add(1, SeqCst);
            }
        }
        if self.closing {
            self.epoch.closed.notify_waiters();
        }
    }
}

impl ocsp_domain::Follower for EpochEdge {
    fn apply(&self, change: &ocsp_records::Change) {
        if let Some(stripes) = self.epoch.stripes_of(change) {
            self.mark(&stripes);
        }
    }

    fn reset(&self) {
        // Everything was dropped: every answer in preparation may predate it.
        if self.closing {
            self.epoch.all.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.epoch.closed.notify_waiters();
        }
    }
}

/// How long an answer may wait for changes on its certificates to be applied, and be
/// prepared again, before it is tryLater.
const GUARD_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

/// The top of the tiers: an answer prepared while a change to its certificate (or its issuer's
/// signer) was being applied may come from before it, and its response may reach a client, or
/// an edge cache that was just purged, after that change was acknowledged. Such an answer is
/// prepared again once the change is applied; past a short deadline, tryLater (never cached)
/// instead. A single certificate's `revoked` other than certificateHold is final and goes out
/// as it is. Changes to other certificates do not matter (changes are tracked by stripe).
pub struct ChangeGuard {
    inner: Arc<dyn Source>,
    epoch: Arc<ChangeEpoch>,
    metrics: Arc<crate::Metrics>,
}

impl ChangeGuard {
    /// Guards `inner` with `epoch`, which the change feed's followers move.
    pub fn new(inner: Arc<dyn Source>, epoch: Arc<ChangeEpoch>, metrics: Arc<crate::Metrics>) -> ChangeGuard {
        ChangeGuard { inner, epoch, metrics }
    }
}

impl Source for ChangeGuard {
    fn answer<'a>(&'a self, asked: &'a Asked) -> BoxFuture<'a, Result<Served, AnswerError>> {
        Box::pin(async move {
            let single = asked.request.cert_ids.len() == 1;
            let deadline = tokio::time::Instant::now() + GUARD_DEADLINE;
            loop {
                let before = self.epoch.seen(asked);
                if before.open > 0 {
                    // A change to one of these certificates is being applied: wait for it.
                    let closed = self.epoch.closed.notified();
                    if self.epoch.seen(asked).open > 0 && tokio::time::timeout_at(deadline, closed).await.is_err() {
                        break;
                    }
                    continue;
                }
                let answered = self.inner.answer(asked).await;
                let final_ = answered.as_ref().is_ok_and(|r| {
                    single
                        && matches!(r.status, CertStatus::Revoked { reason, .. }
                            if reason != Some(ocsp_proto::RevocationReason::CertificateHold))
                });
                if answered.is_err() || final_ || self.epoch.seen(asked) == before {
                    return answered;
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            self.metrics.out_of_service.inc();
            Err(AnswerError::TryLater("statuses changed while answering".into()))
        })
    }
}

/// Live signings in flight follow the change feed: one started from a status that changed
/// is forgotten, so no later request joins it. Put it before the memory tier in the list of
/// followers, so a flight is gone before the memory tier's epoch moves.
impl ocsp_domain::Follower for PresignedSource {
    fn apply(&self, change: &ocsp_records::Change) {
        if !change.changes_answers() {
            return;
        }
        if change.issuer_wide() {
            self.forget_issuer(&change.issuer);
        } else {
            self.forget(&change.issuer, &change.serials);
        }
    }

    fn reset(&self) {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Source for PresignedSource {
    fn answer<'a>(&'a self, asked: &'a Asked) -> BoxFuture<'a, Result<Served, AnswerError>> {
        Box::pin(async move {
            let key = match self.stored(asked)? {
                Lookup::Fresh(resp) => {
                    self.metrics.tier_presigned.inc();
                    return Ok(Served { answer: Arc::from(resp), tier: Tier::Presigned });
                }
                Lookup::Missing(key) => {
                    self.metrics.presigned_misses.inc();
                    key
                }
                // Several CertIDs in one request: always signed live.
                Lookup::Several => return self.live.answer(asked).await,
            };
            let flight = {
                let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
                flights.entry(key.clone()).or_default().clone()
            };
            let result = flight.get_or_init(|| self.live.answer(asked)).await.clone();
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(&key);
            }
            result
        })
    }
}
