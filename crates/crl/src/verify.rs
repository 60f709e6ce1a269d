//! One truth: every revoked certificate in the database is in exactly one served shard (its
//! own), with the revocation time and reason OCSP answers, and no other certificate is in any.

use crate::Publisher;
use der::Decode;
use ocsp_http::{crl_path, CrlDocs};
use ocsp_proto::{RevocationReason, Serial};
use ocsp_records::{State, StoreError};
use std::collections::HashMap;

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Shards checked.
    pub shards: usize,
    /// Entries read from them.
    pub entries: usize,
    /// Revoked certificates in the database checked against them.
    pub revoked: usize,
    /// Every disagreement, in words.
    pub problems: Vec<String>,
}

const OID_REASON: &str = "2.5.29.21";

/// Where a CRL lists a serial: the shard, revocationDate and reasonCode.
type Listing = (u32, i64, Option<u8>);

/// Compares the CRLs `publisher` serves with the database.
pub fn verify(publisher: &Publisher) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    for issuer in publisher.issuers() {
        let mut listed: HashMap<Vec<u8>, Vec<Listing>> = HashMap::new();
        let mut oldest_this_update = i64::MAX;
        for shard in 0..issuer.shards {
            report.shards += 1;
            let Some(doc) = publisher.get(&crl_path(&issuer.name, shard)) else {
                report.problems.push(format!("{} shard {shard}: no CRL is served", issuer.name));
                continue;
            };
            oldest_this_update = oldest_this_update.min(doc.this_update);
            let crl = match x509_cert::crl::CertificateList::from_der(&doc.der) {
                Ok(c) => c,
                Err(e) => {
                    report.problems.push(format!("{} shard {shard}: does not parse: {e}", issuer.name));
                    continue;
                }
            };
            for entry in crl.tbs_cert_list.revoked_certificates.iter().flatten() {
                report.entries += 1;
                let reason = entry.crl_entry_extensions.iter().flatten().find(|e| e.extn_id.to_string() == OID_REASON);
                // ENUMERATED: 0a 01 <code>
                let code = reason.and_then(|e| e.extn_value.as_bytes().get(2).copied());
                let time = entry.revocation_date.to_unix_duration().as_secs() as i64;
                listed.entry(entry.serial_number.as_bytes().to_vec()).or_default().push((shard, time, code));
            }
        }
        for (serial, record) in publisher.store.revoked(&issuer.key)? {
            let State::Revoked { time, reason } = record.state else { continue };
            report.revoked += 1;
            let want_shard = ocsp_proto::shard_of(serial.as_bytes(), issuer.shards);
            let want_code = reason.filter(|r| *r != RevocationReason::Unspecified).map(|r| r.code());
            match listed.remove(serial.as_bytes()).as_deref() {
                Some([(shard, t, code)]) => {
                    if *shard != want_shard {
                        report
                            .problems
                            .push(format!("{} {serial}: in shard {shard}, belongs in {want_shard}", issuer.name));
                    }
                    if *t != time || *code != want_code {
                        report.problems.push(format!(
                            "{} {serial}: the CRL says {t} reason {code:?}, OCSP says {time} reason {want_code:?}",
                            issuer.name
                        ));
                    }
                }
                Some(many) => {
                    report.problems.push(format!("{} {serial}: listed {} times", issuer.name, many.len()));
                }
                // Expired before the oldest CRL: rightly dropped (kept until the first CRL
                // after expiry).
                None if record.not_after > 0 && record.not_after < oldest_this_update => {}
                None => report.problems.push(format!("{} {serial}: revoked but on no CRL", issuer.name)),
            }
        }
        for serial in listed.keys() {
            let shown =
                Serial::from_int_bytes(serial).map(|s| s.to_string()).unwrap_or_else(|_| format!("{serial:02x?}"));
            report.problems.push(format!("{} {shown}: on a CRL but not revoked", issuer.name));
        }
    }
    Ok(report)
}
