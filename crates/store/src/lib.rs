//! The revocation database of ocspd, on RocksDB: issuers and certificate statuses.
//!
//! This is the only crate that touches RocksDB; `rocksdb::Error` never leaves it. The key
//! layout is described in `docs/store.md`. Status records are keyed by the issuer's
//! (SHA-256 name hash, SHA-256 key hash) and the serial, never by subject or key alone.
//!
//! It does not sign, serve or cache responses.

mod crls;
mod domain;
mod error;
mod feed;
mod mirror;
mod responses;

pub use domain::LocalCursor;
// The vocabulary is the domain's (`ocsp-records`); named here too for the crates that use
// the store directly.
pub use ocsp_records::{
    crl_shard_serial, AuditEntry, AuditFilter, BulkRevocation, BulkSummary, Change, ChangeKind, CrlWrite, Issued,
    IssuerRecord, Mirrored, ResponseEntry, Revocation, RevokeOutcome, State, StatusCursor, StatusEntry, StatusRecord,
    StoreError, StoredCrl, StoredResponse, UnholdOutcome, RECORD_LEN,
};

use error::Db;

use ocsp_proto::{IssuerKey, RevocationReason, Serial};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const CF_ISSUERS: &str = "issuers";
const CF_STATUS: &str = "status";
const CF_META: &str = "meta";
const CF_AUDIT: &str = "audit";
const CF_RESPONSES: &str = "responses";
const CF_OUTBOX: &str = "outbox";
const CF_CRLS: &str = "crls";
const SCHEMA_KEY: &[u8] = b"schema";
const SCHEMA_VERSION: &[u8] = b"1";
/// Set once the responses of certificates revoked with an explicit unspecified reason, signed
/// before such a reason stopped being encoded (BR 7.2.2), were dropped to be signed again.
const MIGRATION_UNSPECIFIED: &[u8] = b"migration/unspecified-reason-dropped";

/// The database handle. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    db: DB,
    /// Serialises read-modify-write of status records (revocations), so two concurrent
    /// revocations of one certificate cannot both pass the "already revoked" check.
    write_lock: Mutex<()>,
    /// The next audit sequence number.
    audit_seq: AtomicU64,
    /// The number the next change of the feed gets.
    feed_seq: AtomicU64,
    /// The first change not yet durable and announced, for followers waiting for news.
    head: feed::Head,
    /// Changes from here on are kept for the in-process followers (`u64::MAX`: none follow).
    feed_floor: AtomicU64,
    /// The last write failure not yet followed by a successful write (out of space, I/O).
    write_fault: Mutex<Option<String>>,
    /// Why the database was opened read-only (the disk was full at start), if it was.
    read_only: Option<String>,
    /// A fleet replica: changes come only from the shared feed ([`Store::apply_mirrored`]).
    mirror: std::sync::atomic::AtomicBool,
}

/// Settings of the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Block cache shared by the status and response column families, bytes.
    pub cache_bytes: usize,
    /// Files RocksDB keeps open at once (-1: no bound), to stay inside the process's
    /// open-file limit, which the listeners share.
    pub max_open_files: i32,
    /// Memtable size of the status and response column families, bytes (RocksDB also
    /// preallocates about this much for its write-ahead log).
    pub write_buffer_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_bytes: DEFAULT_CACHE_BYTES, max_open_files: -1, write_buffer_bytes: STATUS_WRITE_BUFFER }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).finish()
    }
}

/// The database key of one status record: issuer key (64 bytes) then serial octets.
pub fn status_key(issuer: &IssuerKey, serial: &Serial) -> Vec<u8> {
    let mut k = Vec::with_capacity(64 + serial.as_bytes().len());
    k.extend_from_slice(&issuer.0);
    k.extend_from_slice(serial.as_bytes());
    k
}

