//! Revocations: the reason and time rules, single and bulk revocation, lifting holds.

use crate::api::{self, BulkResult, BulkRevoke, Revoke, StatusView, Unhold};
use crate::error::invalid;
use crate::{audit, Domain, DomainError, BACKDATE_SLACK, FUTURE_SLACK, MAX_BULK};
use ocsp_proto::{RevocationReason, Serial};
use ocsp_records::{RevokeOutcome, State, UnholdOutcome};
use ocsp_sign::IssuerEntry;

impl Domain {
    /// Checks a revocation request's reason and time against policy.
    /// The reason asked for and the revocation time, checked (not yet against the issuer's
    /// reason profile: that needs the certificates, see [`Self::check_reasons`]).
    fn revocation_terms(
        &self,
        reason: &str,
        time: Option<i64>,
        now: i64,
    ) -> Result<(RevocationReason, i64), DomainError> {
        let reason = RevocationReason::parse(reason).map_err(invalid)?;
        if reason == RevocationReason::RemoveFromCrl {
            return Err(invalid("removeFromCRL is not a revocation reason; `ocspctl unhold` lifts a certificateHold"));
        }
        let time = time.unwrap_or(now);
        if time > now + FUTURE_SLACK {
            return Err(invalid(format!("revocation time {} is in the future", api::rfc3339(time))));
        }
        if time < now - BACKDATE_SLACK && reason != RevocationReason::KeyCompromise {
            return Err(invalid(format!(
                "revocation time {} is in the past; only keyCompromise may be dated back (to when the key was compromised)",
                api::rfc3339(time)
            )));
        }
        Ok((reason, time))
    }

    /// `reason` as the issuer's profile records it for a certificate that is (`ca`) or is not
    /// a CA certificate (unspecified when no reason is stated), or why it is refused.
    pub(crate) fn admit(
        &self,
        issuer: &IssuerEntry,
        reason: RevocationReason,
        ca: bool,
    ) -> Result<RevocationReason, String> {
        let profile = self.policies.of(&issuer.name).reasons;
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
    ) -> Result<RevocationReason, DomainError> {
        let (leaf, ca) = (self.admit(issuer, reason, false), self.admit(issuer, reason, true));
        match (&leaf, &ca) {
            (Ok(r), Ok(_)) => return Ok(*r),
            (Err(e), Err(_)) => return Err(invalid(format!("{e}; nothing was revoked"))),
            _ => {}
        }
        let mut refused = Vec::new();
        let items: Vec<_> = serials.iter().map(|s| (issuer.key, s.clone())).collect();
        let records = self.store.statuses(&items)?;
        for (serial, record) in serials.iter().zip(records) {
            let is_ca = record.is_some_and(|r| r.ca);
            if let Err(e) = if is_ca { &ca } else { &leaf } {
                let kind = if is_ca { "a CA certificate" } else { "not a CA certificate" };
                refused.push(format!("serial {serial} ({kind}): {e}"));
            }
        }
        match refused.as_slice() {
            [] => Ok(leaf.or(ca).unwrap_or(reason)),
            [one] => Err(invalid(format!("{one}; nothing was revoked"))),
            many => {
                Err(invalid(format!("{} certificates refused; nothing was revoked:\n{}", many.len(), many.join("\n"))))
            }
        }
    }

    /// Revokes one certificate; `who` names the admin credential for the audit record.
    pub fn revoke(&self, req: Revoke, who: &str) -> Result<StatusView, DomainError> {
        let now = self.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let serial = Serial::from_hex(&req.serial).map_err(invalid)?;
        let (asked, time) = self.revocation_terms(&req.reason, req.time, now)?;
        let reason = self.check_reasons(&issuer, std::slice::from_ref(&serial), asked)?;
        let mut a = audit(now, who, "revoke", &issuer.name, req.why.as_deref())?;
        a.reason = Some(reason.name().to_string());
        let (outcome, change) = self.store.revoke(&issuer.key, &serial, time, reason, now, a)?;
        crate::failpoint::hit("admin.after_commit");
        let confirmed = match (&outcome, change) {
            (_, Some(seq)) => self.settle(Some(seq)),
            // Already revoked, perhaps by a change still on its way: wait for that too.
            (RevokeOutcome::AlreadyRevoked(_), None) => self.settle_committed(),
            _ => Default::default(),
        };
        let (rec, label) = match outcome {
            RevokeOutcome::Revoked(r) => (r, "revoked"),
            RevokeOutcome::Changed(r) => (r, "changed"),
            RevokeOutcome::AlreadyRevoked(r) => (r, "already revoked"),
            RevokeOutcome::Refused { current } => {
                let cur = match current.state {
                    State::Revoked { reason: Some(r), .. } => r.name(),
                    _ => "no reason",
                };
                return Err(DomainError::Conflict(format!("serial {serial} is already revoked ({cur}); a revocation is final and may only change to keyCompromise"),
                ));
            }
            RevokeOutcome::NotIssued => {
                return Err(DomainError::NotFound(format!(
                    "serial {serial} was never recorded as issued by {:?}; record it first (`ocspctl cert add`)",
                    issuer.name
                )))
            }
        };
        tracing::info!(admin = who, issuer = %issuer.name, %serial, reason = reason.name(), outcome = label, "revocation");
        let mut view = Self::status_view(&issuer.name, &serial, Some(rec), Some(label));
        view.confirmed = confirmed;
        if let Some(change) = change {
            view.purge_pending = self.wait_for_purge(change);
        }
        Ok(view)
    }

