//! Signed CRL shards as stored, and the rule that a shard's number only goes up.

use crate::StoreError;
use ocsp_proto::Serial;

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
    /// The rule every store applies when it is given this shard and holds `current`: a
    /// shard's CRLNumber only goes up, so a number not above the stored one is refused.
    pub fn refused_over(&self, current: Option<&StoredCrl>) -> Option<CrlWrite> {
        current.filter(|c| c.number >= self.number).map(|c| CrlWrite::Stale { current: c.number })
    }

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

/// What storing a CRL shard did.
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
