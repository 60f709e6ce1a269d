//! The change feed: every change that something outside the database must follow (a status
//! changed, certificates were recorded, an issuer's signer changed), written in the same
//! atomic batch as the change itself and numbered in commit order. It is ordered and
//! resumable: a consumer keeps a cursor (the first change it has not applied), reads from it
//! with [`Store::changes`] and, if it must survive restarts, records it with
//! [`Store::set_feed_cursor`]. The in-process followers (memory tier, live-signing flights,
//! pre-signer, purge fan-out) follow it from the head; the purge deliverers keep a durable
//! cursor each, so an acknowledged revocation always has its purge on disk. Changes are
//! deleted once every durable cursor and the in-process followers have passed them.
//!
//! Changes are numbered under the store's write lock, so they commit in sequence order and a
//! reader never sees change n+1 before change n. (The column family is still called `outbox`
//! and the cursors `purge-cursor/...`: the feed grew out of the purge outbox, and a database
//! written by an older ocspd reads unchanged; see docs/store.md.)

use crate::error::Db;
use crate::{Change, ChangeKind, Store, StoreError, CF_META, CF_OUTBOX};
use ocsp_proto::{IssuerKey, Serial};
use rocksdb::WriteBatch;
use std::time::Duration;

const CURSOR_PREFIX: &[u8] = b"purge-cursor/";
/// Cursors of durable consumers other than purge targets (CRL regeneration): unlike a purge
/// target's, which may be configured away, they hold back trimming.
const CONSUMER_PREFIX: &[u8] = b"feed-cursor/";
const TRIMMED_KEY: &[u8] = b"purge-next";

/// Where the feed's head stands, for followers waiting for news.
#[derive(Default)]
pub(crate) struct Head {
    pub(crate) next: std::sync::Mutex<u64>,
    moved: std::sync::Condvar,
}

impl Store {
    /// Adds a change to `batch`; the caller holds the write lock, commits the batch and then,
    /// still under the lock, calls [`Store::published`].
    pub(crate) fn append_change(
        &self,
        batch: &mut WriteBatch,
        issuer: &IssuerKey,
        kind: ChangeKind,
        serials: Vec<Serial>,
        time: i64,
    ) -> Result<Change, StoreError> {
        self.own_write()?;
        let seq = self.feed_seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let change = Change { seq, time, issuer: *issuer, kind, serials };
        batch.put_cf(self.cf(CF_OUTBOX)?, seq.to_be_bytes(), change.encode());
        Ok(change)
    }

    /// Moves the head past `change` (durable now) and wakes the followers waiting for news.
    pub(crate) fn published(&self, change: &Change) {
        let mut next = self.head.next.lock().unwrap_or_else(|p| p.into_inner());
        *next = (*next).max(change.seq + 1);
        self.head.moved.notify_all();
    }

