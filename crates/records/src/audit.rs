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

    /// Cuts the entry as a listing shows it, so a page of entries stays small whatever was
    /// recorded: at most [`LISTED_SERIALS`] serials (`serial_count` says how many it names) and
    /// [`LISTED_DETAIL_BYTES`] of its detail (saying how long it was).
    pub fn clip_for_listing(&mut self) {
        if self.serials.len() > LISTED_SERIALS {
            self.serial_count = Some(self.serials.len());
            self.serials.truncate(LISTED_SERIALS);
            self.serials.shrink_to_fit();
        }
        if self.detail.len() > LISTED_DETAIL_BYTES {
            let mut end = LISTED_DETAIL_BYTES;
            while !self.detail.is_char_boundary(end) {
                end -= 1;
            }
            let total = self.detail.len();
            self.detail.truncate(end);
            self.detail.push_str(&format!("... ({total} bytes)"));
            self.detail.shrink_to_fit();
        }
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

/// Serials a listed entry shows.
pub const LISTED_SERIALS: usize = 20;
/// Bytes of its detail a listed entry shows.
pub const LISTED_DETAIL_BYTES: usize = 1024;

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

#[cfg(test)]
mod clip_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_listed_entry_is_small_whatever_was_recorded() {
        let mut e = AuditEntry::new(1, "reader", "refused");
        e.detail = "é".repeat(30_000);
        e.serials = (0..100_000).map(|n| format!("{n:x}")).collect();
        e.clip_for_listing();
        assert_eq!(e.serials.len(), LISTED_SERIALS);
        assert_eq!(e.serial_count, Some(100_000));
        assert!(e.detail.len() <= LISTED_DETAIL_BYTES + 32, "{}", e.detail.len());
        assert!(e.detail.ends_with("(60000 bytes)"));
        assert!(e.encode().unwrap().len() < 2048);
    }
}
