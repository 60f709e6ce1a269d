use crate::api::{
    self, AddCerts, AddIssuer, AddedCerts, BulkResult, BulkRevoke, ErrorBody, IssuerView, Retire, Revoke, StatusView,
    Unhold,
};
use crate::{AdminAuth, Permission};
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Request;
use ocsp_http::{Handler, HttpResponse};
use ocsp_proto::x509::{pem_blocks, CertInfo};
use ocsp_proto::{Clock, RevocationReason, Serial};
use ocsp_sign::{verify_issued_by, IssuerEntry, IssuerRegistry};
use ocsp_store::{AuditEntry, AuditFilter, IssuerRecord, RevokeOutcome, State, Store, UnholdOutcome};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bodies up to this size are accepted (a batch of PEM certificates or serials).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Revocation times may lie this far in the future, for clock skew between staff and server.
const FUTURE_SLACK: i64 = 300;
/// How far back a revocation other than keyCompromise may be dated.
const BACKDATE_SLACK: i64 = 300;
/// The most serials one bulk call takes; ocspctl sends files in batches of this or less.
pub const MAX_BULK: usize = 100_000;
/// Audit entries per listing unless asked otherwise, and the most one listing returns.
const AUDIT_PAGE: usize = 100;
const MAX_AUDIT_PAGE: usize = 1000;
/// Serials shown per audit entry in a listing (the count says how many it names).
const MAX_AUDIT_SERIALS: usize = 20;

/// What the admin API acts on.
pub struct AdminState {
    /// The database.
    pub store: Arc<Store>,
    /// The issuers being served; updated when one is registered or retired.
    pub registry: Arc<IssuerRegistry>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The pre-signer, when one runs.
    pub presigner: Option<Arc<ocsp_presign::Presigner>>,
    /// The memory tier, which peers' purges evict.
    pub memory: Option<Arc<ocsp_http::MemoryTier>>,
    /// The purge fan-out.
    pub purger: Option<Arc<ocsp_purge::Purger>>,
    /// How long a single revocation or unhold waits for its purge to be accepted by every
    /// target that is up, before it returns.
    pub purge_wait: std::time::Duration,
    /// Each issuer's revocation-reason profile and nonce policy.
    pub policies: Arc<ocsp_proto::Policies>,
}

/// The admin API service.
pub struct AdminService {
    state: AdminState,
    auth: AdminAuth,
}

/// A refused or failed admin operation: the HTTP status and what to tell the caller.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Failure {}

/// Serials with their notAfter, for one issuer.
type IssuedList = Vec<ocsp_store::Issued>;

type Reply = Result<(StatusCode, serde_json::Value), Failure>;

