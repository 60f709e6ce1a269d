//! The purge outbox: every status change that caches downstream must learn of, written in the
//! same atomic batch as the change itself, so an acknowledged revocation always has its purge
//! on disk. Deliverers (one per purge target) keep a cursor each and move it only once a target
//! has accepted a purge; an event is deleted once every configured target has passed it.
//!
//! Events are numbered under the store's write lock, so they commit in sequence order and a
//! reader never sees event n+1 before event n.

use crate::{Store, StoreError, CF_META, CF_OUTBOX};
use ocsp_proto::{IssuerKey, Serial};
use rocksdb::WriteBatch;

/// One purge: some certificates of an issuer, or (no serials) everything of the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeEvent {
    /// Position in the outbox.
    pub seq: u64,
    /// When the change was made (seconds since the epoch).
    pub time: i64,
    /// The issuer.
    pub issuer: IssuerKey,
    /// The certificates whose answers changed; empty for an issuer-wide purge (a signing
    /// identity changed, the issuer was retired).
    pub serials: Vec<Serial>,
}

/// A function told of every purge event after it is durable.
pub type PurgeHook = Box<dyn Fn(&PurgeEvent) + Send + Sync>;

const CURSOR_PREFIX: &[u8] = b"purge-cursor/";
const TRIMMED_KEY: &[u8] = b"purge-next";

impl PurgeEvent {
    /// Whether this purges everything of the issuer.
    pub fn issuer_wide(&self) -> bool {
        self.serials.is_empty()
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 8 + 64 + 4 + self.serials.len() * 21);
        v.push(1);
        v.extend_from_slice(&self.time.to_be_bytes());
        v.extend_from_slice(&self.issuer.0);
        v.extend_from_slice(&(self.serials.len() as u32).to_be_bytes());
        for s in &self.serials {
            let b = s.as_bytes();
            v.push(b.len() as u8);
            v.extend_from_slice(b);
        }
        v
    }

    fn decode(seq: u64, b: &[u8]) -> Result<PurgeEvent, StoreError> {
        let bad = || StoreError::Corrupt(format!("purge event {seq}"));
        if b.len() < 1 + 8 + 64 + 4 || b[0] != 1 {
            return Err(bad());
        }
        let time = i64::from_be_bytes(b[1..9].try_into().map_err(|_| bad())?);
        let mut issuer = [0u8; 64];
        issuer.copy_from_slice(&b[9..73]);
        let count = u32::from_be_bytes(b[73..77].try_into().map_err(|_| bad())?) as usize;
        let mut serials = Vec::with_capacity(count.min(1 << 20));
        let mut i = 77;
        for _ in 0..count {
            let len = *b.get(i).ok_or_else(bad)? as usize;
            let bytes = b.get(i + 1..i + 1 + len).ok_or_else(bad)?;
            serials.push(Serial::from_int_bytes(bytes).map_err(|_| bad())?);
            i += 1 + len;
        }
        Ok(PurgeEvent { seq, time, issuer: IssuerKey(issuer), serials })
    }
}

impl Store {
    /// Adds a purge event to `batch`; the caller holds the write lock and commits the batch.
    /// Returns the event, to be announced with [`Store::announce_purge`] once durable.
    pub(crate) fn append_purge(
        &self,
        batch: &mut WriteBatch,
        issuer: &IssuerKey,
        serials: Vec<Serial>,
        time: i64,
    ) -> Result<PurgeEvent, StoreError> {
        let seq = self.outbox_seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let event = PurgeEvent { seq, time, issuer: *issuer, serials };
        batch.put_cf(self.cf(CF_OUTBOX)?, seq.to_be_bytes(), event.encode());
        Ok(event)
    }

    pub(crate) fn announce_purge(&self, event: &PurgeEvent) {
        let hooks = self.purge_hooks.read().unwrap_or_else(|p| p.into_inner());
        for hook in hooks.iter() {
            hook(event);
        }
    }

