//! Issuers: registration, backup identities, promotion, retirement, and how they are shown.

use crate::api::{self, AddIssuer, IssuerView, Retire};
use crate::error::invalid;
use crate::{audit, Domain, DomainError};
use ocsp_proto::{x509::CertInfo, MAX_CRL_SHARDS};
use ocsp_records::IssuerRecord;
use ocsp_sign::IssuerEntry;
use std::sync::Arc;

impl Domain {
    /// How an issuer is shown, from its record's certificates alone: no key is loaded (for a
    /// `pkcs11:` key that would be an HSM login and a probe signature).
    pub(crate) fn view_of(&self, r: &IssuerRecord, now: i64) -> Result<IssuerView, DomainError> {
        let parse = |der: &[u8]| {
            CertInfo::from_der(der).map_err(|e| DomainError::Internal(format!("issuer record of {}: {e}", r.name)))
        };
        let cert = parse(&r.cert_der)?;
        let hashes = ocsp_proto::IssuerHashes::of(&cert);
        let responder = r.responder_cert_der.as_deref().map(parse).transpose()?;
        let signer = responder.as_ref().unwrap_or(&cert);
        let backup = match &r.backup_responder_key {
            Some(_) => {
                Some(r.backup_responder_cert_der.as_deref().map(parse).transpose()?.unwrap_or_else(|| cert.clone()))
            }
            None => None,
        };
        let policy = self.policies.of(&r.name);
        Ok(IssuerView {
            name: r.name.clone(),
            subject: cert.subject_text(),
            sha1_name_hash: hex::encode(&hashes.sha1_name),
            sha1_key_hash: hex::encode(&hashes.sha1_key),
            sha256_name_hash: hex::encode(&hashes.sha256_name),
            sha256_key_hash: hex::encode(&hashes.sha256_key),
            responder: signer.subject_text(),
            delegated: responder.is_some(),
            key: r.responder_key.clone(),
            responder_expires_in_days: (signer.not_after - now) / 86_400,
            backup_responder: backup.as_ref().map(CertInfo::subject_text),
            backup_key: r.backup_responder_key.clone(),
            backup_expires_in_days: backup.as_ref().map(|b| (b.not_after - now) / 86_400),
            crl_key: r.crl_key.clone(),
            crl_shards: r.crl_shards,
            good: None,
            revoked: None,
            retired: r.retired_at.map(api::rfc3339),
            reason_profile: policy.reasons.name().to_string(),
            nonce_policy: policy.nonces.name().to_string(),
        })
    }

    /// Every registered issuer, retired ones included.
    pub fn list_issuers(&self) -> Result<Vec<IssuerView>, DomainError> {
        let now = self.clock.now();
        let records = self.store.issuers()?;
        records.iter().map(|r| self.view_of(r, now)).collect()
    }

