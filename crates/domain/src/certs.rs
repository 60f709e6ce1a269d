//! Certificates: recording them as issued (with their history, for imports), and their status.

use crate::api::{self, AddCerts, AddedCerts, StatusView};
use crate::error::invalid;
use crate::{audit, Domain, DomainError, FUTURE_SLACK};
use ocsp_proto::x509::{pem_blocks, CertInfo};
use ocsp_proto::{RevocationReason, Serial};
use ocsp_records::State;
use ocsp_sign::{verify_issued_by, IssuerEntry};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Certificates to record, for one issuer.
type IssuedList = Vec<ocsp_records::Issued>;

impl Domain {
    /// Records issued certificates (and, for imports, their revocations); every entry is
    /// checked before anything is written.
    pub fn add_certs(&self, req: AddCerts, who: &str) -> Result<AddedCerts, DomainError> {
        let now = self.clock.now();
        let named = req.issuer.as_deref().map(|n| self.issuer(n)).transpose()?;
        let mut by_issuer: Vec<(Arc<IssuerEntry>, IssuedList)> = Vec::new();
        // (issuer index, time, reason) -> serials
        let mut revocations: BTreeMap<(usize, i64, u8), Vec<Serial>> = BTreeMap::new();
        // Revocations the issuers' reason profiles refuse: all are reported, nothing written.
        let mut refused = Vec::new();
        for (i, spec) in req.certs.iter().enumerate() {
            let (issuer, serial, not_after, ca) = match (&spec.cert_pem, &spec.serial) {
                (Some(pem), None) => {
                    let certs: Vec<Vec<u8>> = pem_blocks(pem, "CERTIFICATE");
                    let der = match certs.as_slice() {
                        [one] => one.clone(),
                        _ => pem.as_bytes().to_vec(),
                    };
                    let cert =
                        CertInfo::from_pem_or_der(&der).map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
                    let issuer = match &named {
                        Some(n) if verify_issued_by(&cert, &n.cert) => n.clone(),
                        Some(n) => {
                            return Err(invalid(format!(
                                "certificate {} (serial {}) is not issued by {:?} (issuer name or signature differs)",
                                i + 1,
                                cert.serial_hex(),
                                n.name
                            )))
                        }
                        None => self.registry.all().into_iter().find(|e| verify_issued_by(&cert, &e.cert)).ok_or_else(
                            || {
                                invalid(format!(
                                    "certificate {} (serial {}): no registered issuer signed it",
                                    i + 1,
                                    cert.serial_hex()
                                ))
                            },
                        )?,
                    };
                    let serial = Serial::from_int_bytes(&cert.serial).map_err(|e| invalid(e.to_string()))?;
                    (issuer, serial, cert.not_after, cert.is_ca)
                }
                (None, Some(hex)) => {
                    let issuer = named.clone().ok_or_else(|| invalid("recording a serial needs --issuer"))?;
                    (issuer, Serial::from_hex(hex).map_err(invalid)?, spec.not_after.unwrap_or(0), spec.ca)
                }
                _ => return Err(invalid(format!("certificate {}: give either a certificate or a serial", i + 1))),
            };
            let idx = match by_issuer.iter().position(|(e, _)| e.key == issuer.key) {
                Some(idx) => idx,
                None => {
                    by_issuer.push((issuer, Vec::new()));
                    by_issuer.len() - 1
                }
            };
            if let Some(rev) = &spec.revocation {
                let asked =
                    RevocationReason::parse(&rev.reason).map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
                let reason = match self.admit(&by_issuer[idx].0, asked, ca) {
                    Ok(r) => r,
                    Err(e) => {
                        refused.push(format!("certificate {} (serial {serial}, {asked}): {e}", i + 1));
                        continue;
                    }
                };
                if rev.time > now + FUTURE_SLACK {
                    return Err(invalid(format!(
                        "certificate {}: revocation time {} is in the future",
                        i + 1,
                        api::rfc3339(rev.time)
                    )));
                }
                revocations.entry((idx, rev.time, reason.code())).or_default().push(serial.clone());
            }
            by_issuer[idx].1.push(ocsp_records::Issued { serial, not_after, ca });
        }
        if !refused.is_empty() {
            return Err(invalid(format!(
                "{} revocation(s) refused by the issuer's reason profile; nothing was recorded:\n{}",
                refused.len(),
                refused.join("\n")
            )));
        }
        let mut out = AddedCerts::default();
        for (issuer, list) in &by_issuer {
            let a = audit(now, who, "cert.add", &issuer.name, req.why.as_deref())?;
            let (added, change) = self.store.record_certificates(&issuer.key, list, now, a)?;
            // A new certificate goes from unknown to good: no promise waits on other nodes.
            if let Some(seq) = change {
                self.settle_here(seq);
            }
            out.added += added;
            out.already += list.len() - added;
            out.serials.extend(list.iter().map(|c| (issuer.name.clone(), c.serial.to_string())));
        }
        for ((idx, time, code), serials) in revocations {
            let issuer = &by_issuer[idx].0;
            let reason =
                RevocationReason::from_code(code).ok_or_else(|| DomainError::Internal("reason code".into()))?;
            let mut a = audit(now, who, "revoke", &issuer.name, req.why.as_deref())?;
            a.reason = Some(reason.name().to_string());
            let ocsp_records::BulkRevocation { summary, change, .. } =
                self.store.revoke_many(&issuer.key, &serials, time, reason, now, false, a)?;
            let confirmed = if change.is_some() { self.settle(change) } else { self.settle_committed() };
            out.confirmed.add(confirmed);
            out.revoked += summary.revoked + summary.changed;
            out.conflicts.extend(summary.refused.iter().map(|s| s.to_string()));
        }
        Ok(out)
    }

    pub(crate) fn status_view(
        issuer: &str,
        serial: &Serial,
        rec: Option<ocsp_records::StatusRecord>,
        outcome: Option<&str>,
    ) -> StatusView {
        let (status, time, reason) = match rec.map(|r| r.state) {
            None => ("unknown", None, None),
            Some(State::Good) => ("good", None, None),
            Some(State::Revoked { time, reason }) => {
                ("revoked", Some(api::rfc3339(time)), reason.map(|r| r.name().to_string()))
            }
        };
        StatusView {
            issuer: issuer.to_string(),
            serial: serial.to_string(),
            status: status.into(),
            revocation_time: time,
            reason,
            not_after: rec.filter(|r| r.not_after > 0).map(|r| api::rfc3339(r.not_after)),
            outcome: outcome.map(str::to_string),
            purge_pending: None,
            confirmed: Default::default(),
            note: None,
        }
    }

    /// The recorded status of one certificate (unknown when never recorded).
    pub fn status(&self, issuer: &str, serial: &str) -> Result<StatusView, DomainError> {
        let issuer = self.issuer(issuer)?;
        let serial = Serial::from_hex(serial).map_err(invalid)?;
        let rec = self.store.status(&issuer.key, &serial)?;
        let mut view = Self::status_view(&issuer.name, &serial, rec, None);
        view.note = self.store.read_note();
        Ok(view)
    }
}