/// The issuer and serial of a status key.
pub(crate) fn split_status_key(k: &[u8]) -> Result<(IssuerKey, Serial), StoreError> {
    if k.len() <= 64 {
        return Err(StoreError::Corrupt("status key too short".into()));
    }
    let mut ik = [0u8; 64];
    ik.copy_from_slice(&k[..64]);
    let serial = Serial::from_int_bytes(&k[64..]).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((IssuerKey(ik), serial))
}

/// Default memory for cached blocks of the status and response column families (index,
/// filters, data).
const DEFAULT_CACHE_BYTES: usize = 512 << 20;
/// Memtable size of the status column family: bulk imports and revocations of millions of
/// certificates flush in large, few files instead of stalling on many small ones.
const STATUS_WRITE_BUFFER: usize = 128 << 20;

/// Status lookups are point reads of random keys (serials are random), mostly hits: bloom
/// filters and a block cache large enough for the index and filters of tens of millions of
/// records. Measured with `make bench-revoke` (docs/decisions.md).
fn status_options(cache: &rocksdb::Cache, write_buffer: usize) -> Options {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_write_buffer_size(write_buffer);
    o.set_max_write_buffer_number(4);
    o.set_target_file_size_base(write_buffer as u64);
    o.set_max_bytes_for_level_base(4 * write_buffer as u64);
    o.set_level_compaction_dynamic_level_bytes(true);
    o
}

