//! The revocation database of ocspd, on RocksDB: issuers and certificate statuses.
//!
//! This is the only crate that touches RocksDB; `rocksdb::Error` never leaves it. The key
//! layout is described in `docs/store.md`. Status records are keyed by the issuer's
//! (SHA-256 name hash, SHA-256 key hash) and the serial, never by subject or key alone.
//!
//! It does not sign, serve or cache responses.

mod error;
mod records;

pub use error::StoreError;
pub use records::{IssuerRecord, RevokeOutcome, State, StatusRecord};

use ocsp_proto::{IssuerKey, RevocationReason, Serial};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::Path;
use std::sync::Mutex;

const CF_ISSUERS: &str = "issuers";
const CF_STATUS: &str = "status";
const CF_META: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema";
const SCHEMA_VERSION: &[u8] = b"1";

/// The database handle. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    db: DB,
    /// Serialises read-modify-write of status records (revocations), so two concurrent
    /// revocations of one certificate cannot both pass the "already revoked" check.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

/// The database key of one status record: issuer key (64 bytes) then serial octets.
pub fn status_key(issuer: &IssuerKey, serial: &Serial) -> Vec<u8> {
    let mut k = Vec::with_capacity(64 + serial.as_bytes().len());
    k.extend_from_slice(&issuer.0);
    k.extend_from_slice(serial.as_bytes());
    k
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl Store {
    /// Opens (creating if needed) the database in `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(
            std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(2),
        );
        let mut status_opts = Options::default();
        status_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_ISSUERS, Options::default()),
            ColumnFamilyDescriptor::new(CF_STATUS, status_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
        ];
        let db =
            DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::open(path, e))?;
        let store = Store {
            db,
            write_lock: Mutex::new(()),
        };
        let meta = store.cf(CF_META)?;
        match store.db.get_cf(meta, SCHEMA_KEY)? {
            None => store
                .db
                .put_cf_opt(meta, SCHEMA_KEY, SCHEMA_VERSION, &synced())?,
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(StoreError::Schema(String::from_utf8_lossy(&v).into_owned()));
            }
        }
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    /// Every registered issuer.
    pub fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        let cf = self.cf(CF_ISSUERS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (_, v) = item?;
            out.push(IssuerRecord::decode(&v)?);
        }
        Ok(out)
    }

    /// One issuer by its key.
    pub fn issuer(&self, key: &IssuerKey) -> Result<Option<IssuerRecord>, StoreError> {
        let cf = self.cf(CF_ISSUERS)?;
        self.db
            .get_cf(cf, key.0)?
            .map(|v| IssuerRecord::decode(&v))
            .transpose()
    }

    /// Adds or replaces an issuer, durably.
    pub fn put_issuer(&self, key: &IssuerKey, record: &IssuerRecord) -> Result<(), StoreError> {
        let cf = self.cf(CF_ISSUERS)?;
        self.db.put_cf_opt(cf, key.0, record.encode()?, &synced())?;
        Ok(())
    }

    /// The status record of one certificate, if it was ever recorded.
    pub fn status(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
    ) -> Result<Option<StatusRecord>, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        self.db
            .get_pinned_cf(cf, status_key(issuer, serial))?
            .map(|v| StatusRecord::decode(&v))
            .transpose()
    }

    /// Records issued certificates (good, unless already recorded: a second import never
    /// overwrites a revocation). Durable when it returns. Returns how many were new.
    pub fn record_issued(
        &self,
        issuer: &IssuerKey,
        certs: &[(Serial, i64)],
        now: i64,
    ) -> Result<usize, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let keys: Vec<Vec<u8>> = certs.iter().map(|(s, _)| status_key(issuer, s)).collect();
        let existing = self.db.batched_multi_get_cf(cf, &keys, false);
        let mut batch = WriteBatch::default();
        let mut new = 0;
        for ((key, (_, not_after)), found) in keys.iter().zip(certs).zip(existing) {
            if found?.is_none() {
                batch.put_cf(cf, key, StatusRecord::good(*not_after, now).encode());
                new += 1;
            }
        }
        self.db.write_opt(batch, &synced())?;
        Ok(new)
    }

    /// Revokes one certificate, durably, following RFC 5280 and the BRs: a revocation is final,
    /// except that certificateHold may be lifted and any reason may become keyCompromise.
    pub fn revoke(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        time: i64,
        reason: RevocationReason,
        now: i64,
    ) -> Result<RevokeOutcome, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let key = status_key(issuer, serial);
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let Some(current) = self
            .db
            .get_cf(cf, &key)?
            .map(|v| StatusRecord::decode(&v))
            .transpose()?
        else {
            return Ok(RevokeOutcome::NotIssued);
        };
        let outcome = current.revoke(time, reason, now);
        if let RevokeOutcome::Revoked(ref rec) | RevokeOutcome::Changed(ref rec) = outcome {
            self.db.put_cf_opt(cf, &key, rec.encode(), &synced())?;
        }
        Ok(outcome)
    }
}