    /// Revokes many certificates of one issuer; durable when it returns (unless a dry run).
    pub fn bulk_revoke(&self, req: BulkRevoke, who: &str) -> Result<BulkResult, DomainError> {
        let now = self.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let (asked, time) = self.revocation_terms(&req.reason, req.time, now)?;
        if req.serials.len() > MAX_BULK {
            return Err(invalid(format!(
                "{} serials in one call; at most {MAX_BULK} (ocspctl splits files)",
                req.serials.len()
            )));
        }
        let serials = req
            .serials
            .iter()
            .map(|s| Serial::from_hex(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("{e}; nothing was revoked")))?;
        let reason = self.check_reasons(&issuer, &serials, asked)?;
        let mut a = audit(now, who, "revoke", &issuer.name, req.why.as_deref())?;
        a.reason = Some(reason.name().to_string());
        let started = std::time::Instant::now();
        let ocsp_records::BulkRevocation { summary, changed, change } =
            self.store.revoke_many(&issuer.key, &serials, time, reason, now, req.dry_run, a)?;
        crate::failpoint::hit("admin.after_commit");
        let stored = started.elapsed();
        let confirmed = match change {
            Some(_) => self.settle(change),
            None if !req.dry_run && summary.already_revoked > 0 => self.settle_committed(),
            None => Default::default(),
        };
        if !req.dry_run {
            tracing::info!(
                admin = who,
                issuer = %issuer.name,
                reason = reason.name(),
                revoked = changed.len(),
                stored_ms = stored.as_millis() as u64,
                settled_ms = (started.elapsed() - stored).as_millis() as u64,
                "bulk revocation"
            );
        }
        // Like a single revocation, the batch's purge reaches every edge that is up before the
        // acknowledgement (bounded): an edge must not go on serving the answers it cached.
        let purge_pending = change.and_then(|c| self.wait_for_purge(c));
        Ok(BulkResult {
            purge_pending,
            revoked: summary.revoked,
            changed: summary.changed,
            already_revoked: summary.already_revoked,
            refused: summary.refused.iter().map(|s| s.to_string()).collect(),
            unknown_serial: summary.not_issued.iter().map(|s| s.to_string()).collect(),
            dry_run: req.dry_run,
            confirmed,
        })
    }

    /// Lifts a certificateHold.
    pub fn unhold(&self, req: Unhold, who: &str) -> Result<StatusView, DomainError> {
        let now = self.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let serial = Serial::from_hex(&req.serial).map_err(invalid)?;
        let a = audit(now, who, "unhold", &issuer.name, req.why.as_deref())?;
        match self.store.unhold(&issuer.key, &serial, now, a)? {
            UnholdOutcome::Lifted { record, change } => {
                let confirmed = self.settle(Some(change));
                let mut view = Self::status_view(&issuer.name, &serial, Some(record), Some("hold lifted"));
                view.confirmed = confirmed;
                view.purge_pending = self.wait_for_purge(change);
                Ok(view)
            }
            UnholdOutcome::NotOnHold(rec) => Err(DomainError::Conflict(format!(
                "serial {serial} is not on hold ({}); only certificateHold can be lifted",
                Self::status_view(&issuer.name, &serial, Some(rec), None).reason.unwrap_or_else(|| "good".into())
            ))),
            UnholdOutcome::NotIssued => {
                Err(DomainError::NotFound(format!("serial {serial} was never recorded as issued by {:?}", issuer.name)))
            }
        }
    }
}
