//! What the domain and the serving parts need from storage, as traits the domain owns.
//!
//! [`StatusStore`] owns the atomic contract: a status change, the responses it invalidates, its
//! change in the feed (which carries the purge) and its audit entry are one durable write,
//! acknowledged only once durable. [`ResponseStore`] holds pre-signed responses, written only
//! while the status they were signed from is current. [`ChangeFeed`](crate::ChangeFeed) is
//! the ordered, resumable feed. The types they speak are `ocsp-records`'; `ocsp_records::Store`
//! (RocksDB) and `ocsp_fleet` (PostgreSQL) implement them and depend on this crate, never the
//! reverse; each is the only code that knows its layout. Everything else passes typed keys (`IssuerKey`,
//! `Serial`, `AnswerKey`).

use ocsp_proto::{AnswerKey, HashAlg, IssuerKey, RevocationReason, Serial};
use ocsp_records::{
    AuditEntry, AuditFilter, BulkRevocation, Change, CrlWrite, Issued, IssuerRecord, ResponseEntry, RevokeOutcome,
    StatusCursor, StatusEntry, StatusRecord, StoreError, StoredCrl, StoredResponse, UnholdOutcome,
};

/// A pre-signed response to write, with the answer it is for.
pub type SignedResponse = (IssuerKey, Serial, HashAlg, StoredResponse);

/// Issuers, certificate statuses and the audit record, changed under the atomic contract.
pub trait StatusStore: Send + Sync {
    /// Every registered issuer (retired ones included).
    fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError>;
    /// Adds or replaces an issuer record, with an issuer change (everything that loads
    /// issuers follows it) and its audit entry, durably.
    fn put_issuer(&self, key: &IssuerKey, record: &IssuerRecord, audit: AuditEntry) -> Result<Change, StoreError>;
    /// Replaces an issuer record with an issuer-wide change (signer changed or retired) and
    /// the audit entry, in one durable write; with `drop_responses`, every stored response of
    /// the issuer goes in the same write.
    fn put_issuer_and_purge(
        &self,
        key: &IssuerKey,
        record: &IssuerRecord,
        drop_responses: bool,
        time: i64,
        audit: AuditEntry,
    ) -> Result<Change, StoreError>;
    /// Records issued certificates (never overwriting a record); how many were new, and the
    /// change written.
    fn record_certificates(
        &self,
        issuer: &IssuerKey,
        certs: &[Issued],
        now: i64,
        audit: AuditEntry,
    ) -> Result<(usize, Option<u64>), StoreError>;
    /// Revokes one certificate; what happened and the change written, if any.
    fn revoke(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        time: i64,
        reason: RevocationReason,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(RevokeOutcome, Option<u64>), StoreError>;
    /// Revokes many certificates of one issuer in one durable write (or, `dry_run`, says
    /// what it would do).
    #[allow(clippy::too_many_arguments)]
    fn revoke_many(
        &self,
        issuer: &IssuerKey,
        serials: &[Serial],
        time: i64,
        reason: RevocationReason,
        now: i64,
        dry_run: bool,
        audit: AuditEntry,
    ) -> Result<BulkRevocation, StoreError>;
    /// Lifts a certificateHold.
    fn unhold(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        now: i64,
        audit: AuditEntry,
    ) -> Result<UnholdOutcome, StoreError>;
    /// One certificate's status record.
    fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError>;
    /// Many status records in one read.
    fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError>;
    /// An issuer's certificates: (good, revoked).
    fn count(&self, issuer: &IssuerKey) -> Result<(u64, u64), StoreError>;
    /// The serials of an issuer's revoked certificates.
    fn revoked_serials(&self, issuer: &IssuerKey) -> Result<Vec<Serial>, StoreError>;
    /// Writes an audit entry on its own (a refused call).
    fn record_audit(&self, audit: AuditEntry) -> Result<(), StoreError>;
    /// Audit entries, newest first.
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
    /// Stored responses after `after`, in answer order (export).
    fn scan_responses(&self, after: Option<&AnswerKey>, limit: usize) -> Result<Vec<ResponseEntry>, StoreError>;
    /// The number the next change of the feed will get.
    fn feed_head(&self) -> u64;
    /// The number the next change will get in the truth itself (in a fleet: PostgreSQL's,
    /// which may be ahead of this node's replica).
    fn committed_head(&self) -> Result<u64, StoreError> {
        Ok(self.feed_head())
    }
    /// Taken once after a read that could not reach the truth and was answered from a local
    /// copy instead (a fleet node's replica): what the reader should know.
    fn read_note(&self) -> Option<String> {
        None
    }
}

/// Pre-signed responses and the status reads that signing them needs.
pub trait ResponseStore: Send + Sync {
    /// One stored response.
    fn response(&self, issuer: &IssuerKey, serial: &Serial, alg: HashAlg)
        -> Result<Option<StoredResponse>, StoreError>;
    /// Many stored responses in one read.
    fn responses(&self, answers: &[AnswerKey]) -> Result<Vec<Option<StoredResponse>>, StoreError>;
    /// Writes the responses whose status is still the one they were signed from; how many.
    fn put_responses_if_current(&self, items: &[SignedResponse]) -> Result<usize, StoreError>;
    /// As [`ResponseStore::put_responses_if_current`], and only while `signer_current` says the
    /// identity that signed them still signs for their issuer.
    fn put_responses_checked(
        &self,
        items: &[SignedResponse],
        signer_current: &dyn Fn(&IssuerKey) -> bool,
    ) -> Result<usize, StoreError>;
    /// One certificate's status record.
    fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError>;
    /// Many status records in one read.
    fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError>;
    /// Status records in issuer then serial order, from `from` (a pass).
    fn scan_statuses(&self, from: Option<&StatusCursor>, limit: usize) -> Result<Vec<StatusEntry>, StoreError>;
    /// About how many status records there are.
    fn estimated_statuses(&self) -> u64;
}

/// Signed CRL shards: one is stored only if its CRLNumber is above the stored one (a shard's
/// number never goes back or repeats), with a change in the feed that purges its URL.
pub trait CrlStore: Send + Sync {
    /// Stores a signed shard, durably, if its number is above the stored one.
    fn put_crl(&self, issuer: &IssuerKey, crl: &StoredCrl, now: i64) -> Result<CrlWrite, StoreError>;
}