    /// Registers a function told of every purge event once it is durable (memory-tier
    /// eviction, the purge deliverers).
    pub fn on_purge(&self, hook: PurgeHook) {
        self.purge_hooks.write().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    /// Durably queues a purge of everything an issuer answers (its signing identity changed,
    /// it was retired), with its audit entry.
    pub fn purge_issuer(
        &self,
        issuer: &IssuerKey,
        time: i64,
        audit: crate::AuditEntry,
    ) -> Result<PurgeEvent, StoreError> {
        self.commit_issuer_purge(WriteBatch::default(), issuer, time, audit)
    }

    /// Adds an issuer-wide purge event and the audit entry to `batch`, writes it durably under
    /// the write lock, then announces the event.
    fn commit_issuer_purge(
        &self,
        mut batch: WriteBatch,
        issuer: &IssuerKey,
        time: i64,
        audit: crate::AuditEntry,
    ) -> Result<PurgeEvent, StoreError> {
        let guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let event = self.append_purge(&mut batch, issuer, Vec::new(), time)?;
        self.append_audit(&mut batch, audit)?;
        self.commit(batch, true)?;
        drop(guard);
        self.announce_purge(&event);
        Ok(event)
    }

    /// Replaces an issuer's record in one durable batch with an issuer-wide purge event and
    /// the audit entry: when it is retired, or when its signing identity changes (a backup
    /// promoted, `drop_responses`: every stored response of the issuer, signed by the old key,
    /// is deleted in the same batch).
    pub fn put_issuer_and_purge(
        &self,
        issuer: &IssuerKey,
        record: &crate::IssuerRecord,
        drop_responses: bool,
        time: i64,
        audit: crate::AuditEntry,
    ) -> Result<PurgeEvent, StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(crate::CF_ISSUERS)?, issuer.0, record.encode()?);
        if !drop_responses {
            return self.commit_issuer_purge(batch, issuer, time, audit);
        }
        let mut end = issuer.0.to_vec();
        // The first key after every key that starts with the issuer key.
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                break;
            }
        }
        batch.delete_range_cf(self.cf(crate::CF_RESPONSES)?, issuer.0.as_slice(), end.as_slice());
        self.commit_issuer_purge(batch, issuer, time, audit)
    }

    /// Up to `limit` events from sequence number `from` on, oldest first.
    pub fn outbox(&self, from: u64, limit: usize) -> Result<Vec<PurgeEvent>, StoreError> {
        let cf = self.cf(CF_OUTBOX)?;
        let start = from.to_be_bytes();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward)) {
            let (k, v) = item?;
            let seq = crate::seq_of(&k);
            out.push(PurgeEvent::decode(seq, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The sequence number the next event will get.
    pub fn outbox_head(&self) -> u64 {
        self.outbox_seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Where a target's deliverer stands: the first event it has not delivered. A target
    /// never seen before starts at the head: it owes nothing from before it was configured.
    pub fn outbox_cursor(&self, target: &str) -> Result<u64, StoreError> {
        let key = [CURSOR_PREFIX, target.as_bytes()].concat();
        match self.db.get_cf(self.cf(CF_META)?, &key)? {
            Some(v) => Ok(crate::seq_of(&v)),
            None => {
                let head = self.outbox_head();
                self.set_outbox_cursor(target, head)?;
                Ok(head)
            }
        }
    }

    /// Records that `target` has accepted every event before `next`. Synced: after a crash a
    /// target may be sent a purge twice, never none.
    pub fn set_outbox_cursor(&self, target: &str, next: u64) -> Result<(), StoreError> {
        let key = [CURSOR_PREFIX, target.as_bytes()].concat();
        self.noted(self.db.put_cf_opt(self.cf(CF_META)?, key, next.to_be_bytes(), &crate::synced()))?;
        Ok(())
    }

    /// The lowest sequence number never used, as far as cursors and trims recorded it.
    pub(crate) fn max_outbox_cursor(&self) -> Result<u64, StoreError> {
        let cf = self.cf(CF_META)?;
        let mut max = self.db.get_cf(cf, TRIMMED_KEY)?.map(|v| crate::seq_of(&v)).unwrap_or(0);
        let mode = rocksdb::IteratorMode::From(CURSOR_PREFIX, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item?;
            if !k.starts_with(CURSOR_PREFIX) {
                break;
            }
            max = max.max(crate::seq_of(&v));
        }
        Ok(max)
    }

    /// Deletes the events before `before` (every target has them).
    pub fn trim_outbox(&self, before: u64) -> Result<(), StoreError> {
        let cf = self.cf(CF_OUTBOX)?;
        let first =
            self.db.iterator_cf(cf, rocksdb::IteratorMode::Start).next().transpose()?.map(|(k, _)| crate::seq_of(&k));
        if let Some(first) = first.filter(|f| *f < before) {
            // Remember how far numbers were used, so an emptied outbox never reuses them.
            let used = self.outbox_head();
            self.noted(self.db.put_cf_opt(self.cf(CF_META)?, TRIMMED_KEY, used.to_be_bytes(), &crate::synced()))?;
            self.noted(self.db.delete_range_cf(cf, first.to_be_bytes(), before.to_be_bytes()))?;
        }
        Ok(())
    }
}
