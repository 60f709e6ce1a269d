//! The request and response bodies of the admin API (JSON): the operations' own (from
//! `ocsp-domain`), and those of the calls that drive this process's parts (pre-signer, purge
//! fan-out, memory tier).

pub use ocsp_domain::api::*;
use serde::{Deserialize, Serialize};

/// Every error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// `POST /v1/presign`: start a pre-signing pass.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Presign {
    /// Only this issuer; every issuer when absent.
    pub issuer: Option<String>,
}

pub use ocsp_presign::PresignStats;

/// `POST /v1/purge`: a peer responder tells us answers changed; we evict our memory tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerPurge {
    /// The issuer key, hex (128 characters).
    pub issuer: String,
    /// Serials, hex; empty for every answer of the issuer.
    #[serde(default)]
    pub serials: Vec<String>,
}

/// `GET /v1/purge`: the purge fan-out's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeStatus {
    /// The next outbox sequence number.
    pub outbox_head: u64,
    /// One entry per configured target.
    pub targets: Vec<PurgeTargetView>,
}

/// One purge target's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeTargetView {
    /// Name.
    pub name: String,
    /// varnish-ban, varnish-xkey, http or peer.
    pub kind: String,
    /// Outbox events not yet accepted.
    pub pending_events: u64,
    /// Seconds since the oldest pending change.
    pub lag_seconds: i64,
    /// Requests accepted.
    pub sent: u64,
    /// Failed attempts (each retried).
    pub failures: u64,
    /// The last failure since the last success.
    pub last_error: Option<String>,
    /// Wait before the next attempt, when failing.
    pub retry_in_ms: u64,
    /// Certificates not yet purged there (at most 1,000), oldest first.
    pub pending: Vec<PendingPurge>,
    /// Changes the target refused even alone (too large or malformed for it): skipped so the
    /// purges behind them go on; their answers stay cached there until they expire.
    #[serde(default)]
    pub undeliverable: Vec<PendingPurge>,
}

/// A certificate (or a whole issuer) not yet purged at a target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingPurge {
    /// Issuer name (or key hex if no longer registered).
    pub issuer: String,
    /// Serial, or none for every answer of the issuer.
    pub serial: Option<String>,
    /// When the change was made, RFC 3339.
    pub since: String,
}