fn bad(msg: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    serde_json::to_value(value).map(|v| (status, v)).map_err(internal)
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.len() >= i + 3 => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn audit(now: i64, who: &str, action: &str, issuer: &str, why: Option<&str>) -> AuditEntry {
    let mut a = AuditEntry::new(now, who, action);
    a.issuer = Some(issuer.to_string());
    a.detail = why.unwrap_or("").to_string();
    a
}

impl AdminService {
    /// The admin API over `state`, accepting the credentials in `auth`.
    pub fn new(state: AdminState, auth: AdminAuth) -> AdminService {
        AdminService { state, auth }
    }

    fn issuer_view(entry: &IssuerEntry, key: &str, backup_key: Option<&str>, now: i64) -> IssuerView {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        IssuerView {
            name: entry.name.clone(),
            subject: entry.cert.subject_text(),
            sha1_name_hash: hex(&entry.hashes.sha1_name),
            sha1_key_hash: hex(&entry.hashes.sha1_key),
            sha256_name_hash: hex(&entry.hashes.sha256_name),
            sha256_key_hash: hex(&entry.hashes.sha256_key),
            responder: entry.identity.certificate().subject_text(),
            delegated: entry.identity.is_delegated(),
            key: key.to_string(),
            responder_expires_in_days: entry.identity.expires_in(now) / 86_400,
            backup_responder: entry.backup.as_ref().map(|b| b.certificate().subject_text()),
            backup_key: entry.backup.as_ref().and(backup_key).map(str::to_string),
            backup_expires_in_days: entry.backup.as_ref().map(|b| b.expires_in(now) / 86_400),
            good: None,
            revoked: None,
            retired: None,
            reason_profile: String::new(),
            nonce_policy: String::new(),
        }
    }

    fn record_view(&self, r: &IssuerRecord, now: i64) -> Option<IssuerView> {
        // Retired issuers are not in the registry; show what the record says.
        let entry = match self.state.registry.by_name(&r.name) {
            Some(e) => e,
            None => Arc::new(
                IssuerEntry::load(&r.name, &r.cert_der, r.responder_cert_der.as_deref(), &r.responder_key, now).ok()?,
            ),
        };
        let mut v = Self::issuer_view(&entry, &r.responder_key, r.backup_responder_key.as_deref(), now);
        v.retired = r.retired_at.map(api::rfc3339);
        let policy = self.state.policies.of(&r.name);
        v.reason_profile = policy.reasons.name().to_string();
        v.nonce_policy = policy.nonces.name().to_string();
        Some(v)
    }

    /// Every registered issuer, retired ones included.
    pub fn list_issuers(&self) -> Result<Vec<IssuerView>, Failure> {
        let now = self.state.clock.now();
        let records = self.state.store.issuers().map_err(internal)?;
        Ok(records.iter().filter_map(|r| self.record_view(r, now)).collect())
    }

    fn record(&self, name: &str) -> Result<IssuerRecord, Failure> {
        self.state.store.issuers().map_err(internal)?.into_iter().find(|r| r.name == name).ok_or_else(|| {
            Failure(StatusCode::NOT_FOUND, format!("no issuer named {name:?}; `ocspctl issuer list` shows them"))
        })
    }

    /// One issuer with its certificate counts.
    pub fn show_issuer(&self, name: &str) -> Result<IssuerView, Failure> {
        let now = self.state.clock.now();
        let record = self.record(name)?;
        let mut view = self.record_view(&record, now).ok_or_else(|| internal("issuer record does not load"))?;
        let entry = IssuerEntry::load(&record.name, &record.cert_der, None, &record.responder_key, now).ok();
        let key = entry.map(|e| e.key).or_else(|| self.state.registry.by_name(name).map(|e| e.key));
        if let Some(key) = key {
            let (good, revoked) = self.state.store.count(&key).map_err(internal)?;
            view.good = Some(good);
            view.revoked = Some(revoked);
        }
        Ok(view)
    }

    /// Retires an issuer: it stops being answered for (unauthorized); its records stay.
    pub fn retire_issuer(&self, name: &str, req: Retire, who: &str) -> Result<IssuerView, Failure> {
        let now = self.state.clock.now();
        let mut record = self.record(name)?;
        if record.retired_at.is_some() {
            return Err(Failure(StatusCode::CONFLICT, format!("issuer {name:?} is already retired")));
        }
        let entry = self.issuer(name)?;
        record.retired_at = Some(now);
        // Stop answering first, then record the retirement with a purge of every cached answer
        // (one batch); if that write fails, nothing changed.
        self.state.registry.remove(name);
        let a = audit(now, who, "issuer.retire", name, req.why.as_deref());
        if let Err(e) = self.state.store.put_issuer_and_purge(&entry.key, &record, false, now, a) {
            self.state.registry.insert((*entry).clone());
            return Err(internal(e));
        }
        tracing::info!(admin = who, issuer = name, "issuer retired");
        let mut view = Self::issuer_view(&entry, &record.responder_key, record.backup_responder_key.as_deref(), now);
        view.retired = Some(api::rfc3339(now));
        Ok(view)
    }

    /// Registers an issuer after checking its identity.
    pub fn add_issuer(&self, req: AddIssuer, who: &str) -> Result<IssuerView, Failure> {
        let now = self.state.clock.now();
        if req.name.is_empty()
            || req.name.len() > 64
            || !req.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(format!("issuer name {:?} must be 1 to 64 of A-Z a-z 0-9 - _ .", req.name)));
        }
        if self.state.store.issuers().map_err(internal)?.iter().any(|r| r.name == req.name) {
            return Err(Failure(StatusCode::CONFLICT, format!("an issuer named {:?} is already registered", req.name)));
        }
        let cert =
            CertInfo::from_pem_or_der(req.cert_pem.as_bytes()).map_err(|e| bad(format!("issuer certificate: {e}")))?;
        let responder = req
            .responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| bad(format!("responder certificate: {e}")))?;
        check_key_ref(&req.key)?;
        let mut entry =
            IssuerEntry::load(&req.name, &cert.der, responder.as_ref().map(|r| r.der.as_slice()), &req.key, now)
                .map_err(|e| bad(e.to_string()))?;
        let backup_cert = req
            .backup_responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| bad(format!("backup responder certificate: {e}")))?;
        match (&req.backup_key, &backup_cert) {
            (Some(k), _) => {
                check_key_ref(k)?;
                entry = entry
                    .with_backup(backup_cert.as_ref().map(|c| c.der.as_slice()), k, now)
                    .map_err(|e| bad(e.to_string()))?;
            }
            (None, Some(_)) => return Err(bad("a backup responder certificate needs its backup key")),
            (None, None) => {}
        }
        if let Some(existing) = self.state.registry.by_key(&entry.key) {
            return Err(Failure(
                StatusCode::CONFLICT,
                format!(
                    "issuer {:?} already has this subject and public key; certificates under either share CertIDs, so they cannot be told apart",
                    existing.name
                ),
            ));
        }
        let record = IssuerRecord {
            name: req.name.clone(),
            cert_der: cert.der.clone(),
            responder_cert_der: responder.map(|r| r.der),
            responder_key: req.key.clone(),
            backup_responder_cert_der: backup_cert.map(|c| c.der),
            backup_responder_key: req.backup_key.clone(),
            added_at: now,
            retired_at: None,
        };
        let mut a = audit(now, who, "issuer.add", &req.name, req.why.as_deref());
        a.detail = format!("{} key {}", a.detail, req.key).trim().to_string();
        self.state.store.put_issuer(&entry.key, &record, a).map_err(internal)?;
        let view = Self::issuer_view(&entry, &req.key, req.backup_key.as_deref(), now);
        tracing::info!(admin = who, issuer = %req.name, key = %entry.key.short(), "issuer registered");
        self.state.registry.insert(entry);
        Ok(view)
    }

    /// Provisions or replaces the backup identity of an issuer (checked by every rule, with a
    /// key other than the primary's).
    pub fn set_backup(&self, name: &str, req: api::SetBackup, who: &str) -> Result<IssuerView, Failure> {
        let now = self.state.clock.now();
        let current = self.issuer(name)?;
        let mut record = self.record(name)?;
        check_key_ref(&req.key)?;
        let cert = req
            .responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| bad(format!("backup responder certificate: {e}")))?;
        let mut base = (*current).clone();
        base.backup = None;
        let entry =
            base.with_backup(cert.as_ref().map(|c| c.der.as_slice()), &req.key, now).map_err(|e| bad(e.to_string()))?;
        record.backup_responder_cert_der = cert.map(|c| c.der);
        record.backup_responder_key = Some(req.key.clone());
        let mut a = audit(now, who, "issuer.backup", name, req.why.as_deref());
        a.detail = format!("{} backup key {}", a.detail, req.key).trim().to_string();
        self.state.store.put_issuer(&entry.key, &record, a).map_err(internal)?;
        let view = Self::issuer_view(&entry, &record.responder_key, Some(&req.key), now);
        self.state.registry.insert(entry);
        tracing::info!(admin = who, issuer = name, key = %req.key, "backup identity provisioned");
        Ok(view)
    }

    /// Promotes the backup identity: it signs from this moment; every stored response of the
    /// issuer (signed by the old key) is deleted in the same batch as the record change and an
    /// issuer-wide purge; re-signing starts with revoked certificates, then the most-asked.
    pub fn promote(&self, name: &str, req: api::Promote, who: &str) -> Result<api::Promoted, Failure> {
        let now = self.state.clock.now();
        let current = self.issuer(name)?;
        let mut record = self.record(name)?;
        let promoted = current.promoted().ok_or_else(|| {
            Failure(
                StatusCode::CONFLICT,
                format!("issuer {name:?} has no backup identity; provision one with `ocspctl issuer backup`"),
            )
        })?;
        // The backup was checked when provisioned; check it again now (validity moves on).
        let backup_key =
            record.backup_responder_key.clone().ok_or_else(|| internal("backup key missing in the record"))?;
        promoted
            .identity
            .recheck(&current.cert, now, &format!("backup of issuer {name} (key {backup_key})"))
            .map_err(|e| Failure(StatusCode::CONFLICT, format!("the backup cannot sign: {e}")))?;
        let previous = current.identity.certificate().subject_text();
        let previous_key = std::mem::replace(&mut record.responder_key, backup_key);
        record.responder_cert_der = record.backup_responder_cert_der.take();
        record.backup_responder_key = None;
        // What is asked most sits in the memory tier: note it before the eviction.
        let hot = self.state.memory.as_ref().map(|m| m.serials_of(&current.key)).unwrap_or_default();
        let revoked = self.state.store.revoked_serials(&current.key).map_err(internal)?;
        // Sign with the new key at once, then drop everything the old one signed.
        self.state.registry.insert(promoted);
        let mut a = audit(now, who, "issuer.promote", name, req.why.as_deref());
        a.detail = format!("{} previous key {previous_key}, now {}", a.detail, record.responder_key).trim().to_string();
        if let Err(e) = self.state.store.put_issuer_and_purge(&current.key, &record, true, now, a) {
            // Nothing was written: the primary keeps signing.
            self.state.registry.insert((*current).clone());
            return Err(internal(e));
        }
        if let Some(p) = &self.state.presigner {
            p.urgent(&current.key, &revoked);
            p.urgent(&current.key, &hot);
            p.request_pass(Some(current.key));
        }
        let entry = self.issuer(name)?;
        let (good, revoked_count) = self.state.store.count(&current.key).map_err(internal)?;
        tracing::warn!(admin = who, issuer = name, previous = %previous, now = %entry.identity.certificate().subject_text(), revoked = revoked.len(), hot = hot.len(), "backup identity promoted; re-signing every response");
        Ok(api::Promoted {
            issuer: Self::issuer_view(&entry, &record.responder_key, None, now),
            previous_responder: previous,
            revoked_first: revoked.len(),
            hot_next: hot.len(),
            total: good + revoked_count,
        })
    }

    fn issuer(&self, name: &str) -> Result<Arc<IssuerEntry>, Failure> {
        self.state.registry.by_name(name).ok_or_else(|| {
            Failure(StatusCode::NOT_FOUND, format!("no active issuer named {name:?}; `ocspctl issuer list` shows them"))
        })
    }

    /// Records issued certificates (and, for imports, their revocations); every entry is
    /// checked before anything is written.
    pub fn add_certs(&self, req: AddCerts, who: &str) -> Result<AddedCerts, Failure> {
        let now = self.state.clock.now();
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
                        CertInfo::from_pem_or_der(&der).map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
                    let issuer = match &named {
                        Some(n) if verify_issued_by(&cert, &n.cert) => n.clone(),
                        Some(n) => {
                            return Err(bad(format!(
                                "certificate {} (serial {}) is not issued by {:?} (issuer name or signature differs)",
                                i + 1,
                                cert.serial_hex(),
                                n.name
                            )))
                        }
                        None => self
                            .state
                            .registry
                            .all()
                            .into_iter()
                            .find(|e| verify_issued_by(&cert, &e.cert))
                            .ok_or_else(|| {
                                bad(format!(
                                    "certificate {} (serial {}): no registered issuer signed it",
                                    i + 1,
                                    cert.serial_hex()
                                ))
                            })?,
                    };
                    let serial = Serial::from_int_bytes(&cert.serial).map_err(|e| bad(e.to_string()))?;
                    (issuer, serial, cert.not_after, cert.is_ca)
                }
                (None, Some(hex)) => {
                    let issuer = named.clone().ok_or_else(|| bad("recording a serial needs --issuer"))?;
                    (issuer, Serial::from_hex(hex).map_err(bad)?, spec.not_after.unwrap_or(0), spec.ca)
                }
                _ => return Err(bad(format!("certificate {}: give either a certificate or a serial", i + 1))),
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
                    RevocationReason::parse(&rev.reason).map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
                let reason = match self.admit(&by_issuer[idx].0, asked, ca) {
                    Ok(r) => r,
                    Err(e) => {
                        refused.push(format!("certificate {} (serial {serial}, {asked}): {e}", i + 1));
                        continue;
                    }
                };
                if rev.time > now + FUTURE_SLACK {
                    return Err(bad(format!(
                        "certificate {}: revocation time {} is in the future",
                        i + 1,
                        api::rfc3339(rev.time)
                    )));
                }
                revocations.entry((idx, rev.time, reason.code())).or_default().push(serial.clone());
            }
            by_issuer[idx].1.push(ocsp_store::Issued { serial, not_after, ca });
        }
        if !refused.is_empty() {
            return Err(bad(format!(
                "{} revocation(s) refused by the issuer's reason profile; nothing was recorded:\n{}",
                refused.len(),
                refused.join("\n")
            )));
        }
        let mut out = AddedCerts { added: 0, already: 0, serials: Vec::new(), revoked: 0, conflicts: Vec::new() };
        for (issuer, list) in &by_issuer {
            let a = audit(now, who, "cert.add", &issuer.name, req.why.as_deref());
            let added = self.state.store.record_certificates(&issuer.key, list, now, a).map_err(internal)?;
            out.added += added;
            out.already += list.len() - added;
            out.serials.extend(list.iter().map(|c| (issuer.name.clone(), c.serial.to_string())));
        }
        for ((idx, time, code), serials) in revocations {
            let issuer = &by_issuer[idx].0;
            let reason = RevocationReason::from_code(code).ok_or_else(|| internal("reason code"))?;
            let mut a = audit(now, who, "revoke", &issuer.name, req.why.as_deref());
            a.reason = Some(reason.name().to_string());
            let (summary, _) =
                self.state.store.revoke_many(&issuer.key, &serials, time, reason, now, false, a).map_err(internal)?;
            out.revoked += summary.revoked + summary.changed;
            out.conflicts.extend(summary.refused.iter().map(|s| s.to_string()));
        }
        Ok(out)
    }

    fn status_view(
        issuer: &str,
        serial: &Serial,
        rec: Option<ocsp_store::StatusRecord>,
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
        }
    }

    /// Checks a revocation request's reason and time against policy.
    /// The reason asked for and the revocation time, checked (not yet against the issuer's
    /// reason profile: that needs the certificates, see [`Self::check_reasons`]).
    fn revocation_terms(&self, reason: &str, time: Option<i64>, now: i64) -> Result<(RevocationReason, i64), Failure> {
        let reason = RevocationReason::parse(reason).map_err(bad)?;
        if reason == RevocationReason::RemoveFromCrl {
            return Err(bad("removeFromCRL is not a revocation reason; `ocspctl unhold` lifts a certificateHold"));
        }
        let time = time.unwrap_or(now);
        if time > now + FUTURE_SLACK {
            return Err(bad(format!("revocation time {} is in the future", api::rfc3339(time))));
        }
        if time < now - BACKDATE_SLACK && reason != RevocationReason::KeyCompromise {
            return Err(bad(format!(
                "revocation time {} is in the past; only keyCompromise may be dated back (to when the key was compromised)",
                api::rfc3339(time)
            )));
        }
        Ok((reason, time))
    }

    /// `reason` as the issuer's profile records it for a certificate that is (`ca`) or is not
    /// a CA certificate (unspecified when no reason is stated), or why it is refused.
    fn admit(&self, issuer: &IssuerEntry, reason: RevocationReason, ca: bool) -> Result<RevocationReason, String> {
        let profile = self.state.policies.of(&issuer.name).reasons;
        profile.admit(reason, ca).map(|r| r.unwrap_or(RevocationReason::Unspecified)).map_err(|e| e.to_string())
    }

    /// Checks `reason` for these certificates against the issuer's reason profile; the
    /// certificates are read only when the answer depends on whether they are CA certificates.
    /// Every refused certificate is named; nothing is revoked then.
    fn check_reasons(
        &self,
        issuer: &IssuerEntry,
        serials: &[Serial],
        reason: RevocationReason,
    ) -> Result<RevocationReason, Failure> {
        let (leaf, ca) = (self.admit(issuer, reason, false), self.admit(issuer, reason, true));
        match (&leaf, &ca) {
            (Ok(r), Ok(_)) => return Ok(*r),
            (Err(e), Err(_)) => return Err(bad(format!("{e}; nothing was revoked"))),
            _ => {}
        }
        let mut refused = Vec::new();
        for serial in serials {
            let is_ca = self.state.store.status(&issuer.key, serial).map_err(internal)?.is_some_and(|r| r.ca);
            if let Err(e) = if is_ca { &ca } else { &leaf } {
                let kind = if is_ca { "a CA certificate" } else { "not a CA certificate" };
                refused.push(format!("serial {serial} ({kind}): {e}"));
            }
        }
        match refused.as_slice() {
            [] => Ok(leaf.or(ca).unwrap_or(reason)),
            [one] => Err(bad(format!("{one}; nothing was revoked"))),
            many => Err(bad(format!("{} certificates refused; nothing was revoked:\n{}", many.len(), many.join("\n")))),
        }
    }

    /// Revokes one certificate; `who` names the admin credential for the audit record.
    pub fn revoke(&self, req: Revoke, who: &str) -> Result<StatusView, Failure> {
        let now = self.state.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let serial = Serial::from_hex(&req.serial).map_err(bad)?;
        let (asked, time) = self.revocation_terms(&req.reason, req.time, now)?;
        let reason = self.check_reasons(&issuer, std::slice::from_ref(&serial), asked)?;
        let mut a = audit(now, who, "revoke", &issuer.name, req.why.as_deref());
        a.reason = Some(reason.name().to_string());
        let outcome = self.state.store.revoke(&issuer.key, &serial, time, reason, now, a).map_err(internal)?;
        let (rec, label) = match outcome {
            RevokeOutcome::Revoked(r) => (r, "revoked"),
            RevokeOutcome::Changed(r) => (r, "changed"),
            RevokeOutcome::AlreadyRevoked(r) => (r, "already revoked"),
            RevokeOutcome::Refused { current } => {
                let cur = match current.state {
                    State::Revoked { reason: Some(r), .. } => r.name(),
                    _ => "no reason",
                };
                return Err(Failure(
                    StatusCode::CONFLICT,
                    format!("serial {serial} is already revoked ({cur}); a revocation is final and may only change to keyCompromise"),
                ));
            }
            RevokeOutcome::NotIssued => {
                return Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!(
                        "serial {serial} was never recorded as issued by {:?}; record it first (`ocspctl cert add`)",
                        issuer.name
                    ),
                ))
            }
        };
        tracing::info!(admin = who, issuer = %issuer.name, %serial, reason = reason.name(), outcome = label, "revocation");
        let mut view = Self::status_view(&issuer.name, &serial, Some(rec), Some(label));
        if label != "already revoked" {
            view.purge_pending = self.wait_for_purge();
        }
        Ok(view)
    }

    /// Revokes many certificates of one issuer; durable when it returns (unless a dry run).
    pub fn bulk_revoke(&self, req: BulkRevoke, who: &str) -> Result<BulkResult, Failure> {
        let now = self.state.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let (asked, time) = self.revocation_terms(&req.reason, req.time, now)?;
        if req.serials.len() > MAX_BULK {
            return Err(bad(format!(
                "{} serials in one call; at most {MAX_BULK} (ocspctl splits files)",
                req.serials.len()
            )));
        }
        let serials = req
            .serials
            .iter()
            .map(|s| Serial::from_hex(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{e}; nothing was revoked")))?;
        let reason = self.check_reasons(&issuer, &serials, asked)?;
        let mut a = audit(now, who, "revoke", &issuer.name, req.why.as_deref());
        a.reason = Some(reason.name().to_string());
        let (summary, changed) =
            self.state.store.revoke_many(&issuer.key, &serials, time, reason, now, req.dry_run, a).map_err(internal)?;
        if !req.dry_run {
            tracing::info!(admin = who, issuer = %issuer.name, reason = reason.name(), revoked = changed.len(), "bulk revocation");
        }
        Ok(BulkResult {
            revoked: summary.revoked,
            changed: summary.changed,
            already_revoked: summary.already_revoked,
            refused: summary.refused.iter().map(|s| s.to_string()).collect(),
            unknown_serial: summary.not_issued.iter().map(|s| s.to_string()).collect(),
            dry_run: req.dry_run,
        })
    }

    /// Lifts a certificateHold.
    pub fn unhold(&self, req: Unhold, who: &str) -> Result<StatusView, Failure> {
        let now = self.state.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let serial = Serial::from_hex(&req.serial).map_err(bad)?;
        let a = audit(now, who, "unhold", &issuer.name, req.why.as_deref());
        match self.state.store.unhold(&issuer.key, &serial, now, a).map_err(internal)? {
            UnholdOutcome::Lifted(rec) => {
                let mut view = Self::status_view(&issuer.name, &serial, Some(rec), Some("hold lifted"));
                view.purge_pending = self.wait_for_purge();
                Ok(view)
            }
            UnholdOutcome::NotOnHold(rec) => Err(Failure(
                StatusCode::CONFLICT,
                format!(
                    "serial {serial} is not on hold ({}); only certificateHold can be lifted",
                    Self::status_view(&issuer.name, &serial, Some(rec), None).reason.unwrap_or_else(|| "good".into())
                ),
            )),
            UnholdOutcome::NotIssued => Err(Failure(
                StatusCode::NOT_FOUND,
                format!("serial {serial} was never recorded as issued by {:?}", issuer.name),
            )),
        }
    }

    fn presigner(&self) -> Result<&Arc<ocsp_presign::Presigner>, Failure> {
        self.state
            .presigner
            .as_ref()
            .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no pre-signer runs in this ocspd".into()))
    }

    /// Starts a pre-signing pass over every issuer, or one; returns the counters.
    pub fn start_presign(&self, req: api::Presign, who: &str) -> Result<ocsp_presign::PresignStats, Failure> {
        let key = req.issuer.as_deref().map(|n| self.issuer(n).map(|e| e.key)).transpose()?;
        let presigner = self.presigner()?;
        presigner.request_pass(key);
        tracing::info!(admin = who, issuer = req.issuer.as_deref().unwrap_or("all"), "pre-signing pass requested");
        Ok(presigner.stats())
    }

    fn status(&self, query: Option<&str>) -> Result<StatusView, Failure> {
        let name = query_param(query, "issuer").ok_or_else(|| bad("missing issuer"))?;
        let serial = query_param(query, "serial").ok_or_else(|| bad("missing serial"))?;
        let issuer = self.issuer(&name)?;
        let serial = Serial::from_hex(&serial).map_err(bad)?;
        let rec = self.state.store.status(&issuer.key, &serial).map_err(internal)?;
        Ok(Self::status_view(&issuer.name, &serial, rec, None))
    }

    fn audit_log(&self, query: Option<&str>) -> Result<Vec<AuditEntry>, Failure> {
        let serial = query_param(query, "serial")
            .map(|s| Serial::from_hex(&s).map(|s| s.to_string()))
            .transpose()
            .map_err(bad)?;
        let since = query_param(query, "since")
            .map(|s| s.parse::<i64>().map_err(|_| bad(format!("since {s:?} is not seconds since the epoch"))))
            .transpose()?;
        let limit = query_param(query, "limit")
            .map(|s| s.parse::<usize>().map_err(|_| bad(format!("limit {s:?} is not a number"))))
            .transpose()?
            .unwrap_or(AUDIT_PAGE);
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(bad(format!("limit must be 1 to {MAX_AUDIT_PAGE}; page with before=<seq of the last entry>")));
        }
        let before = query_param(query, "before")
            .map(|s| s.parse::<u64>().map_err(|_| bad(format!("before {s:?} is not a sequence number"))))
            .transpose()?;
        let filter = AuditFilter {
            issuer: query_param(query, "issuer"),
            serial,
            admin: query_param(query, "admin"),
            action: query_param(query, "action"),
            since,
            before,
            limit,
        };
        let mut entries = self.state.store.audit(&filter).map_err(internal)?;
        // A bulk revocation names up to 100,000 serials: a listing shows the first few of each
        // entry and how many there are (`--serial` finds the entries naming one).
        for e in &mut entries {
            if e.serials.len() > MAX_AUDIT_SERIALS {
                e.serial_count = Some(e.serials.len());
                e.serials.truncate(MAX_AUDIT_SERIALS);
            }
        }
        Ok(entries)
    }

    /// Waits (bounded) until the purges queued so far reached every target that is up;
    /// returns the targets still pending, if any.
    fn wait_for_purge(&self) -> Option<Vec<String>> {
        let purger = self.state.purger.as_ref()?;
        let pending = purger.wait_delivered(self.state.store.outbox_head(), self.state.purge_wait);
        (!pending.is_empty()).then_some(pending)
    }

    /// A peer's purge: evict our memory tier (our own database already has the change, or
    /// gets it by replication; the memory tier is the only copy a peer cannot reach).
    pub fn peer_purge(&self, req: api::PeerPurge, who: &str) -> Result<serde_json::Value, Failure> {
        let raw = hex::decode(&req.issuer).map_err(|_| bad("issuer is not hex"))?;
        let issuer = ocsp_proto::IssuerKey::new(raw.get(..32).unwrap_or(&[]), raw.get(32..).unwrap_or(&[]))
            .ok_or_else(|| bad("issuer is not a 64-byte issuer key"))?;
        let serials = req.serials.iter().map(|s| Serial::from_hex(s)).collect::<Result<Vec<_>, _>>().map_err(bad)?;
        if let Some(memory) = &self.state.memory {
            if serials.is_empty() {
                memory.evict_issuer(&issuer);
            } else {
                memory.evict(&issuer, &serials);
            }
        }
        tracing::info!(peer = who, issuer = %issuer.short(), certificates = serials.len(), "peer purge applied");
        Ok(serde_json::json!({ "evicted": serials.len() }))
    }

    /// The purge fan-out's state, naming the certificates still pending at each target.
    pub fn purge_status(&self) -> Result<api::PurgeStatus, Failure> {
        let purger =
            self.state.purger.as_ref().ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no purge fan-out runs".into()))?;
        let name_of = |hex_key: &str| -> String {
            let raw = hex::decode(hex_key).unwrap_or_default();
            ocsp_proto::IssuerKey::new(raw.get(..32).unwrap_or(&[]), raw.get(32..).unwrap_or(&[]))
                .and_then(|k| self.state.registry.by_key(&k))
                .map(|e| e.name.clone())
                .unwrap_or_else(|| hex_key.to_string())
        };
        let view = |list: &[ocsp_purge::PendingCert]| -> Vec<api::PendingPurge> {
            list.iter()
                .map(|p| api::PendingPurge {
                    issuer: name_of(&p.issuer),
                    serial: p.serial.clone(),
                    since: api::rfc3339(p.since),
                })
                .collect()
        };
        let targets = purger
            .status()
            .into_iter()
            .map(|t| api::PurgeTargetView {
                pending: view(&t.pending),
                undeliverable: view(&t.undeliverable),
                name: t.name,
                kind: t.kind,
                pending_events: t.pending_events,
                lag_seconds: t.lag_seconds,
                sent: t.sent,
                failures: t.failures,
                last_error: t.last_error,
                retry_in_ms: t.retry_in_ms,
            })
            .collect();
        Ok(api::PurgeStatus { outbox_head: self.state.store.outbox_head(), targets })
    }

    /// A page of current pre-signed responses with their GET paths.
    pub fn export(&self, query: Option<&str>) -> Result<api::ExportPage, Failure> {
        use base64::Engine;
        let after =
            query_param(query, "after").map(|a| hex::decode(a).map_err(|_| bad("after is not hex"))).transpose()?;
        let limit = query_param(query, "limit")
            .map(|s| s.parse::<usize>().map_err(|_| bad(format!("limit {s:?} is not a number"))))
            .transpose()?
            .unwrap_or(1000)
            .clamp(1, 10_000);
        let only = query_param(query, "issuer").map(|n| self.issuer(&n).map(|e| e.key)).transpose()?;
        let now = self.state.clock.now();
        let rows = self.state.store.scan_responses(after.as_deref(), limit).map_err(internal)?;
        let next = (rows.len() == limit).then(|| rows.last().map(|r| hex::encode(&r.0))).flatten();
        let mut items = Vec::with_capacity(rows.len());
        for (_, issuer, serial, alg, resp) in rows {
            if only.is_some_and(|k| k != issuer) || resp.next_update <= now + 60 {
                continue;
            }
            // Retired issuers answer unauthorized: their responses are not exported.
            let Some(entry) = self.state.registry.by_key(&issuer) else { continue };
            let request = ocsp_proto::encode_request(&[entry.hashes.cert_id(alg, serial)]).map_err(internal)?;
            items.push(api::ExportItem {
                path: base64::engine::general_purpose::STANDARD.encode(request),
                der: base64::engine::general_purpose::STANDARD.encode(&resp.der),
                next_update: resp.next_update,
                issuer_key: issuer.to_hex(),
            });
        }
        Ok(api::ExportPage { items, next })
    }

    fn dispatch(&self, method: &Method, path: &str, q: Option<&str>, body: &[u8], who: &str) -> Reply {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["v1", "issuers"]) => json(StatusCode::OK, &self.list_issuers()?),
            (&Method::POST, ["v1", "issuers"]) => json(StatusCode::CREATED, &self.add_issuer(parse(body)?, who)?),
            (&Method::GET, ["v1", "issuers", name]) => json(StatusCode::OK, &self.show_issuer(&percent_decode(name))?),
            (&Method::POST, ["v1", "issuers", name, "retire"]) => {
                json(StatusCode::OK, &self.retire_issuer(&percent_decode(name), parse(body)?, who)?)
            }
            (&Method::POST, ["v1", "issuers", name, "backup"]) => {
                json(StatusCode::OK, &self.set_backup(&percent_decode(name), parse(body)?, who)?)
            }
            (&Method::POST, ["v1", "issuers", name, "promote"]) => {
                json(StatusCode::OK, &self.promote(&percent_decode(name), parse(body)?, who)?)
            }
            (&Method::POST, ["v1", "certs"]) => json(StatusCode::OK, &self.add_certs(parse(body)?, who)?),
            (&Method::POST, ["v1", "revoke"]) => json(StatusCode::OK, &self.revoke(parse(body)?, who)?),
            (&Method::POST, ["v1", "revoke", "bulk"]) => json(StatusCode::OK, &self.bulk_revoke(parse(body)?, who)?),
            (&Method::POST, ["v1", "unhold"]) => json(StatusCode::OK, &self.unhold(parse(body)?, who)?),
            (&Method::GET, ["v1", "status"]) => json(StatusCode::OK, &self.status(q)?),
            (&Method::POST, ["v1", "presign"]) => json(StatusCode::OK, &self.start_presign(parse(body)?, who)?),
            (&Method::GET, ["v1", "presign"]) => json(StatusCode::OK, &self.presigner()?.stats()),
            (&Method::GET, ["v1", "audit"]) => json(StatusCode::OK, &self.audit_log(q)?),
            (&Method::POST, ["v1", "purge"]) => json(StatusCode::OK, &self.peer_purge(parse(body)?, who)?),
            (&Method::GET, ["v1", "purge"]) => json(StatusCode::OK, &self.purge_status()?),
            (&Method::GET, ["v1", "export"]) => json(StatusCode::OK, &self.export(q)?),
            _ => Err(Failure(StatusCode::NOT_FOUND, format!("no admin route {path}"))),
        }
    }
}

