//! X.509 v2 CRLs (RFC 5280 section 5) as the CA/Browser Forum Baseline Requirements (7.2) want
//! them: CRLNumber, AuthorityKeyIdentifier, a critical IssuingDistributionPoint naming the URL
//! the CRL is served at (one shard of a partitioned CRL), and per entry a reasonCode unless the
//! reason is unspecified (BR 7.2.2: then the extension is left out).
//!
//! Encoding only: the caller signs [`CrlBuilder::tbs`] and [`CrlBuilder::assemble`] wraps the
//! signature. Entries are written straight into one buffer, so a CRL of millions of entries is
//! one pass and one allocation of its final size.

use crate::der::{element, tag, write};
use crate::{RevocationReason, SignatureAlgorithm};

const OID_AKI: &[u8] = &[0x55, 0x1d, 0x23];
const OID_CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
const OID_IDP: &[u8] = &[0x55, 0x1d, 0x1c];
const OID_REASON: &[u8] = &[0x55, 0x1d, 0x15];

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// The serial's content octets (two's complement, minimal), as in the certificate.
    pub serial: Vec<u8>,
    /// revocationDate, seconds since the epoch.
    pub revoked_at: i64,
    /// The reason; `None` and unspecified are both written without a reasonCode.
    pub reason: Option<RevocationReason>,
}

/// Which certificates a shard covers (the IssuingDistributionPoint's scope flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlScope {
    /// Subscriber (end-entity) certificates only: onlyContainsUserCerts.
    Subscribers,
    /// CA certificates only (a root's CRL of its issued CAs): onlyContainsCACerts.
    Cas,
    /// Both (no scope flag).
    All,
}

/// A CRL before it is signed.
#[derive(Debug, Clone)]
pub struct CrlBuilder {
    /// The issuer's subject Name, DER, exactly as in its certificate.
    pub issuer_name: Vec<u8>,
    /// The issuer's subjectKeyIdentifier (or the SHA-1 of its key, RFC 5280 4.2.1.2 method 1).
    pub authority_key_id: Vec<u8>,
    /// CRLNumber: strictly increasing for this shard's URL.
    pub number: u64,
    /// thisUpdate, seconds since the epoch.
    pub this_update: i64,
    /// nextUpdate, seconds since the epoch.
    pub next_update: i64,
    /// The URL the CRL is served at (the IssuingDistributionPoint fullName).
    pub url: String,
    /// Which certificates it covers.
    pub scope: CrlScope,
}

impl CrlBuilder {
    /// The DER of the TBSCertList with `entries` (written in the order given), signed with
    /// `alg`.
    pub fn tbs(&self, alg: SignatureAlgorithm, entries: &[CrlEntry]) -> Vec<u8> {
        let mut revoked = Vec::with_capacity(entries.len() * 40);
        for e in entries {
            let serial = element(tag::INTEGER, &[&e.serial]);
            let date = time(e.revoked_at);
            match e.reason.filter(|r| *r != RevocationReason::Unspecified) {
                Some(reason) => {
                    let code = element(tag::ENUMERATED, &[&[reason.code()]]);
                    let ext = extension(OID_REASON, false, &code);
                    let exts = element(tag::SEQUENCE, &[&ext]);
                    write(&mut revoked, tag::SEQUENCE, &[&serial, &date, &exts]);
                }
                None => write(&mut revoked, tag::SEQUENCE, &[&serial, &date]),
            }
        }
        let mut exts = Vec::new();
        exts.extend(extension(OID_AKI, false, &element(tag::SEQUENCE, &[&element(0x80, &[&self.authority_key_id])])));
        exts.extend(extension(OID_CRL_NUMBER, false, &integer_u64(self.number)));
        // IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0] { fullName [0]
        // GeneralNames { uniformResourceIdentifier [6] } }, onlyContainsUserCerts [1],
        // onlyContainsCACerts [2] ... }
        let uri = element(0x86, &[self.url.as_bytes()]);
        let dp = element(0xa0, &[&element(0xa0, &[&uri])]);
        let scope = match self.scope {
            CrlScope::Subscribers => element(0x81, &[&[0xff]]),
            CrlScope::Cas => element(0x82, &[&[0xff]]),
            CrlScope::All => Vec::new(),
        };
        exts.extend(extension(OID_IDP, true, &element(tag::SEQUENCE, &[&dp, &scope])));
        let version = element(tag::INTEGER, &[&[1]]);
        let sig_alg = alg.algorithm_identifier();
        let this_update = time(self.this_update);
        let next_update = time(self.next_update);
        let list = if entries.is_empty() { Vec::new() } else { element(tag::SEQUENCE, &[&revoked]) };
        drop(revoked);
        let crl_exts = element(tag::explicit(0), &[&element(tag::SEQUENCE, &[&exts])]);
        element(tag::SEQUENCE, &[&version, sig_alg, &self.issuer_name, &this_update, &next_update, &list, &crl_exts])
    }

