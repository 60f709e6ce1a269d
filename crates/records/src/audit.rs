use crate::StoreError;
use serde::{Deserialize, Serialize};

/// One entry of the audit record: who changed what, when, and why. Written in the same atomic
/// batch as the change it describes, so there is never a change without its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditEntry {
    /// Position in the record, assigned when written (monotonic).
    #[serde(default)]
    pub seq: u64,
    /// When, seconds since the epoch.
    pub time: i64,
    /// The admin credential's name.
    pub admin: String,
    /// What was done: `issuer.add`, `issuer.retire`, `cert.add`, `revoke`, `unhold`.
    pub action: String,
    /// The issuer's name, when one is concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Serials changed (hex); empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serials: Vec<String>,
    /// The revocation reason, when one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free text: the operator's `--why`, counts, file names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// In a listing that shows only the first serials of a large entry: how many it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_count: Option<usize>,
}

impl AuditEntry {
    /// A new entry for `action` by `admin` at `time`.
    pub fn new(time: i64, admin: &str, action: &str) -> AuditEntry {
        AuditEntry { time, admin: admin.to_string(), action: action.to_string(), ..Default::default() }
    }

    /// The stored form of the entry (JSON).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Reads the stored form of the entry.
    pub fn decode(bytes: &[u8]) -> Result<AuditEntry, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))
    }
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this issuer.
    pub issuer: Option<String>,
    /// Only entries naming this serial (hex, as stored).
    pub serial: Option<String>,
    /// Only this admin credential.
    pub admin: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<i64>,
    /// Only entries older than this sequence number (the next page of a listing).
    pub before: Option<u64>,
    /// At most this many, newest first (0: no bound, for internal use only).
    pub limit: usize,
}

impl AuditFilter {
    /// Whether `e` passes the filter (all but `before` and `limit`).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.issuer.as_ref().is_none_or(|i| e.issuer.as_ref() == Some(i))
            && self.admin.as_ref().is_none_or(|a| &e.admin == a)
            && self.action.as_ref().is_none_or(|a| &e.action == a)
            && self.since.is_none_or(|s| e.time >= s)
            && self.serial.as_ref().is_none_or(|s| e.serials.iter().any(|x| x.eq_ignore_ascii_case(s)))
    }
}