/// Pre-signed responses: random point reads by the HTTP front, rewritten by every refresh.
/// Keys share a 64-byte issuer prefix, so index blocks use prefix compression (restart
/// interval 16) and 16 KiB data blocks keep the index small; index and filters stay in
/// memory outside the block cache, so a read never waits for an evicted index block.
/// Measured with `make bench-http` (docs/decisions.md).
fn response_options(cache: &rocksdb::Cache, write_buffer: usize) -> Options {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(cache);
    table.set_block_size(16 << 10);
    table.set_index_block_restart_interval(16);
    table.set_cache_index_and_filter_blocks(false);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_write_buffer_size(write_buffer);
    o.set_max_write_buffer_number(4);
    o.set_level_compaction_dynamic_level_bytes(true);
    o
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl Store {
    /// Opens (creating if needed) the database in `path`, with default settings.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, &StoreOptions::default())
    }

    /// Opens (creating if needed) the database in `path`.
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let cache = rocksdb::Cache::new_lru_cache(options.cache_bytes);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(4);
        opts.set_max_open_files(options.max_open_files);
        opts.increase_parallelism(std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(2));
        let cfs = || {
            vec![
                ColumnFamilyDescriptor::new(CF_ISSUERS, Options::default()),
                ColumnFamilyDescriptor::new(
                    CF_STATUS,
                    status_options(&cache, options.write_buffer_bytes.max(64 << 10)),
                ),
                ColumnFamilyDescriptor::new(CF_META, Options::default()),
                ColumnFamilyDescriptor::new(CF_AUDIT, Options::default()),
                ColumnFamilyDescriptor::new(
                    CF_RESPONSES,
                    response_options(&cache, options.write_buffer_bytes.max(64 << 10)),
                ),
                ColumnFamilyDescriptor::new(CF_OUTBOX, Options::default()),
                ColumnFamilyDescriptor::new(CF_CRLS, Options::default()),
            ]
        };
        // A full disk must not keep ocspd from answering: RocksDB needs a little space to open
        // for writing (a new log, a new MANIFEST); without it, the database is opened read-only
        // (the log's acknowledged writes replayed in memory), every write is refused with the
        // reason, and ocspd restarts itself in place once space really returns.
        let (db, fault) = match DB::open_cf_descriptors(&opts, path, cfs()) {
            Ok(db) => (db, None),
            Err(e) if e.as_ref().contains("No space left") => {
                tracing::error!(error = %e, path = %path.display(), "the disk is full: the database is opened read-only; answers go on, writes are refused until space returns");
                let db = DB::open_cf_descriptors_read_only(&opts, path, cfs(), false)
                    .map_err(|e| error::open_error(path, e))?;
                (
                    db,
                    Some(format!(
                        "No space left on device when the database was opened ({e}); read-only until space returns"
                    )),
                )
            }
            Err(e) => return Err(error::open_error(path, e)),
        };
        let store = Store {
            db,
            write_lock: Mutex::new(()),
            audit_seq: AtomicU64::new(0),
            feed_seq: AtomicU64::new(0),
            head: Default::default(),
            feed_floor: AtomicU64::new(u64::MAX),
            read_only: fault.clone(),
            write_fault: Mutex::new(fault),
            mirror: Default::default(),
        };
        let last = |cf| -> Result<Option<u64>, StoreError> {
            Ok(store
                .db
                .iterator_cf(store.cf(cf)?, rocksdb::IteratorMode::End)
                .next()
                .transpose()
                .db()?
                .map(|(k, _)| seq_of(&k)))
        };
        store.audit_seq.store(last(CF_AUDIT)?.unwrap_or(0) + 1, Ordering::SeqCst);
        // A trimmed outbox may be empty while cursors point past its end; never reuse numbers.
        let cursors_max = store.max_feed_cursor()?;
        let next_change = last(CF_OUTBOX)?.map(|s| s + 1).unwrap_or(0).max(cursors_max);
        store.feed_seq.store(next_change, Ordering::SeqCst);
        *store.head.next.lock().unwrap_or_else(|p| p.into_inner()) = next_change;
        let meta = store.cf(CF_META)?;
        match store.db.get_cf(meta, SCHEMA_KEY).db()? {
            None => store.db.put_cf_opt(meta, SCHEMA_KEY, SCHEMA_VERSION, &synced()).db()?,
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(StoreError::Schema(String::from_utf8_lossy(&v).into_owned()));
            }
        }
        if store.db.get_cf(meta, b"fleet-mirror").db()?.is_some() {
            store.mirror.store(true, Ordering::SeqCst);
        } else {
            store.drop_unspecified_reason_responses()?;
        }
        Ok(store)
    }

    /// Once per database: drops the stored responses of certificates revoked with an explicit
    /// unspecified reason, and queues purges of their cached copies, so that no answer with
    /// `revocationReason unspecified` signed by an older ocspd is served after the upgrade:
    /// they are signed again (live at once, then by the pre-signer) without it. Returns how
    /// many certificates were concerned.
    fn drop_unspecified_reason_responses(&self) -> Result<usize, StoreError> {
        let meta = self.cf(CF_META)?;
        if self.db.get_cf(meta, MIGRATION_UNSPECIFIED).db()?.is_some() {
            return Ok(0);
        }
        let status_cf = self.cf(CF_STATUS)?;
        let mut by_issuer: std::collections::BTreeMap<IssuerKey, Vec<Serial>> = Default::default();
        for item in self.db.iterator_cf(status_cf, rocksdb::IteratorMode::Start) {
            let (key, value) = item.db()?;
            let rec = StatusRecord::decode(&value)?;
            if matches!(rec.state, State::Revoked { reason: Some(RevocationReason::Unspecified), .. }) {
                let (issuer, serial) = split_status_key(&key)?;
                by_issuer.entry(issuer).or_default().push(serial);
            }
        }
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut total = 0;
        for (issuer, serials) in by_issuer {
            for chunk in serials.chunks(100_000) {
                let mut batch = WriteBatch::default();
                for serial in chunk {
                    self.drop_responses(&mut batch, &issuer, serial)?;
                }
                let change = self.append_change(&mut batch, &issuer, ChangeKind::Status, chunk.to_vec(), now)?;
                self.commit(batch, true)?;
                self.published(&change);
                total += chunk.len();
            }
        }
        self.db.put_cf_opt(meta, MIGRATION_UNSPECIFIED, b"1", &synced()).db()?;
        if total > 0 {
            tracing::info!(
                certificates = total,
                "dropped responses signed with an explicit unspecified reason; they are signed again without it"
            );
        }
        Ok(total)
    }

    /// Writes a batch (synced: durable when it returns), noting a failure or a recovery.
    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        if let Some(why) = &self.read_only {
            return Err(StoreError::Io(why.clone()));
        }
        let result = if sync { self.db.write_opt(batch, &synced()) } else { self.db.write(batch) };
        self.noted(result)
    }

    /// Notes the outcome of a write for [`Store::write_fault`].
    fn noted<T>(&self, result: Result<T, rocksdb::Error>) -> Result<T, StoreError> {
        // Opened read-only: the reason stays the fault (what recovery waits on), whatever a
        // write says.
        if let (Some(why), Err(_)) = (&self.read_only, &result) {
            return Err(StoreError::Io(why.clone()));
        }
        let mut fault = self.write_fault.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(v) => {
                *fault = None;
                Ok(v)
            }
            Err(e) => {
                let e = error::db_error(e);
                *fault = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The last write failure, if no write succeeded since (a full disk, an I/O error). After
    /// one, RocksDB refuses every write until the database is opened again.
    pub fn write_fault(&self) -> Option<String> {
        self.write_fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the database was opened read-only (the disk was full at start): it takes no
    /// write until ocspd opens it again.
    pub fn read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// Tries one small durable write, to learn whether the database takes writes now.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, b"probe", now_marker());
        self.commit(batch, true)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingColumnFamily(name))
    }

    /// Every registered issuer.
    pub fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        let cf = self.cf(CF_ISSUERS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (_, v) = item.db()?;
            out.push(IssuerRecord::decode(&v)?);
        }
        Ok(out)
    }

    /// One issuer by its key.
    pub fn issuer(&self, key: &IssuerKey) -> Result<Option<IssuerRecord>, StoreError> {
        let cf = self.cf(CF_ISSUERS)?;
        self.db.get_cf(cf, key.0).db()?.map(|v| IssuerRecord::decode(&v)).transpose()
    }

    /// Adds or replaces an issuer, durably, with its audit entry.
    pub fn put_issuer(&self, key: &IssuerKey, record: &IssuerRecord, audit: AuditEntry) -> Result<Change, StoreError> {
        self.own_write()?;
        let cf = self.cf(CF_ISSUERS)?;
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key.0, record.encode()?);
        // Everything that loads issuers (the registry, the CRL publisher) follows the feed.
        let change = self.append_change(&mut batch, key, ChangeKind::Issuer, Vec::new(), audit.time)?;
        self.append_audit(&mut batch, audit)?;
        self.commit(batch, true)?;
        self.published(&change);
        Ok(change)
    }

    fn append_audit(&self, batch: &mut WriteBatch, mut audit: AuditEntry) -> Result<(), StoreError> {
        let seq = self.audit_seq.fetch_add(1, Ordering::SeqCst);
        audit.seq = seq;
        batch.put_cf(self.cf(CF_AUDIT)?, seq.to_be_bytes(), audit.encode()?);
        Ok(())
    }

    /// Writes one audit entry on its own, durably: for calls that were refused and so change
    /// nothing else.
    pub fn record_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.own_write()?;
        let mut batch = WriteBatch::default();
        self.append_audit(&mut batch, audit)?;
        self.commit(batch, true)?;
        Ok(())
    }

    /// Audit entries matching `filter`, newest first.
    pub fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let cf = self.cf(CF_AUDIT)?;
        let mut out = Vec::new();
        let start = filter.before.map(|b| b.saturating_sub(1).to_be_bytes());
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Reverse),
            None => rocksdb::IteratorMode::End,
        };
        if filter.before == Some(0) {
            return Ok(out);
        }
        for item in self.db.iterator_cf(cf, mode) {
            let (_, v) = item.db()?;
            let entry = AuditEntry::decode(&v)?;
            if filter.since.is_some_and(|s| entry.time < s) {
                break;
            }
            if filter.matches(&entry) {
                let mut entry = entry;
                if filter.limit > 0 {
                    entry.clip_for_listing();
                }
                out.push(entry);
                if filter.limit > 0 && out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Counts the recorded certificates of an issuer: (good, revoked).
    pub fn count(&self, issuer: &IssuerKey) -> Result<(u64, u64), StoreError> {
        let (mut good, mut revoked) = (0, 0);
        self.each_of_issuer(CF_STATUS, issuer, |_, v| {
            match StatusRecord::decode(v)?.state {
                State::Good => good += 1,
                State::Revoked { .. } => revoked += 1,
            }
            Ok(())
        })?;
        Ok((good, revoked))
    }

    /// Calls `f` with the rest of the key (after the issuer) and the value of every entry of
    /// `issuer` in the column family `cf_name`, in key order.
    pub(crate) fn each_of_issuer(
        &self,
        cf_name: &'static str,
        issuer: &IssuerKey,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(cf_name)?;
        let mode = rocksdb::IteratorMode::From(&issuer.0, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item.db()?;
            if !k.starts_with(&issuer.0) {
                break;
            }
            f(&k[issuer.0.len()..], &v)?;
        }
        Ok(())
    }

    /// The serials of an issuer's revoked certificates.
    pub fn revoked_serials(&self, issuer: &IssuerKey) -> Result<Vec<Serial>, StoreError> {
        Ok(self.revoked(issuer)?.into_iter().map(|(serial, _)| serial).collect())
    }

    /// An issuer's revoked certificates with their records, in serial order (for CRLs).
    pub fn revoked(&self, issuer: &IssuerKey) -> Result<Vec<(Serial, StatusRecord)>, StoreError> {
        let mut out = Vec::new();
        self.each_of_issuer(CF_STATUS, issuer, |serial, v| {
            let record = StatusRecord::decode(v)?;
            if matches!(record.state, State::Revoked { .. }) {
                out.push((Serial::from_int_bytes(serial).map_err(|e| StoreError::Corrupt(e.to_string()))?, record));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The status record of one certificate, if it was ever recorded.
    pub fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        self.db.get_pinned_cf(cf, status_key(issuer, serial)).db()?.map(|v| StatusRecord::decode(&v)).transpose()
    }

    /// Records issued certificates (good, unless already recorded: a second import never
    /// overwrites a revocation). Durable when it returns; the audit entry lists the new serials.
    /// Returns how many were new.
    pub fn record_issued(
        &self,
        issuer: &IssuerKey,
        certs: &[(Serial, i64)],
        now: i64,
        audit: AuditEntry,
    ) -> Result<usize, StoreError> {
        let certs: Vec<Issued> = certs
            .iter()
            .map(|(serial, not_after)| Issued { serial: serial.clone(), not_after: *not_after, ca: false })
            .collect();
        Ok(self.record_certificates(issuer, &certs, now, audit)?.0)
    }

    /// [`Store::record_issued`] with each certificate's kind (CA or not). Returns how many were
    /// new and the change written to the feed, if any was.
    pub fn record_certificates(
        &self,
        issuer: &IssuerKey,
        certs: &[Issued],
        now: i64,
        mut audit: AuditEntry,
    ) -> Result<(usize, Option<u64>), StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let keys: Vec<Vec<u8>> = certs.iter().map(|c| status_key(issuer, &c.serial)).collect();
        let existing = self.db.batched_multi_get_cf(cf, &keys, false);
        let mut batch = WriteBatch::default();
        let mut new = Vec::new();
        let mut records = Vec::new();
        for (cert, found) in certs.iter().zip(existing) {
            if found.db()?.is_none() {
                records.push(StatusRecord::issued(cert.not_after, now, cert.ca));
                audit.serials.push(cert.serial.to_string());
                new.push(cert.serial.clone());
            }
        }
        if new.is_empty() {
            return Ok((0, None));
        }
        self.put_statuses_in_order(&mut batch, issuer, new.iter().zip(&records), false)?;
        let count = new.len();
        let change = self.append_change(&mut batch, issuer, ChangeKind::Recorded, new, now)?;
        self.append_audit(&mut batch, audit)?;
        self.commit(batch, true)?;
        self.published(&change);
        Ok((count, Some(change.seq)))
    }

    /// Revokes many certificates of one issuer in one atomic, durable batch, following the
    /// rules of [`StatusRecord::revoke`]. With `dry_run`, nothing is written and the summary
    /// says what would happen. The audit entry lists the serials that changed.
    #[allow(clippy::too_many_arguments)]
    pub fn revoke_many(
        &self,
        issuer: &IssuerKey,
        serials: &[Serial],
        time: i64,
        reason: RevocationReason,
        now: i64,
        dry_run: bool,
        audit: AuditEntry,
    ) -> Result<BulkRevocation, StoreError> {
        let r = self.revoke_batch(issuer, serials, time, reason, now, dry_run, audit)?;
        Ok(BulkRevocation { summary: r.summary, changed: r.changed, change: r.change })
    }

    /// [`Store::revoke_many`], also returning what happened to the first serial.
    #[allow(clippy::too_many_arguments)]
    fn revoke_batch(
        &self,
        issuer: &IssuerKey,
        serials: &[Serial],
        time: i64,
        reason: RevocationReason,
        now: i64,
        dry_run: bool,
        mut audit: AuditEntry,
    ) -> Result<Revocation, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let keys: Vec<Vec<u8>> = serials.iter().map(|s| status_key(issuer, s)).collect();
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let current = self
            .db
            .batched_multi_get_cf(cf, &keys, false)
            .into_iter()
            .map(|found| found.db()?.map(|v| StatusRecord::decode(&v)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let mut plan = Revocation::plan(serials, current, time, reason, now);
        if !dry_run && !plan.changed.is_empty() {
            let mut batch = WriteBatch::default();
            self.put_statuses_in_order(&mut batch, issuer, plan.changed.iter().map(|(s, r)| (s, r)), true)?;
            audit.serials.extend(plan.changed.iter().map(|(s, _)| s.to_string()));
            let serials: Vec<Serial> = plan.changed.iter().map(|(s, _)| s.clone()).collect();
            let written = self.append_change(&mut batch, issuer, ChangeKind::Status, serials, now)?;
            self.append_audit(&mut batch, audit)?;
            self.commit(batch, true)?;
            self.published(&written);
            plan.change = Some(written.seq);
        }
        Ok(plan)
    }

    /// Revokes one certificate, durably (see [`StatusRecord::revoke`] for the rules). Returns
    /// what happened and the change written to the feed, if it changed anything.
    pub fn revoke(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        time: i64,
        reason: RevocationReason,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(RevokeOutcome, Option<u64>), StoreError> {
        let r = self.revoke_batch(issuer, std::slice::from_ref(serial), time, reason, now, false, audit)?;
        Ok((r.first, r.change))
    }

    /// Lifts a certificateHold: the certificate answers good again (RFC 5280 removeFromCRL).
    pub fn unhold(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        now: i64,
        mut audit: AuditEntry,
    ) -> Result<UnholdOutcome, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let key = status_key(issuer, serial);
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let Some(current) = self.db.get_cf(cf, &key).db()?.map(|v| StatusRecord::decode(&v)).transpose()? else {
            return Ok(UnholdOutcome::NotIssued);
        };
        match current.unheld(now) {
            Some(rec) => {
                let mut batch = WriteBatch::default();
                batch.put_cf(cf, &key, rec.encode());
                self.drop_responses(&mut batch, issuer, serial)?;
                audit.serials.push(serial.to_string());
                let change = self.append_change(&mut batch, issuer, ChangeKind::Status, vec![serial.clone()], now)?;
                self.append_audit(&mut batch, audit)?;
                self.commit(batch, true)?;
                self.published(&change);
                Ok(UnholdOutcome::Lifted { record: rec, change: change.seq })
            }
            None => Ok(UnholdOutcome::NotOnHold(current)),
        }
    }
}

fn now_marker() -> [u8; 8] {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    t.to_be_bytes()
}

fn seq_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if key.len() == 8 {
        b.copy_from_slice(key);
    }
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests;
