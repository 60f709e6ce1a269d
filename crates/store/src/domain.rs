//! The domain's storage traits (`ocsp_domain::storage`, `ocsp_domain::feed`) over RocksDB: the
//! store implements what the domain declares, in the domain's vocabulary (`ocsp-records`).

use crate::Store;
use ocsp_domain::storage::SignedResponse;
use ocsp_proto::{AnswerKey, HashAlg, IssuerKey, RevocationReason, Serial};
use ocsp_records::{
    AuditEntry, AuditFilter, BulkRevocation, Change, CrlWrite, Issued, IssuerRecord, ResponseEntry, RevokeOutcome,
    StatusCursor, StatusEntry, StatusRecord, StoreError, StoredCrl, StoredResponse, UnholdOutcome,
};
use std::sync::Arc;
use std::time::Duration;

impl ocsp_domain::CrlStore for Store {
    fn put_crl(&self, issuer: &IssuerKey, crl: &StoredCrl, now: i64) -> Result<CrlWrite, StoreError> {
        Store::put_crl(self, issuer, crl, now)
    }
}

impl ocsp_domain::StatusStore for Store {
    fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        Store::issuers(self)
    }
    fn put_issuer(&self, key: &IssuerKey, record: &IssuerRecord, audit: AuditEntry) -> Result<Change, StoreError> {
        Store::put_issuer(self, key, record, audit)
    }
    fn put_issuer_and_purge(
        &self,
        key: &IssuerKey,
        record: &IssuerRecord,
        drop_responses: bool,
        time: i64,
        audit: AuditEntry,
    ) -> Result<Change, StoreError> {
        Store::put_issuer_and_purge(self, key, record, drop_responses, time, audit)
    }
    fn record_certificates(
        &self,
        issuer: &IssuerKey,
        certs: &[Issued],
        now: i64,
        audit: AuditEntry,
    ) -> Result<(usize, Option<u64>), StoreError> {
        Store::record_certificates(self, issuer, certs, now, audit)
    }
    fn revoke(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        time: i64,
        reason: RevocationReason,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(RevokeOutcome, Option<u64>), StoreError> {
        Store::revoke(self, issuer, serial, time, reason, now, audit)
    }
    fn revoke_many(
        &self,
        issuer: &IssuerKey,
        serials: &[Serial],
        time: i64,
        reason: RevocationReason,
        now: i64,
        dry_run: bool,
        audit: AuditEntry,
    ) -> Result<BulkRevocation, StoreError> {
        Store::revoke_many(self, issuer, serials, time, reason, now, dry_run, audit)
    }
    fn unhold(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        now: i64,
        audit: AuditEntry,
    ) -> Result<UnholdOutcome, StoreError> {
        Store::unhold(self, issuer, serial, now, audit)
    }
    fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError> {
        Store::status(self, issuer, serial)
    }
    fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError> {
        Store::statuses(self, items)
    }
    fn count(&self, issuer: &IssuerKey) -> Result<(u64, u64), StoreError> {
        Store::count(self, issuer)
    }
    fn revoked_serials(&self, issuer: &IssuerKey) -> Result<Vec<Serial>, StoreError> {
        Store::revoked_serials(self, issuer)
    }
    fn record_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        Store::record_audit(self, audit)
    }
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        Store::audit(self, filter)
    }
    fn scan_responses(&self, after: Option<&AnswerKey>, limit: usize) -> Result<Vec<ResponseEntry>, StoreError> {
        Store::scan_responses(self, after, limit)
    }
    fn feed_head(&self) -> u64 {
        Store::feed_head(self)
    }
}

impl ocsp_domain::ResponseStore for Store {
    fn response(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        alg: HashAlg,
    ) -> Result<Option<StoredResponse>, StoreError> {
        Store::response(self, issuer, serial, alg)
    }
    fn responses(&self, answers: &[AnswerKey]) -> Result<Vec<Option<StoredResponse>>, StoreError> {
        Store::responses(self, answers)
    }
    fn put_responses_if_current(&self, items: &[SignedResponse]) -> Result<usize, StoreError> {
        Store::put_responses_if_current(self, items)
    }
    fn put_responses_checked(
        &self,
        items: &[SignedResponse],
        signer_current: &dyn Fn(&IssuerKey) -> bool,
    ) -> Result<usize, StoreError> {
        Store::put_responses_checked(self, items, signer_current)
    }
    fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError> {
        Store::status(self, issuer, serial)
    }
    fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError> {
        Store::statuses(self, items)
    }
    fn scan_statuses(&self, from: Option<&StatusCursor>, limit: usize) -> Result<Vec<StatusEntry>, StoreError> {
        Store::scan_statuses(self, from, limit)
    }
    fn estimated_statuses(&self) -> u64 {
        Store::estimated_statuses(self)
    }
}

impl ocsp_domain::ChangeFeed for Store {
    fn head(&self) -> u64 {
        self.feed_head()
    }

    fn changes(&self, from: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        Store::changes(self, from, limit)
    }

    fn wait_for_changes(&self, from: u64, timeout: Duration) -> u64 {
        Store::wait_for_changes(self, from, timeout)
    }

    fn hold(&self, from: u64) {
        self.hold_feed(from)
    }

    fn cursor(&self, name: &str) -> Result<u64, StoreError> {
        self.feed_cursor(name)
    }

    fn set_cursor(&self, name: &str, next: u64) -> Result<(), StoreError> {
        self.set_feed_cursor(name, next)
    }

    fn trim(&self, before: u64) -> Result<(), StoreError> {
        self.trim_feed(before)
    }
}

/// A [`RoleCursor`] in the local store, for the single node (which always holds the role).
pub struct LocalCursor {
    store: Arc<Store>,
    name: &'static str,
}

impl LocalCursor {
    /// The consumer cursor `name` of `store`.
    pub fn new(store: Arc<Store>, name: &'static str) -> LocalCursor {
        LocalCursor { store, name }
    }
}

impl ocsp_domain::RoleCursor for LocalCursor {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        self.store.consumer_cursor(self.name).map(Some)
    }

    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        self.store.set_consumer_cursor(self.name, next)?;
        Ok(true)
    }
}
