//! The inputs and outputs of the operations, as the admin API carries them (JSON).

use serde::{Deserialize, Serialize};

/// `POST /v1/issuers`: register an issuer and the identity that signs for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddIssuer {
    /// A unique name for staff to refer to it by.
    pub name: String,
    /// The issuer certificate, PEM.
    pub cert_pem: String,
    /// A delegated responder certificate, PEM; absent when the issuer's own key signs.
    pub responder_cert_pem: Option<String>,
    /// Where the signing key is, as ocspd can reach it: `file:<absolute path>` or a
    /// `pkcs11:` URI (RFC 7512).
    pub key: String,
    /// The backup responder certificate, PEM (absent when the backup key is the issuer's own).
    #[serde(default)]
    pub backup_responder_cert_pem: Option<String>,
    /// The backup signing key, a key other than `key`.
    #[serde(default)]
    pub backup_key: Option<String>,
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// `POST /v1/issuers/{name}/backup`: provision (or replace) the backup identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetBackup {
    /// The backup responder certificate, PEM.
    pub responder_cert_pem: Option<String>,
    /// The backup key reference.
    pub key: String,
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// `POST /v1/issuers/{name}/crl-key`: the issuer's own key, which signs its CRLs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetCrlKey {
    /// The key reference (`file:` or `pkcs11:`) of the issuer certificate's own key.
    pub key: String,
    /// Shards of its CRL (1 to 4096), fixed from the first time a CRL key is set: a
    /// certificate's shard follows from its serial and this count. None: the responder's
    /// default (`crl.shards`), or the count already set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// `POST /v1/issuers/{name}/promote`: the backup identity signs from now on.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Promote {
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// What a promotion did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promoted {
    /// The issuer as it is now.
    pub issuer: IssuerView,
    /// The responder that signed before.
    pub previous_responder: String,
    /// Revoked certificates queued first for re-signing.
    pub revoked_first: usize,
    /// Most-asked certificates (held in the memory tier) queued next.
    pub hot_next: usize,
    /// Certificates of the issuer in all, re-signed by the pass that follows.
    pub total: u64,
}

/// An issuer as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuerView {
    /// Its name.
    pub name: String,
    /// Its subject.
    pub subject: String,
    /// SHA-1 name hash, hex.
    pub sha1_name_hash: String,
    /// SHA-1 key hash, hex.
    pub sha1_key_hash: String,
    /// SHA-256 name hash, hex.
    pub sha256_name_hash: String,
    /// SHA-256 key hash, hex.
    pub sha256_key_hash: String,
    /// The responder certificate's subject.
    pub responder: String,
    /// True when a delegated responder certificate signs.
    pub delegated: bool,
    /// The signing key's location.
    pub key: String,
    /// Days until the responder certificate expires.
    pub responder_expires_in_days: i64,
    /// The backup responder's subject, when a backup is provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_responder: Option<String>,
    /// The backup key's location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
    /// Days until the backup responder certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_expires_in_days: Option<i64>,
    /// The key that signs the issuer's CRLs, if it publishes CRLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_key: Option<String>,
    /// Shards of its CRL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_shards: Option<u32>,
    /// Certificates recorded good, when counted (`issuer show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good: Option<u64>,
    /// Certificates recorded revoked, when counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
    /// When it was retired, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    /// Its revocation-reason profile (`tls-br` or `private`), from the configuration.
    #[serde(default)]
    pub reason_profile: String,
    /// Its nonce policy (`ignore` or `echo`), from the configuration.
    #[serde(default)]
    pub nonce_policy: String,
}

/// `POST /v1/issuers/{name}/retire`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Retire {
    /// Why, for the audit record.
    pub why: Option<String>,
}

/// A revocation carried by an import (OpenSSL index.txt `R` lines).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportedRevocation {
    /// Revocation time, seconds since the epoch.
    pub time: i64,
    /// RFC 5280 reason name.
    pub reason: String,
}

/// One certificate to record as issued: a certificate (PEM), or a serial.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CertSpec {
    /// The certificate, PEM. Its issuer is checked (name and signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    /// The serial in hex, when no certificate is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// notAfter, seconds since the epoch, when no certificate is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// Already revoked (imports of a CA's history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<ImportedRevocation>,
    /// A CA certificate, when only a serial is given (a certificate says so itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ca: bool,
}

/// `POST /v1/certs`: record issued certificates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddCerts {
    /// The issuer's name. Required for serials; for certificates, checked when given and
    /// found by name and signature when not.
    pub issuer: Option<String>,
    /// The certificates.
    pub certs: Vec<CertSpec>,
    /// Why (or where from), for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// The answer to [`AddCerts`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AddedCerts {
    /// Newly recorded.
    pub added: usize,
    /// Already recorded (left as they were).
    pub already: usize,
    /// Serials recorded, hex, with the issuer name.
    pub serials: Vec<(String, String)>,
    /// Imported revocations applied.
    #[serde(default)]
    pub revoked: usize,
    /// Imported revocations that conflict with a recorded one (left as recorded).
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// Imported revocations in a fleet: the nodes they did not reach in time.
    #[serde(default, skip_serializing_if = "Confirmed::is_empty")]
    pub confirmed: Confirmed,
}

