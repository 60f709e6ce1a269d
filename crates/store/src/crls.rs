//! Signed CRLs, one per (issuer, shard), with the CRLNumber each was given.
//!
//! A CRL is written with its number in one synced write, and only if the number is above the
//! one stored: a shard's number never goes back or repeats, whatever crashed when. Every write
//! adds a [`ChangeKind::Crl`] change to the feed in the same batch, which carries the purge of
//! the CRL's URL downstream.

use crate::error::Db;
use crate::{crl_shard_serial, ChangeKind, CrlWrite, Store, StoreError, StoredCrl, CF_CRLS};
use ocsp_proto::IssuerKey;
use rocksdb::WriteBatch;

pub(crate) fn crl_key(issuer: &IssuerKey, shard: u32) -> Vec<u8> {
    let mut k = issuer.0.to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

impl Store {
    /// One issuer's stored CRL shard.
    pub fn crl(&self, issuer: &IssuerKey, shard: u32) -> Result<Option<StoredCrl>, StoreError> {
        let cf = self.cf(CF_CRLS)?;
        self.db.get_cf(cf, crl_key(issuer, shard)).db()?.map(|v| StoredCrl::decode(shard, &v)).transpose()
    }

    /// Every stored CRL shard of an issuer, by shard.
    pub fn crls(&self, issuer: &IssuerKey) -> Result<Vec<StoredCrl>, StoreError> {
        let mut out = Vec::new();
        self.each_of_issuer(CF_CRLS, issuer, |shard, v| {
            let shard = u32::from_be_bytes(shard.try_into().map_err(|_| StoreError::Corrupt("CRL key".into()))?);
            out.push(StoredCrl::decode(shard, v)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Stores a signed CRL shard, durably, if its number is above the stored one, with a
    /// change in the feed (which purges its URL downstream).
    pub fn put_crl(&self, issuer: &IssuerKey, crl: &StoredCrl, now: i64) -> Result<CrlWrite, StoreError> {
        let cf = self.cf(CF_CRLS)?;
        let key = crl_key(issuer, crl.shard);
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let current = self.db.get_cf(cf, &key).db()?.map(|v| StoredCrl::decode(crl.shard, &v)).transpose()?;
        if let Some(stale) = crl.refused_over(current.as_ref()) {
            return Ok(stale);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, &key, crl.encode());
        let shard = crl_shard_serial(crl.shard)?;
        let change = self.append_change(&mut batch, issuer, ChangeKind::Crl, vec![shard], now)?;
        self.commit(batch, true)?;
        self.published(&change);
        Ok(CrlWrite::Stored { change: change.seq })
    }
}
