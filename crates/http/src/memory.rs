//! The first tier: prepared answers in memory (moka), bounded in bytes, each entry expiring a
//! margin before its response's nextUpdate, and evicted the moment a status or signing
//! identity changes.

use crate::prepared::{Prepared, Served, Tier};
use crate::source::{AnswerError, Asked, BoxFuture, Source, SERVE_MARGIN};
use crate::Metrics;
use ocsp_proto::{AnswerKey, Clock, HashAlg, IssuerKey, Serial};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Expires each entry [`SERVE_MARGIN`] before its nextUpdate, on the responder's clock.
struct UntilNextUpdate(Arc<dyn Clock>);

impl moka::Expiry<AnswerKey, Arc<Prepared>> for UntilNextUpdate {
    fn expire_after_create(&self, _key: &AnswerKey, value: &Arc<Prepared>, _at: Instant) -> Option<Duration> {
        let left = value.next_update - SERVE_MARGIN - self.0.now();
        Some(Duration::from_secs(left.max(0) as u64))
    }
}

/// The memory tier, in front of another [`Source`].
pub struct MemoryTier {
    cache: moka::sync::Cache<AnswerKey, Arc<Prepared>>,
    inner: Arc<dyn Source>,
    clock: Arc<dyn Clock>,
    /// Bumped by every eviction; an answer fetched across a bump is not kept (it may predate
    /// the change).
    epoch: AtomicU64,
    /// Held shared by an insert (check the epoch, insert) and exclusively by an eviction (bump
    /// the epoch, invalidate): no stale answer is ever visible, not even for a moment, to a
    /// request made after the eviction returned.
    gate: std::sync::RwLock<()>,
    metrics: Arc<Metrics>,
}

impl MemoryTier {
    /// A tier of at most `max_bytes` in front of `inner`.
    pub fn new(max_bytes: u64, inner: Arc<dyn Source>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> MemoryTier {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &AnswerKey, v: &Arc<Prepared>| (k.weight() + v.weight()).min(u32::MAX as usize) as u32)
            .expire_after(UntilNextUpdate(clock.clone()))
            .support_invalidation_closures()
            .build();
        MemoryTier { cache, inner, clock, epoch: AtomicU64::new(0), gate: std::sync::RwLock::new(()), metrics }
    }

    /// Drops the answers for these certificates (both CertID hash algorithms).
    pub fn evict(&self, issuer: &IssuerKey, serials: &[Serial]) {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for serial in serials {
            for alg in HashAlg::ALL {
                self.cache.invalidate(&AnswerKey::new(*issuer, serial.clone(), alg));
            }
        }
        self.metrics.memory_evictions.add(serials.len() as u64);
    }

    /// Drops every answer of an issuer.
    pub fn evict_issuer(&self, issuer: &IssuerKey) {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let issuer = *issuer;
        if self.cache.invalidate_entries_if(move |k, _| k.issuer == issuer).is_err() {
            self.cache.invalidate_all();
        }
        self.metrics.memory_evictions.inc();
    }

    /// The certificates of an issuer held now: the ones asked most lately.
    pub fn serials_of(&self, issuer: &IssuerKey) -> Vec<Serial> {
        let mut out: Vec<Serial> =
            self.cache.iter().filter(|(k, _)| k.issuer == *issuer).map(|(k, _)| k.serial.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// (entries, bytes) held now.
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// Prometheus lines for the tier's size.
    pub fn render_metrics(&self) -> String {
        let (entries, bytes) = (self.cache.entry_count(), self.cache.weighted_size());
        format!(
            "# HELP ocspd_memory_tier_entries Answers held in the memory tier.\n# TYPE ocspd_memory_tier_entries gauge\nocspd_memory_tier_entries {entries}\n# HELP ocspd_memory_tier_bytes Bytes held in the memory tier.\n# TYPE ocspd_memory_tier_bytes gauge\nocspd_memory_tier_bytes {bytes}\n"
        )
    }

    /// Drops every answer.
    pub fn evict_all(&self) {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
        self.metrics.memory_evictions.inc();
    }
}

/// The memory tier follows the change feed: a changed certificate's answers, or all of an
/// issuer whose signer changed, are dropped before the change is acknowledged.
impl ocsp_domain::Follower for MemoryTier {
    fn apply(&self, change: &ocsp_records::Change) {
        // Fleet mode: responses the signing node stored replace what this node signed live,
        // so every node serves the same bytes (and ETag).
        if change.kind == ocsp_records::ChangeKind::Signed {
            self.evict(&change.issuer, &change.serials);
            return;
        }
        if !change.changes_answers() {
            return;
        }
        if change.issuer_wide() {
            self.evict_issuer(&change.issuer);
        } else {
            self.evict(&change.issuer, &change.serials);
        }
    }

    fn reset(&self) {
        self.evict_all();
    }
}

impl Source for MemoryTier {
    fn answer<'a>(&'a self, asked: &'a Asked) -> BoxFuture<'a, Result<Served, AnswerError>> {
        Box::pin(async move {
            let [id] = asked.request.cert_ids.as_slice() else {
                return self.inner.answer(asked).await;
            };
            let key = AnswerKey::new(asked.issuer.key, id.serial.clone(), id.hash);
            let now = self.clock.now();
            if let Some(hit) = self.cache.get(&key) {
                if hit.next_update > now + SERVE_MARGIN {
                    self.metrics.tier_memory.inc();
                    return Ok(Served { answer: hit, tier: Tier::Memory });
                }
                self.cache.invalidate(&key);
            }
            self.metrics.memory_misses.inc();
            let epoch = self.epoch.load(Ordering::SeqCst);
            let served = self.inner.answer(asked).await?;
            if served.next_update > self.clock.now() + SERVE_MARGIN {
                // An eviction since `epoch` was read means the answer may predate the change:
                // it is not kept. The gate makes the check and the insert one step.
                let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
                if self.epoch.load(Ordering::SeqCst) == epoch {
                    self.cache.insert(key.clone(), served.answer.clone());
                }
            }
            Ok(served)
        })
    }
}