    fn record(&self, name: &str) -> Result<IssuerRecord, DomainError> {
        self.store
            .issuers()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| DomainError::NotFound(format!("no issuer named {name:?}; `ocspctl issuer list` shows them")))
    }

    /// One issuer with its certificate counts.
    pub fn show_issuer(&self, name: &str) -> Result<IssuerView, DomainError> {
        let now = self.clock.now();
        let record = self.record(name)?;
        let mut view = self.view_of(&record, now)?;
        let cert = CertInfo::from_der(&record.cert_der).map_err(|e| DomainError::Internal(e.to_string()))?;
        let (good, revoked) = self.store.count(&ocsp_proto::IssuerHashes::of(&cert).key())?;
        view.good = Some(good);
        view.revoked = Some(revoked);
        Ok(view)
    }

    /// Retires an issuer: it stops being answered for (unauthorized); its records stay.
    pub fn retire_issuer(&self, name: &str, req: Retire, who: &str) -> Result<IssuerView, DomainError> {
        let now = self.clock.now();
        let mut record = self.record(name)?;
        if record.retired_at.is_some() {
            return Err(DomainError::Conflict(format!("issuer {name:?} is already retired")));
        }
        let entry = self.issuer(name)?;
        record.retired_at = Some(now);
        // Stop answering first, then record the retirement with a purge of every cached answer
        // (one batch); if that write fails, nothing changed.
        let a = audit(now, who, "issuer.retire", name, req.why.as_deref())?;
        self.registry.remove(name);
        match self.store.put_issuer_and_purge(&entry.key, &record, false, now, a) {
            Ok(change) => {
                self.settle(Some(change.seq));
            }
            Err(e) => {
                self.registry.insert((*entry).clone());
                return Err(e.into());
            }
        }
        tracing::info!(admin = who, issuer = name, "issuer retired");
        self.view_of(&record, now)
    }

    /// Registers an issuer after checking its identity.
    pub fn add_issuer(&self, req: AddIssuer, who: &str) -> Result<IssuerView, DomainError> {
        let now = self.clock.now();
        if req.name.is_empty()
            || req.name.len() > 64
            || !req.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(format!("issuer name {:?} must be 1 to 64 of A-Z a-z 0-9 - _ .", req.name)));
        }
        if self.store.issuers()?.iter().any(|r| r.name == req.name) {
            return Err(DomainError::Conflict(format!("an issuer named {:?} is already registered", req.name)));
        }
        let cert = CertInfo::from_pem_or_der(req.cert_pem.as_bytes())
            .map_err(|e| invalid(format!("issuer certificate: {e}")))?;
        let responder = req
            .responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| invalid(format!("responder certificate: {e}")))?;
        check_key_ref(&req.key)?;
        let mut entry =
            IssuerEntry::load(&req.name, &cert.der, responder.as_ref().map(|r| r.der.as_slice()), &req.key, now)
                .map_err(|e| invalid(e.to_string()))?;
        let backup_cert = req
            .backup_responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| invalid(format!("backup responder certificate: {e}")))?;
        match (&req.backup_key, &backup_cert) {
            (Some(k), _) => {
                check_key_ref(k)?;
                entry = entry
                    .with_backup(backup_cert.as_ref().map(|c| c.der.as_slice()), k, now)
                    .map_err(|e| invalid(e.to_string()))?;
            }
            (None, Some(_)) => return Err(invalid("a backup responder certificate needs its backup key")),
            (None, None) => {}
        }
        if let Some(existing) = self.registry.by_key(&entry.key) {
            return Err(DomainError::Conflict(format!(
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
            crl_key: None,
            crl_shards: None,
        };
        let mut a = audit(now, who, "issuer.add", &req.name, req.why.as_deref())?;
        a.detail = format!("{} key {}", a.detail, req.key).trim().to_string();
        let change = self.store.put_issuer(&entry.key, &record, a)?;
        self.settle_here(change.seq);
        let view = self.view_of(&record, now)?;
        tracing::info!(admin = who, issuer = %req.name, key = %entry.key.short(), "issuer registered");
        self.registry.insert(entry);
        Ok(view)
    }

    /// Sets the key that signs the issuer's CRLs: the issuer certificate's own key, and the
    /// certificate must assert cRLSign (checked now, by signing nothing but loading the key).
    /// The shard count is fixed the first time: a certificate names its shard's URL, and its
    /// shard follows from its serial and the count, so a new count would move it.
    /// `default_shards` is the count of an issuer given none.
    pub fn set_crl_key(
        &self,
        name: &str,
        req: api::SetCrlKey,
        default_shards: u32,
        who: &str,
    ) -> Result<IssuerView, DomainError> {
        let now = self.clock.now();
        let current = self.issuer(name)?;
        let mut record = self.record(name)?;
        check_key_ref(&req.key)?;
        let shards = match (record.crl_shards, req.shards) {
            (_, Some(n)) if !(1..=MAX_CRL_SHARDS).contains(&n) => {
                return Err(invalid(format!("{n} CRL shards: from 1 to {MAX_CRL_SHARDS}")))
            }
            (Some(was), Some(n)) if was != n => {
                return Err(invalid(format!(
                    "the CRL of {name} has {was} shards and keeps them: certificates name their shard's URL, \
                     and a new count would move them to others"
                )))
            }
            (was, n) => n.or(was).unwrap_or(default_shards),
        };
        ocsp_sign::crl_signer(&record.cert_der, &req.key).map_err(|e| invalid(e.to_string()))?;
        record.crl_key = Some(req.key.clone());
        record.crl_shards = Some(shards);
        let mut a = audit(now, who, "issuer.crl-key", name, req.why.as_deref())?;
        a.detail = format!("{} CRL key {}, {shards} shards", a.detail, req.key).trim().to_string();
        let change = self.store.put_issuer(&current.key, &record, a)?;
        self.settle_here(change.seq);
        tracing::info!(admin = who, issuer = name, key = %req.key, "CRL key set");
        self.view_of(&record, now)
    }

    /// Stops signing the issuer's CRLs (a key lost or no longer its own): the shards stored
    /// are served until they expire; its shard count stays, so a key set again later keeps
    /// every certificate on its shard.
    pub fn unset_crl_key(&self, name: &str, req: api::Retire, who: &str) -> Result<IssuerView, DomainError> {
        let now = self.clock.now();
        let current = self.issuer(name)?;
        let mut record = self.record(name)?;
        let Some(was) = record.crl_key.take() else {
            return Err(DomainError::Conflict(format!("issuer {name} has no CRL key; nothing was changed")));
        };
        let mut a = audit(now, who, "issuer.crl-key-unset", name, req.why.as_deref())?;
        a.detail = format!("{} CRL key {was} unset", a.detail).trim().to_string();
        let change = self.store.put_issuer(&current.key, &record, a)?;
        self.settle_here(change.seq);
        tracing::warn!(admin = who, issuer = name, key = %was, "CRL key unset: this issuer's CRLs are no longer signed");
        self.view_of(&record, now)
    }

    /// Provisions or replaces the backup identity of an issuer (checked by every rule, with a
    /// key other than the primary's).
    pub fn set_backup(&self, name: &str, req: api::SetBackup, who: &str) -> Result<IssuerView, DomainError> {
        let now = self.clock.now();
        let current = self.issuer(name)?;
        let mut record = self.record(name)?;
        check_key_ref(&req.key)?;
        let cert = req
            .responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| invalid(format!("backup responder certificate: {e}")))?;
        let mut base = (*current).clone();
        base.backup = None;
        let entry = base
            .with_backup(cert.as_ref().map(|c| c.der.as_slice()), &req.key, now)
            .map_err(|e| invalid(e.to_string()))?;
        record.backup_responder_cert_der = cert.map(|c| c.der);
        record.backup_responder_key = Some(req.key.clone());
        let mut a = audit(now, who, "issuer.backup", name, req.why.as_deref())?;
        a.detail = format!("{} backup key {}", a.detail, req.key).trim().to_string();
        let change = self.store.put_issuer(&entry.key, &record, a)?;
        self.settle_here(change.seq);
        let view = self.view_of(&record, now)?;
        self.registry.insert(entry);
        tracing::info!(admin = who, issuer = name, key = %req.key, "backup identity provisioned");
        Ok(view)
    }

    /// Promotes the backup identity: it signs from this moment; every stored response of the
    /// issuer (signed by the old key) is deleted in the same batch as the record change and an
    /// issuer-wide purge; re-signing starts with revoked certificates, then the most-asked.
    pub fn promote(&self, name: &str, req: api::Promote, who: &str) -> Result<api::Promoted, DomainError> {
        let now = self.clock.now();
        let current = self.issuer(name)?;
        let mut record = self.record(name)?;
        let promoted = current.promoted().ok_or_else(|| {
            DomainError::Conflict(format!(
                "issuer {name:?} has no backup identity; provision one with `ocspctl issuer backup`"
            ))
        })?;
        // The backup was checked when provisioned; check it again now (validity moves on).
        let backup_key = record
            .backup_responder_key
            .clone()
            .ok_or_else(|| DomainError::Internal("backup key missing in the record".into()))?;
        promoted
            .identity
            .recheck(&current.cert, now, &format!("backup of issuer {name} (key {backup_key})"))
            .map_err(|e| DomainError::Conflict(format!("the backup cannot sign: {e}")))?;
        let previous = current.identity.certificate().subject_text();
        let previous_key = std::mem::replace(&mut record.responder_key, backup_key);
        record.responder_cert_der = record.backup_responder_cert_der.take();
        record.backup_responder_key = None;
        // What is asked most sits in the memory tier: note it before the eviction.
        let hot = self.ports.hot.as_ref().map(|m| m.serials_of(&current.key)).unwrap_or_default();
        let revoked = self.store.revoked_serials(&current.key)?;
        // Sign with the new key at once, then drop everything the old one signed.
        let mut a = audit(now, who, "issuer.promote", name, req.why.as_deref())?;
        self.registry.insert(promoted);
        a.detail = format!("{} previous key {previous_key}, now {}", a.detail, record.responder_key).trim().to_string();
        match self.store.put_issuer_and_purge(&current.key, &record, true, now, a) {
            Ok(change) => {
                self.settle(Some(change.seq));
            }
            Err(e) => {
                // Nothing was written: the primary keeps signing.
                self.registry.insert((*current).clone());
                return Err(e.into());
            }
        }
        if let Some(p) = &self.ports.resigner {
            p.urgent(&current.key, &revoked);
            p.urgent(&current.key, &hot);
            p.request_pass(Some(current.key));
        }
        let entry = self.issuer(name)?;
        let (good, revoked_count) = self.store.count(&current.key)?;
        tracing::warn!(admin = who, issuer = name, previous = %previous, now = %entry.identity.certificate().subject_text(), revoked = revoked.len(), hot = hot.len(), "backup identity promoted; re-signing every response");
        Ok(api::Promoted {
            issuer: self.view_of(&record, now)?,
            previous_responder: previous,
            revoked_first: revoked.len(),
            hot_next: hot.len(),
            total: good + revoked_count,
        })
    }

    /// The key of the active issuer registered as `name`.
    pub fn issuer_key(&self, name: &str) -> Result<ocsp_proto::IssuerKey, DomainError> {
        self.issuer(name).map(|e| e.key)
    }

    pub(crate) fn issuer(&self, name: &str) -> Result<Arc<IssuerEntry>, DomainError> {
        self.registry.by_name(name).ok_or_else(|| {
            DomainError::NotFound(format!("no active issuer named {name:?}; `ocspctl issuer list` shows them"))
        })
    }
}

fn check_key_ref(key: &str) -> Result<(), DomainError> {
    if key.starts_with("file:/") || key.starts_with("pkcs11:") {
        Ok(())
    } else {
        Err(invalid(format!("key {key:?}: expected file:<absolute path> or a pkcs11: URI")))
    }
}
