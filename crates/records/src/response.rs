//! Pre-signed responses as stored, with the status they were signed from.

use crate::{StatusRecord, StoreError};
use ocsp_proto::{IssuerKey, Serial};

/// One stored response with its key and the certificate it is for.
pub type ResponseEntry = (ocsp_proto::AnswerKey, StoredResponse);

/// A signed OCSPResponse as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// thisUpdate.
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// producedAt.
    pub produced_at: i64,
    /// The encoded status record it was signed from.
    pub source: [u8; 27],
    /// The OCSPResponse DER.
    pub der: Vec<u8>,
}

const HEADER: usize = 1 + 8 * 3 + 27;

impl StoredResponse {
    /// The stored form (version 1): times, the source status record, the DER.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + self.der.len());
        v.push(1);
        v.extend_from_slice(&self.this_update.to_be_bytes());
        v.extend_from_slice(&self.next_update.to_be_bytes());
        v.extend_from_slice(&self.produced_at.to_be_bytes());
        v.extend_from_slice(&self.source);
        v.extend_from_slice(&self.der);
        v
    }

    /// Reads the stored form.
    pub fn decode(b: &[u8]) -> Result<StoredResponse, StoreError> {
        if b.len() < HEADER || b[0] != 1 {
            return Err(StoreError::Corrupt(format!("stored response of {} bytes", b.len())));
        }
        let i64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        let mut source = [0u8; 27];
        source.copy_from_slice(&b[25..52]);
        Ok(StoredResponse {
            this_update: i64_at(1),
            next_update: i64_at(9),
            produced_at: i64_at(17),
            source,
            der: b[HEADER..].to_vec(),
        })
    }

    /// True when signed from exactly this status record.
    pub fn signed_from(&self, status: &StatusRecord) -> bool {
        self.source == status.encode()
    }
}

/// Where a scan of statuses starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusCursor {
    /// At the first certificate of this issuer.
    Issuer(IssuerKey),
    /// Just after this certificate.
    After(IssuerKey, Serial),
}

/// One certificate as the pre-signer sees it.
#[derive(Debug, Clone)]
pub struct StatusEntry {
    /// Its issuer.
    pub issuer: IssuerKey,
    /// Its serial.
    pub serial: Serial,
    /// Its status.
    pub status: StatusRecord,
}
