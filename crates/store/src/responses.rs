//! Pre-signed responses, stored beside the statuses they state.
//!
//! Each response records the exact status record it was signed from. It is written only if
//! that record is still current (checked under the store's write lock), and every status change
//! deletes the certificate's responses in the same atomic batch. So once a revocation is
//! acknowledged, no response signed from the older status can be served or written back.

use crate::error::Db;
use crate::{
    status_key, ResponseEntry, StatusCursor, StatusEntry, StatusRecord, Store, StoreError, StoredResponse,
    CF_RESPONSES, CF_STATUS, RECORD_LEN,
};
use ocsp_proto::{HashAlg, IssuerKey, Serial};
use rocksdb::WriteBatch;

/// A status key with its encoded record.
pub(crate) type KeyedRecord = (Vec<u8>, [u8; RECORD_LEN]);

/// The key of a stored response: the status key and the CertID hash algorithm.
pub(crate) fn response_key(issuer: &IssuerKey, serial: &Serial, alg: HashAlg) -> Vec<u8> {
    response_key_of(status_key(issuer, serial), alg)
}

/// The key of a stored response, from its certificate's status key.
pub(crate) fn response_key_of(mut status_key: Vec<u8>, alg: HashAlg) -> Vec<u8> {
    status_key.push(alg_byte(alg));
    status_key
}

fn alg_byte(alg: HashAlg) -> u8 {
    match alg {
        HashAlg::Sha1 => 1,
        HashAlg::Sha256 => 2,
    }
}

impl Store {
    /// The stored response for one CertID form, if any.
    pub fn response(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        alg: HashAlg,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let cf = self.cf(CF_RESPONSES)?;
        self.db
            .get_pinned_cf(cf, response_key(issuer, serial, alg))
            .db()?
            .map(|v| StoredResponse::decode(&v))
            .transpose()
    }

    /// Stored responses for many answers (missing ones as `None`), in order.
    pub fn responses(&self, answers: &[ocsp_proto::AnswerKey]) -> Result<Vec<Option<StoredResponse>>, StoreError> {
        let cf = self.cf(CF_RESPONSES)?;
        let keys: Vec<Vec<u8>> = answers.iter().map(|a| response_key(&a.issuer, &a.serial, a.hash)).collect();
        self.db
            .batched_multi_get_cf(cf, &keys, false)
            .into_iter()
            .map(|r| r.db()?.map(|v| StoredResponse::decode(&v)).transpose())
            .collect()
    }

    /// Writes responses whose status is still the one they were signed from; drops the others.
    /// Returns how many were written. Not fsynced: responses can always be signed again.
    pub fn put_responses_if_current(
        &self,
        items: &[(IssuerKey, Serial, HashAlg, StoredResponse)],
    ) -> Result<usize, StoreError> {
        self.put_responses_checked(items, &|_| true)
    }

    /// Like [`Store::put_responses_if_current`], and only for issuers for which `signer_current`
    /// holds, checked under the write lock: a response signed by an identity that was replaced
    /// meanwhile (a promoted backup) is never written back after the replacement deleted the
    /// issuer's responses.
    pub fn put_responses_checked(
        &self,
        items: &[(IssuerKey, Serial, HashAlg, StoredResponse)],
        signer_current: &dyn Fn(&IssuerKey) -> bool,
    ) -> Result<usize, StoreError> {
        self.own_write()?;
        let status_cf = self.cf(CF_STATUS)?;
        let cf = self.cf(CF_RESPONSES)?;
        let keys: Vec<Vec<u8>> = items.iter().map(|(i, s, _, _)| status_key(i, s)).collect();
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let current = self.db.batched_multi_get_cf(status_cf, &keys, false);
        let mut batch = WriteBatch::default();
        let mut written = 0;
        let mut checked: Vec<(IssuerKey, bool)> = Vec::new();
        for ((issuer, serial, alg, resp), cur) in items.iter().zip(current) {
            let ok = match checked.iter().find(|(k, _)| k == issuer) {
                Some((_, ok)) => *ok,
                None => {
                    let ok = signer_current(issuer);
                    checked.push((*issuer, ok));
                    ok
                }
            };
            if ok && cur.db()?.is_some_and(|c| c.as_ref() == resp.source) {
                batch.put_cf(cf, response_key(issuer, serial, *alg), resp.encode());
                written += 1;
            }
        }
        self.commit(batch, false)?;
        Ok(written)
    }