/// What a call needs: reading, revoking, a peer's purge, or managing (everything else).
pub fn permission(method: &Method, path: &str) -> Permission {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, _) => Permission::Read,
        (&Method::POST, ["v1", "revoke"]) | (&Method::POST, ["v1", "revoke", "bulk"]) => Permission::Revoke,
        (&Method::POST, ["v1", "purge"]) => Permission::PeerPurge,
        _ => Permission::Manage,
    }
}

fn check_key_ref(key: &str) -> Result<(), Failure> {
    if key.starts_with("file:/") || key.starts_with("pkcs11:") {
        Ok(())
    } else {
        Err(bad(format!("key {key:?}: expected file:<absolute path> or a pkcs11: URI")))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| bad(format!("request body is not the expected JSON: {e}")))
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Failure> {
    Ok(Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Failure(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")))?
        .to_bytes())
}

fn reply(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

impl Handler for AdminService {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> ocsp_http::BoxFuture<'static, HttpResponse> {
        Box::pin(async move {
            let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let Some(credential) = self.auth.credential(auth) else {
                tracing::warn!(%peer, path = req.uri().path(), credential = if auth.is_some() { "wrong" } else { "missing" }, "admin call refused");
                let body = serde_json::json!(ErrorBody { error: "missing or wrong admin token".into() });
                let mut r = reply(StatusCode::UNAUTHORIZED, &body);
                r.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                return r;
            };
            let who = credential.name.clone();
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let query = req.uri().query().map(str::to_string);
            let needed = permission(&method, &path);
            let result = if !credential.role.allows(needed) {
                Err(Failure(
                    StatusCode::FORBIDDEN,
                    format!(
                        "token {who:?} has role {} and may not {method} {path} (it needs {needed:?}); ask for a staff token",
                        credential.role.name()
                    ),
                ))
            } else {
                match read_body(req).await {
                    // The store's writes wait for fsync: let the runtime move other tasks off this
                    // worker meanwhile, so public OCSP requests are not held up.
                    Ok(body) => {
                        tokio::task::block_in_place(|| self.dispatch(&method, &path, query.as_deref(), &body, &who))
                    }
                    Err(f) => Err(f),
                }
            };
            match result {
                Ok((status, value)) => reply(status, &value),
                Err(Failure(status, error)) => {
                    if status.is_server_error() {
                        tracing::error!(admin = %who, %error, "admin call failed");
                    } else {
                        tracing::info!(admin = %who, %error, "admin call refused");
                    }
                    // Every refused change, and every call a role forbids, is on the record.
                    if status == StatusCode::FORBIDDEN || (method != Method::GET && status.is_client_error()) {
                        let mut a = AuditEntry::new(self.state.clock.now(), &who, "refused");
                        a.detail = format!("{method} {path}: {status}: {error}");
                        if let Err(e) = tokio::task::block_in_place(|| self.state.store.record_audit(a)) {
                            tracing::error!(error = %e, "cannot record a refused admin call in the audit record");
                        }
                    }
                    reply(status, &serde_json::json!(ErrorBody { error }))
                }
            }
        })
    }
}
