//! Changes: what the change feed carries, in the order they committed.

use crate::StoreError;
use ocsp_proto::{IssuerKey, Serial};

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Certificates were recorded as issued (nothing was cached for them but "unknown").
    Recorded,
    /// The status of these certificates changed (revoked, reason changed, hold lifted).
    Status,
    /// Everything the issuer answers changed: its signing identity changed, or it was retired.
    Signer,
    /// One of the issuer's CRL shards was signed again (its one "serial" is the shard number,
    /// see [`Change::crl_shard`]).
    Crl,
    /// Fleet mode: responses were signed and stored for these certificates; replicas copy
    /// them. Nothing any cache holds is wrong because of it.
    Signed,
    /// Fleet mode: the issuer's record changed without changing its answers (registered, a
    /// backup or CRL key set); replicas copy it and load the issuer.
    Issuer,
}

impl ChangeKind {
    /// The kind's number in the stored form of a change.
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Recorded => 0,
            ChangeKind::Status => 1,
            ChangeKind::Signer => 2,
            ChangeKind::Crl => 3,
            ChangeKind::Signed => 4,
            ChangeKind::Issuer => 5,
        }
    }

    /// The kind of a stored change's number.
    pub fn from_byte(b: u8) -> Option<ChangeKind> {
        Some(match b {
            0 => ChangeKind::Recorded,
            1 => ChangeKind::Status,
            2 => ChangeKind::Signer,
            3 => ChangeKind::Crl,
            4 => ChangeKind::Signed,
            5 => ChangeKind::Issuer,
            _ => return None,
        })
    }
}

/// One change: some certificates of an issuer, or (kind [`ChangeKind::Signer`]) everything of
/// the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the feed.
    pub seq: u64,
    /// When the change was made (seconds since the epoch).
    pub time: i64,
    /// The issuer.
    pub issuer: IssuerKey,
    /// What changed.
    pub kind: ChangeKind,
    /// The certificates concerned; empty for a [`ChangeKind::Signer`] change.
    pub serials: Vec<Serial>,
}

impl Change {
    /// The CRL shard a [`ChangeKind::Crl`] change names.
    pub fn crl_shard(&self) -> Option<u32> {
        (self.kind == ChangeKind::Crl).then(|| self.serials.first().map(crate::crl::crl_shard_of)).flatten()
    }

    /// Whether this changes OCSP answers of certificates (their status, or their signer).
    pub fn changes_answers(&self) -> bool {
        matches!(self.kind, ChangeKind::Recorded | ChangeKind::Status | ChangeKind::Signer)
    }

    /// Whether this concerns everything of the issuer.
    pub fn issuer_wide(&self) -> bool {
        self.kind == ChangeKind::Signer
    }

    /// Whether caches downstream hold answers this change makes wrong (a new certificate's
    /// "unknown" answers are never cached downstream long enough to need a purge).
    pub fn needs_purge(&self) -> bool {
        matches!(self.kind, ChangeKind::Status | ChangeKind::Signer | ChangeKind::Crl)
    }

    /// Version 2: kind byte after the version. Version 1 (the purge outbox of older ocspd) had
    /// no kind: serials meant a status change, none an issuer-wide one.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(2 + 8 + 64 + 4 + self.serials.len() * 21);
        v.push(2);
        v.push(self.kind.code());
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

    /// Reads the stored form of change `seq`.
    pub fn decode(seq: u64, b: &[u8]) -> Result<Change, StoreError> {
        let bad = || StoreError::Corrupt(format!("change {seq}"));
        let (kind, b) = match b.first() {
            Some(1) => (None, &b[1..]),
            Some(2) if b.len() > 1 => (Some(ChangeKind::from_byte(b[1]).ok_or_else(bad)?), &b[2..]),
            _ => return Err(bad()),
        };
        if b.len() < 8 + 64 + 4 {
            return Err(bad());
        }
        let time = i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?);
        let mut issuer = [0u8; 64];
        issuer.copy_from_slice(&b[8..72]);
        let count = u32::from_be_bytes(b[72..76].try_into().map_err(|_| bad())?) as usize;
        let mut serials = Vec::with_capacity(count.min(1 << 20));
        let mut i = 76;
        for _ in 0..count {
            let len = *b.get(i).ok_or_else(bad)? as usize;
            let bytes = b.get(i + 1..i + 1 + len).ok_or_else(bad)?;
            serials.push(Serial::from_int_bytes(bytes).map_err(|_| bad())?);
            i += 1 + len;
        }
        let kind = kind.unwrap_or(if serials.is_empty() { ChangeKind::Signer } else { ChangeKind::Status });
        Ok(Change { seq, time, issuer: IssuerKey(issuer), kind, serials })
    }
}