    /// The CertificateList: `tbs` with its signature.
    pub fn assemble(tbs: &[u8], alg: SignatureAlgorithm, signature: &[u8]) -> Vec<u8> {
        let bits = element(tag::BIT_STRING, &[&[0], signature]);
        element(tag::SEQUENCE, &[tbs, alg.algorithm_identifier(), &bits])
    }
}

/// The most shards an issuer's CRL may be cut into.
pub const MAX_CRL_SHARDS: u32 = 4096;

/// The shard of `n` a certificate's CRL entry goes to: a fixed function of its serial (the
/// first 8 bytes of the SHA-256 of its content octets, modulo `n`), so it never moves while
/// `n` stays the same.
pub fn shard_of(serial: &[u8], n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    let h = crate::HashAlg::Sha256.digest(serial);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(first) % u64::from(n)) as u32
}

/// One Extension: extnID, critical (only when true, DER), extnValue.
fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = element(tag::OID, &[oid]);
    let crit: Vec<u8> = if critical { element(tag::BOOLEAN, &[&[0xff]]) } else { Vec::new() };
    let value = element(tag::OCTET_STRING, &[value]);
    element(tag::SEQUENCE, &[&id, &crit, &value])
}

/// A non-negative INTEGER.
fn integer_u64(n: u64) -> Vec<u8> {
    crate::der::unsigned_integer(&n.to_be_bytes())
}

/// RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050, always in Zulu and to the
/// second.
pub fn time(t: i64) -> Vec<u8> {
    use chrono::Datelike;
    let dt = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
    if dt.year() < 2050 {
        element(tag::UTC_TIME, &[dt.format("%y%m%d%H%M%SZ").to_string().as_bytes()])
    } else {
        element(tag::GENERALIZED_TIME, &[dt.format("%Y%m%d%H%M%SZ").to_string().as_bytes()])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use der::Decode;

    fn builder() -> CrlBuilder {
        CrlBuilder {
            issuer_name: element(tag::SEQUENCE, &[]),
            authority_key_id: vec![1, 2, 3],
            number: 300,
            this_update: 1_700_000_000,
            next_update: 1_700_086_400,
            url: "http://crl.example/int/0.crl".into(),
            scope: CrlScope::Subscribers,
        }
    }

    #[test]
    fn a_crl_parses_with_its_entries_extensions_and_times() {
        let entries = vec![
            CrlEntry { serial: vec![0x01], revoked_at: 1_699_000_000, reason: Some(RevocationReason::KeyCompromise) },
            CrlEntry {
                serial: vec![0x00, 0xff],
                revoked_at: 1_699_000_001,
                reason: Some(RevocationReason::Unspecified),
            },
            CrlEntry { serial: vec![0x02], revoked_at: 1_699_000_002, reason: None },
        ];
        let tbs = builder().tbs(SignatureAlgorithm::EcdsaP256Sha256, &entries);
        let crl = CrlBuilder::assemble(&tbs, SignatureAlgorithm::EcdsaP256Sha256, &[0x30, 0x00]);
        let parsed = x509_cert::crl::CertificateList::from_der(&crl).unwrap();
        let t = &parsed.tbs_cert_list;
        assert_eq!(t.this_update.to_unix_duration().as_secs(), 1_700_000_000);
        assert_eq!(t.next_update.unwrap().to_unix_duration().as_secs(), 1_700_086_400);
        let revoked = t.revoked_certificates.as_ref().unwrap();
        assert_eq!(revoked.len(), 3);
        assert_eq!(revoked[1].serial_number.as_bytes(), &[0x00, 0xff]);
        assert!(revoked[0].crl_entry_extensions.as_ref().is_some_and(|e| e.len() == 1), "keyCompromise is coded");
        assert!(revoked[1].crl_entry_extensions.is_none(), "unspecified is never coded");
        assert!(revoked[2].crl_entry_extensions.is_none());
        let exts = t.crl_extensions.as_ref().unwrap();
        let ids: Vec<String> = exts.iter().map(|e| e.extn_id.to_string()).collect();
        assert_eq!(ids, ["2.5.29.35", "2.5.29.20", "2.5.29.28"]);
        assert!(exts[2].critical && !exts[0].critical && !exts[1].critical, "only the IDP is critical");
        assert!(exts[2].extn_value.as_bytes().windows(28).any(|w| w == b"http://crl.example/int/0.crl"));
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list_and_late_dates_are_generalized_time() {
        let mut b = builder();
        b.next_update = 2_556_144_000; // 2051
        let tbs = b.tbs(SignatureAlgorithm::EcdsaP256Sha256, &[]);
        let crl = CrlBuilder::assemble(&tbs, SignatureAlgorithm::EcdsaP256Sha256, &[0x30, 0x00]);
        let parsed = x509_cert::crl::CertificateList::from_der(&crl).unwrap();
        assert!(parsed.tbs_cert_list.revoked_certificates.is_none());
        assert_eq!(time(2_556_144_000)[0], tag::GENERALIZED_TIME);
        assert_eq!(time(1_700_000_000)[0], tag::UTC_TIME);
    }
}