    /// Up to `limit` stored responses after the answer `after`, in issuer, serial and hash
    /// order, with the answer each is for (for `ocspctl export`).
    pub fn scan_responses(
        &self,
        after: Option<&ocsp_proto::AnswerKey>,
        limit: usize,
    ) -> Result<Vec<ResponseEntry>, StoreError> {
        let cf = self.cf(CF_RESPONSES)?;
        let after = after.map(|a| response_key(&a.issuer, &a.serial, a.hash));
        let mode = match &after {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item.db()?;
            if after.as_ref().is_some_and(|a| k.as_ref() == a.as_slice()) {
                continue;
            }
            if k.len() <= 65 {
                return Err(StoreError::Corrupt("response key too short".into()));
            }
            let mut ik = [0u8; 64];
            ik.copy_from_slice(&k[..64]);
            let serial = Serial::from_int_bytes(&k[64..k.len() - 1]).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let alg = match k[k.len() - 1] {
                1 => HashAlg::Sha1,
                2 => HashAlg::Sha256,
                other => return Err(StoreError::Corrupt(format!("response key hash byte {other}"))),
            };
            out.push((ocsp_proto::AnswerKey::new(IssuerKey(ik), serial, alg), StoredResponse::decode(&v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` status entries from `from` (the start when none), in issuer then serial
    /// order, for a pass.
    pub fn scan_statuses(&self, from: Option<&StatusCursor>, limit: usize) -> Result<Vec<StatusEntry>, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let (start, after) = match from {
            None => (None, None),
            Some(StatusCursor::Issuer(issuer)) => (Some(issuer.0.to_vec()), None),
            Some(StatusCursor::After(issuer, serial)) => {
                let key = status_key(issuer, serial);
                (Some(key.clone()), Some(key))
            }
        };
        let after = after.as_deref();
        let mode = match start.as_deref() {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit);
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item.db()?;
            if after.as_ref().is_some_and(|a| a[..] == k[..]) {
                continue;
            }
            let (issuer, serial) = crate::split_status_key(&k)?;
            out.push(StatusEntry { issuer, serial, status: StatusRecord::decode(&v)? });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Status records of many certificates, in order.
    pub fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        let keys: Vec<Vec<u8>> = items.iter().map(|(i, s)| status_key(i, s)).collect();
        self.db
            .batched_multi_get_cf(cf, &keys, false)
            .into_iter()
            .map(|r| r.db()?.map(|v| StatusRecord::decode(&v)).transpose())
            .collect()
    }

    /// Adds status records of `issuer` to `batch` in key order and, with `drop_responses`,
    /// deletes of their stored responses; returns the keys with the encoded records, in the
    /// order written (the same serial twice: the later record wins, as in the caller's order).
    ///
    /// Key order because RocksDB's memtable is a skip list that starts each insert's search
    /// where the previous insert went in: serials are random, so in the caller's order every
    /// insert searched the whole memtable, comparing 64-byte issuer prefixes all the way down
    /// (70% of a fleet replica's CPU while it applied a bulk revocation, profiled with perf).
    pub(crate) fn put_statuses_in_order<'a>(
        &self,
        batch: &mut WriteBatch,
        issuer: &IssuerKey,
        records: impl IntoIterator<Item = (&'a Serial, &'a StatusRecord)>,
        drop_responses: bool,
    ) -> Result<Vec<KeyedRecord>, StoreError> {
        let status_cf = self.cf(CF_STATUS)?;
        let mut puts: Vec<KeyedRecord> =
            records.into_iter().map(|(serial, record)| (status_key(issuer, serial), record.encode())).collect();
        // Stable: duplicates keep their order.
        puts.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, record) in &puts {
            batch.put_cf(status_cf, key, record);
        }
        if drop_responses {
            let cf = self.cf(CF_RESPONSES)?;
            for (key, _) in &puts {
                for alg in HashAlg::ALL {
                    batch.delete_cf(cf, response_key_of(key.clone(), alg));
                }
            }
        }
        Ok(puts)
    }

    /// Adds deletes of both stored responses of a certificate to `batch`.
    pub(crate) fn drop_responses(
        &self,
        batch: &mut WriteBatch,
        issuer: &IssuerKey,
        serial: &Serial,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_RESPONSES)?;
        for alg in HashAlg::ALL {
            batch.delete_cf(cf, response_key(issuer, serial, alg));
        }
        Ok(())
    }

    /// A cheap read that fails when the database does (for readiness checks).
    pub fn estimated_statuses_checked(&self) -> Result<u64, StoreError> {
        let cf = self.cf(CF_STATUS)?;
        self.db.get_pinned_cf(cf, b"\0").db()?;
        Ok(self.db.property_int_value_cf(cf, "rocksdb.estimate-num-keys").db()?.unwrap_or(0))
    }

    /// Approximate number of status records (RocksDB's estimate), for progress bars.
    pub fn estimated_statuses(&self) -> u64 {
        self.cf(CF_STATUS)
            .ok()
            .and_then(|cf| self.db.property_int_value_cf(cf, "rocksdb.estimate-num-keys").ok().flatten())
            .unwrap_or(0)
    }
}
