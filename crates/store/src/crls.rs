//! Signed CRLs, one per (issuer, shard), with the CRLNumber each was given.
//!
//! A CRL is written with its number in one synced write, and only if the number is above the
//! one stored: a shard's number never goes back or repeats, whatever crashed when. Every write
//! adds a [`ChangeKind::Crl`] change to the feed in the same batch, which carries the purge of
//! the CRL's URL downstream.

use crate::feed::ChangeKind;
use crate::{Store, StoreError, CF_CRLS};
use ocsp_proto::{IssuerKey, Serial};
use rocksdb::WriteBatch;

/// One signed CRL shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCrl {
    /// The shard (0 for a full CRL).
    pub shard: u32,
    /// Its CRLNumber.
    pub number: u64,
    /// thisUpdate, seconds since the epoch.
    pub this_update: i64,
    /// nextUpdate, seconds since the epoch.
    pub next_update: i64,
    /// How many certificates it lists.
    pub entries: u64,
    /// The CertificateList, DER.
    pub der: Vec<u8>,
}

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 8 + 8 + 8;

impl StoredCrl {
    /// The stored form (version 1): number, times, entries, the DER.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + self.der.len());
        v.push(VERSION);
        v.extend_from_slice(&self.number.to_be_bytes());
        v.extend_from_slice(&self.this_update.to_be_bytes());
        v.extend_from_slice(&self.next_update.to_be_bytes());
        v.extend_from_slice(&self.entries.to_be_bytes());
        v.extend_from_slice(&self.der);
        v
    }

    /// Reads the stored form of shard `shard`.
    pub fn decode(shard: u32, b: &[u8]) -> Result<StoredCrl, StoreError> {
        if b.len() < HEADER || b[0] != VERSION {
            return Err(StoreError::Corrupt(format!("CRL of shard {shard}")));
        }
        let u = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        Ok(StoredCrl {
            shard,
            number: u(1),
            this_update: u(9) as i64,
            next_update: u(17) as i64,
            entries: u(25),
            der: b[HEADER..].to_vec(),
        })
    }
}

pub(crate) fn crl_key(issuer: &IssuerKey, shard: u32) -> Vec<u8> {
    let mut k = issuer.0.to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// What [`Store::put_crl`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlWrite {
    /// Stored, with the change that purges its URL.
    Stored {
        /// The change written to the feed.
        change: u64,
    },
    /// Refused: a CRL with this number or a higher one is already stored.
    Stale {
        /// The number stored.
        current: u64,
    },
}

impl Store {
    /// One issuer's stored CRL shard.
    pub fn crl(&self, issuer: &IssuerKey, shard: u32) -> Result<Option<StoredCrl>, StoreError> {
        let cf = self.cf(CF_CRLS)?;
        self.db.get_cf(cf, crl_key(issuer, shard))?.map(|v| StoredCrl::decode(shard, &v)).transpose()
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
        if let Some(current) = self.db.get_cf(cf, &key)?.map(|v| StoredCrl::decode(crl.shard, &v)).transpose()? {
            if current.number >= crl.number {
                return Ok(CrlWrite::Stale { current: current.number });
            }
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

/// The one "serial" of a [`ChangeKind::Crl`] change: the shard travels as one-octet-or-more
/// INTEGER content, so the change names what to purge.
pub fn crl_shard_serial(shard: u32) -> Result<Serial, StoreError> {
    Serial::from_int_bytes(&shard_octets(shard)).map_err(|e| StoreError::Corrupt(format!("shard {shard}: {e}")))
}

/// A shard number as minimal positive INTEGER content octets.
fn shard_octets(shard: u32) -> Vec<u8> {
    let b = shard.to_be_bytes();
    let start = b.iter().position(|x| *x != 0).unwrap_or(3);
    let mut v = b[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    v
}

/// The shard a [`ChangeKind::Crl`] change names.
pub fn crl_shard_of(serial: &Serial) -> u32 {
    serial.as_bytes().iter().fold(0u32, |n, b| (n << 8) | u32::from(*b))
}