    /// Waits until the feed holds a change at or after `from` (returns at once if it does), at
    /// most `timeout`; returns the head: the number the next change will get.
    pub fn wait_for_changes(&self, from: u64, timeout: Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        let mut next = self.head.next.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = std::time::Instant::now();
            if *next > from || now >= deadline {
                return *next;
            }
            next = self.head.moved.wait_timeout(next, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Keeps the changes from `from` on, whatever the durable cursors say: the in-process
    /// followers have not applied them yet.
    pub fn hold_feed(&self, from: u64) {
        self.feed_floor.store(from, std::sync::atomic::Ordering::SeqCst);
    }

    /// Durably records that everything an issuer answers changed (its signing identity changed,
    /// it was retired), with its audit entry.
    pub fn purge_issuer(&self, issuer: &IssuerKey, time: i64, audit: crate::AuditEntry) -> Result<Change, StoreError> {
        self.commit_issuer_purge(WriteBatch::default(), issuer, time, audit)
    }

    /// Adds an issuer-wide change and the audit entry to `batch` and writes it durably under
    /// the write lock.
    fn commit_issuer_purge(
        &self,
        mut batch: WriteBatch,
        issuer: &IssuerKey,
        time: i64,
        audit: crate::AuditEntry,
    ) -> Result<Change, StoreError> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let change = self.append_change(&mut batch, issuer, ChangeKind::Signer, Vec::new(), time)?;
        self.append_audit(&mut batch, audit)?;
        self.commit(batch, true)?;
        self.published(&change);
        Ok(change)
    }

    /// Replaces an issuer's record in one durable batch with an issuer-wide change and
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
    ) -> Result<Change, StoreError> {
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

    /// Up to `limit` changes from sequence number `from` on, oldest first.
    pub fn changes(&self, from: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let cf = self.cf(CF_OUTBOX)?;
        let start = from.to_be_bytes();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward)) {
            let (k, v) = item.db()?;
            let seq = crate::seq_of(&k);
            out.push(Change::decode(seq, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The sequence number the next change will get.
    pub fn feed_head(&self) -> u64 {
        self.feed_seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Where a durable consumer (a purge target) stands: the first change it has not applied.
    /// A consumer never seen before starts at the head: it owes nothing from before it was
    /// configured.
    pub fn feed_cursor(&self, target: &str) -> Result<u64, StoreError> {
        let key = [CURSOR_PREFIX, target.as_bytes()].concat();
        match self.db.get_cf(self.cf(CF_META)?, &key).db()? {
            Some(v) => Ok(crate::seq_of(&v)),
            None => {
                let head = self.feed_head();
                self.set_feed_cursor(target, head)?;
                Ok(head)
            }
        }
    }

    /// Records that `target` has applied every change before `next`. Synced: after a crash a
    /// target may be sent a purge twice, never none.
    pub fn set_feed_cursor(&self, target: &str, next: u64) -> Result<(), StoreError> {
        let key = [CURSOR_PREFIX, target.as_bytes()].concat();
        self.noted(self.db.put_cf_opt(self.cf(CF_META)?, key, next.to_be_bytes(), &crate::synced()))?;
        Ok(())
    }

    /// Where the durable consumer `name` (not a purge target) stands; one never seen before
    /// starts at the head. Trimming never passes it.
    pub fn consumer_cursor(&self, name: &str) -> Result<u64, StoreError> {
        let key = [CONSUMER_PREFIX, name.as_bytes()].concat();
        match self.db.get_cf(self.cf(CF_META)?, &key).db()? {
            Some(v) => Ok(crate::seq_of(&v)),
            None => {
                let head = self.feed_head();
                self.set_consumer_cursor(name, head)?;
                Ok(head)
            }
        }
    }

    /// Records durably that the consumer `name` has applied every change before `next`.
    pub fn set_consumer_cursor(&self, name: &str, next: u64) -> Result<(), StoreError> {
        let key = [CONSUMER_PREFIX, name.as_bytes()].concat();
        self.noted(self.db.put_cf_opt(self.cf(CF_META)?, key, next.to_be_bytes(), &crate::synced()))?;
        Ok(())
    }

    /// The cursors under `prefix`.
    fn cursors(&self, prefix: &[u8]) -> Result<Vec<u64>, StoreError> {
        let cf = self.cf(CF_META)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward)) {
            let (k, v) = item.db()?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(crate::seq_of(&v));
        }
        Ok(out)
    }

    /// The lowest sequence number never used, as far as cursors and trims recorded it.
    pub(crate) fn max_feed_cursor(&self) -> Result<u64, StoreError> {
        let trimmed = self.db.get_cf(self.cf(CF_META)?, TRIMMED_KEY).db()?.map(|v| crate::seq_of(&v)).unwrap_or(0);
        let cursors = self.cursors(CURSOR_PREFIX)?.into_iter().chain(self.cursors(CONSUMER_PREFIX)?);
        Ok(cursors.fold(trimmed, u64::max))
    }

    /// Deletes the changes before `before` (every durable consumer has them), but none the
    /// in-process followers still need ([`Store::hold_feed`]).
    pub fn trim_feed(&self, before: u64) -> Result<(), StoreError> {
        let consumers = self.cursors(CONSUMER_PREFIX)?.into_iter().min().unwrap_or(u64::MAX);
        let before = before.min(self.feed_floor.load(std::sync::atomic::Ordering::SeqCst)).min(consumers);
        let cf = self.cf(CF_OUTBOX)?;
        let first = self
            .db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .next()
            .transpose()
            .db()?
            .map(|(k, _)| crate::seq_of(&k));
        if let Some(first) = first.filter(|f| *f < before) {
            // Remember how far numbers were used, so an emptied outbox never reuses them.
            let used = self.feed_head();
            self.noted(self.db.put_cf_opt(self.cf(CF_META)?, TRIMMED_KEY, used.to_be_bytes(), &crate::synced()))?;
            self.noted(self.db.delete_range_cf(cf, first.to_be_bytes(), before.to_be_bytes()))?;
        }
        Ok(())
    }
}