/// `POST /v1/revoke`: revoke one certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revoke {
    /// The issuer's name.
    pub issuer: String,
    /// The serial, hex.
    pub serial: String,
    /// An RFC 5280 reason name or code.
    pub reason: String,
    /// Revocation time, seconds since the epoch; now when absent.
    pub time: Option<i64>,
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// `POST /v1/revoke/bulk`: revoke many certificates of one issuer, atomically per call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkRevoke {
    /// The issuer's name.
    pub issuer: String,
    /// Serials, hex.
    pub serials: Vec<String>,
    /// An RFC 5280 reason name or code.
    pub reason: String,
    /// Revocation time; now when absent.
    pub time: Option<i64>,
    /// Only say what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// The answer to [`BulkRevoke`]: durable when received (unless a dry run).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct BulkResult {
    /// Good before, revoked now.
    pub revoked: usize,
    /// Reason changed (to keyCompromise, or a hold made final).
    pub changed: usize,
    /// Already revoked with this reason.
    pub already_revoked: usize,
    /// Already revoked with a reason that may not change to this one.
    pub refused: Vec<String>,
    /// Never recorded as issued by this issuer.
    pub unknown_serial: Vec<String>,
    /// True when nothing was written.
    pub dry_run: bool,
    /// In a fleet: the nodes the revocations did not reach in time.
    #[serde(default, skip_serializing_if = "Confirmed::is_empty")]
    pub confirmed: Confirmed,
    /// The purge targets that had not accepted the purge when the call returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_pending: Option<Vec<String>>,
}

impl BulkResult {
    /// Adds another batch's result to this one.
    pub fn add(&mut self, other: BulkResult) {
        self.revoked += other.revoked;
        self.changed += other.changed;
        self.already_revoked += other.already_revoked;
        self.refused.extend(other.refused);
        self.unknown_serial.extend(other.unknown_serial);
        self.dry_run = other.dry_run;
        self.confirmed.add(other.confirmed);
        if let Some(p) = other.purge_pending {
            let mine = self.purge_pending.get_or_insert_with(Vec::new);
            for t in p {
                if !mine.contains(&t) {
                    mine.push(t);
                }
            }
        }
    }
}

/// `POST /v1/unhold`: lift a certificateHold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unhold {
    /// The issuer's name.
    pub issuer: String,
    /// The serial, hex.
    pub serial: String,
    /// Why, for the audit record.
    #[serde(default)]
    pub why: Option<String>,
}

/// A certificate's status as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusView {
    /// The issuer's name.
    pub issuer: String,
    /// The serial, hex.
    pub serial: String,
    /// `good`, `revoked` or `unknown`.
    pub status: String,
    /// Revocation time, RFC 3339.
    pub revocation_time: Option<String>,
    /// Revocation reason name.
    pub reason: Option<String>,
    /// notAfter, RFC 3339, when known.
    pub not_after: Option<String>,
    /// What the call did: `revoked`, `changed`, `already revoked`, or nothing for a lookup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// After a change: the purge targets that had not yet accepted its purge when the call
    /// returned (down, or slower than the wait). It stays queued for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_pending: Option<Vec<String>>,
    /// Said of a read answered from a local copy (a fleet node's replica while the fleet
    /// database is unreachable): how current it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// After a change in a fleet: the nodes it did not reach in time (see [`Confirmed`]).
    #[serde(default, skip_serializing_if = "Confirmed::is_empty")]
    pub confirmed: Confirmed,
}

/// `GET /v1/feed`: one follower of the change feed and how far behind the head it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerLag {
    /// What it is: `followers` (this process's caches), `purge/<target>`, `crl`, `replica`.
    pub name: String,
    /// `in-process` (from the head at start, nothing kept), `durable` (its own cursor),
    /// `role` (its cursor lives with a lease: only the holder moves it), `replica`.
    pub kind: String,
    /// The first change it has not applied (none: it does not run on this node now).
    pub next: Option<u64>,
    /// Changes between it and the head.
    pub lag: u64,
}

/// How far an acknowledged change is known to have reached beyond the node that made it (a
/// fleet); empty on a single node and when every node applied it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    /// Nodes that had not applied the change in time and were taken out of service until
    /// they have (they answer no `good` meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fenced: Vec<String>,
    /// Set when it could not be confirmed that every node applied the change, with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<String>,
}

impl Confirmed {
    /// Nothing to report.
    pub fn is_empty(&self) -> bool {
        self.fenced.is_empty() && self.unconfirmed.is_none()
    }

    /// Adds another change's confirmation to this one.
    pub fn add(&mut self, other: Confirmed) {
        for n in other.fenced {
            if !self.fenced.contains(&n) {
                self.fenced.push(n);
            }
        }
        if self.unconfirmed.is_none() {
            self.unconfirmed = other.unconfirmed;
        }
    }
}

/// One audit entry as the API shows it.
pub use ocsp_records::AuditEntry as AuditView;

/// RFC 3339 for seconds since the epoch.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339()).unwrap_or_else(|| t.to_string())
}

/// `GET /v1/export`: a page of current pre-signed responses, each with its GET path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportPage {
    /// The responses.
    pub items: Vec<ExportItem>,
    /// Pass as `after` for the next page; none when this is the last.
    pub next: Option<String>,
}

/// One exported response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportItem {
    /// The GET path (base64 of the canonical RFC 5019 request, no leading slash).
    pub path: String,
    /// The OCSPResponse DER, base64.
    pub der: String,
    /// nextUpdate, seconds since the epoch.
    pub next_update: i64,
    /// The issuer's key (hex of its SHA-256 name and key hashes), which names its export
    /// manifest.
    #[serde(default)]
    pub issuer_key: String,
}
