//! The audit record, as staff and auditors query it.

use crate::error::invalid;
use crate::{Domain, DomainError, AUDIT_PAGE, MAX_AUDIT_PAGE, MAX_AUDIT_SERIALS};
use ocsp_proto::Serial;
use ocsp_records::{AuditEntry, AuditFilter};

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only changes to this issuer (by name).
    pub issuer: Option<String>,
    /// Only entries naming this serial (hex).
    pub serial: Option<String>,
    /// Only changes by this admin credential.
    pub admin: Option<String>,
    /// Only this action (`revoke`, `issuer.add`, ...).
    pub action: Option<String>,
    /// Only entries at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Only entries before this sequence number (the next page).
    pub before: Option<u64>,
    /// At most this many (1 to [`MAX_AUDIT_PAGE`]; [`AUDIT_PAGE`] when absent).
    pub limit: Option<usize>,
}

impl Domain {
    /// A page of the audit record. An entry naming many serials (a bulk revocation names up
    /// to 100,000) shows the first [`MAX_AUDIT_SERIALS`] and how many there are; a query by
    /// serial finds every entry naming it.
    pub fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, DomainError> {
        let serial = query.serial.map(|s| Serial::from_hex(&s).map(|s| s.to_string())).transpose().map_err(invalid)?;
        let limit = query.limit.unwrap_or(AUDIT_PAGE);
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(invalid(format!(
                "limit must be 1 to {MAX_AUDIT_PAGE}; page with before=<seq of the last entry>"
            )));
        }
        let filter = AuditFilter {
            issuer: query.issuer,
            serial,
            admin: query.admin,
            action: query.action,
            since: query.since,
            before: query.before,
            limit,
        };
        let mut entries = self.store.audit(&filter)?;
        for e in &mut entries {
            if e.serials.len() > MAX_AUDIT_SERIALS {
                e.serial_count = Some(e.serials.len());
                e.serials.truncate(MAX_AUDIT_SERIALS);
            }
        }
        Ok(entries)
    }
}
