//! The operations of ocspd and their rules, between the transports (the admin API, the demo
//! set-up) and the storage: register, back up, promote and retire issuers; record certificates;
//! revoke, bulk-revoke, lift holds; read statuses and the audit record; export.
//!
//! Every change goes through the store's atomic contract (status, invalidated responses, purge
//! event and audit entry in one durable write) and is acknowledged only once durable. Errors
//! are one typed enum, [`DomainError`]; transports map it to their terms in one place.
//!
//! Everything in the process that holds or derives answers follows the store's change feed
//! ([`feed`]); an operation is acknowledged once its change is durable and applied by every
//! in-process follower. The parts of the running process an operation drives (the
//! pre-signer, the memory tier, the purge fan-out) are reached through small traits
//! ([`Resigner`], [`HotSerials`], [`PurgeWaiter`], [`Follower`]), so this crate depends on
//! none of them.

pub mod api;
mod audit;
mod certs;
mod error;
mod export;
pub mod failpoint;
pub mod feed;
mod issuers;
mod revocations;
pub mod runtime;
pub mod storage;

pub use api::Confirmed;
pub use audit::AuditQuery;
pub use error::DomainError;
pub use export::ExportQuery;
pub use feed::{ChangeFeed, Follower, Followers, RoleCursor};
pub use storage::{CrlStore, ResponseStore, StatusStore};

use ocsp_proto::{Clock, IssuerKey, Policies, Serial};
use ocsp_records::AuditEntry;
use ocsp_sign::IssuerRegistry;
use std::sync::Arc;
use std::time::Duration;

/// How long an acknowledgement waits for the in-process followers to apply its change.
pub const SETTLE_WAIT: Duration = Duration::from_secs(10);
/// Revocation times may lie this far in the future, for clock skew between staff and server.
pub const FUTURE_SLACK: i64 = 300;
/// How far back a revocation other than keyCompromise may be dated.
pub const BACKDATE_SLACK: i64 = 300;
/// The most serials one bulk call takes; ocspctl sends files in batches of this or less.
pub const MAX_BULK: usize = 100_000;
/// Audit entries per listing unless asked otherwise, and the most one listing returns.
pub const AUDIT_PAGE: usize = 100;
/// The most audit entries one listing returns.
pub const MAX_AUDIT_PAGE: usize = 1000;
/// The longest reason (`--why`) an operation takes, in bytes.
pub const MAX_WHY: usize = 4096;
/// Serials shown per audit entry in a listing (the count says how many it names).
pub const MAX_AUDIT_SERIALS: usize = 20;

/// What re-signs responses: told which certificates come first after an identity change.
pub trait Resigner: Send + Sync {
    /// Signs these certificates before anything else.
    fn urgent(&self, issuer: &IssuerKey, serials: &[Serial]);
    /// Starts a pass over every certificate of `issuer` (or every issuer).
    fn request_pass(&self, issuer: Option<IssuerKey>);
}

/// What knows which certificates are asked most (the memory tier).
pub trait HotSerials: Send + Sync {
    /// The certificates of `issuer` held now, most useful first.
    fn serials_of(&self, issuer: &IssuerKey) -> Vec<Serial>;
}

/// What delivers purges: waited on, bounded, before a revocation is acknowledged.
pub trait PurgeWaiter: Send + Sync {
    /// Waits until every target that is up accepted the events before `next`, at most
    /// `within`; returns the targets still behind.
    fn wait_delivered(&self, next: u64, within: Duration) -> Vec<String>;
}

/// The other nodes that answer from the same truth (a fleet): an acknowledgement waits until
/// each has applied its change or left service until it has.
pub trait Replicas: Send + Sync {
    /// Waits (bounded) until every node that may answer applied change `seq` or is out of
    /// service until it has.
    fn confirm(&self, seq: u64) -> Confirmed;
}

/// The parts of the running process the operations drive; each may be absent.
#[derive(Default)]
pub struct Ports {
    /// The in-process followers of the change feed, waited on before an acknowledgement.
    pub followers: Option<Arc<Followers>>,
    /// The other nodes of a fleet, waited on before an acknowledgement.
    pub replicas: Option<Arc<dyn Replicas>>,
    /// The pre-signer, when one runs.
    pub resigner: Option<Arc<dyn Resigner>>,
    /// The memory tier, when there is one.
    pub hot: Option<Arc<dyn HotSerials>>,
    /// The purge fan-out, when there is one.
    pub purges: Option<Arc<dyn PurgeWaiter>>,
    /// How long a single revocation or unhold waits for its purge to be accepted by every
    /// target that is up, before it returns.
    pub purge_wait: Duration,
}

/// The operations, over one store and the registry of issuers being served.
pub struct Domain {
    store: Arc<dyn StatusStore>,
    registry: Arc<IssuerRegistry>,
    clock: Arc<dyn Clock>,
    policies: Arc<Policies>,
    ports: Ports,
}

impl Domain {
    /// The operations over `store`, serving the issuers of `registry` under `policies`.
    pub fn new(
        store: Arc<dyn StatusStore>,
        registry: Arc<IssuerRegistry>,
        clock: Arc<dyn Clock>,
        policies: Arc<Policies>,
        ports: Ports,
    ) -> Domain {
        Domain { store, registry, clock, policies, ports }
    }

    /// The store (for the transports' own bookkeeping, such as recording refused calls).
    pub fn store(&self) -> &Arc<dyn StatusStore> {
        &self.store
    }

    /// The issuers being served.
    pub fn registry(&self) -> &Arc<IssuerRegistry> {
        &self.registry
    }

    /// The clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Writes an entry for a call that was refused (and so changed nothing else).
    pub fn record_refusal(&self, who: &str, detail: String) -> Result<(), DomainError> {
        let mut a = AuditEntry::new(self.now(), who, "refused");
        a.detail = detail;
        Ok(self.store.record_audit(a)?)
    }

    /// Waits until the in-process followers applied `change` (so no tier of this process
    /// answers from before it), at most [`SETTLE_WAIT`]; past that every follower is reset
    /// (drops all it holds), which also leaves nothing stale; it is logged. Then, in a fleet,
    /// until every other node that may answer applied it or left service until it has.
    fn settle(&self, change: Option<u64>) -> Confirmed {
        let Some(seq) = change else {
            return Confirmed::default();
        };
        self.settle_here(seq);
        match &self.ports.replicas {
            Some(replicas) => {
                let confirmed = replicas.confirm(seq);
                if let Some(why) = &confirmed.unconfirmed {
                    tracing::error!(change = seq, why = %why, "an acknowledged change is not confirmed on every node");
                }
                confirmed
            }
            None => Confirmed::default(),
        }
    }

    /// As [`Domain::settle`] for an outcome that changed nothing because the state already
    /// was what was asked (already revoked): the change that made it so may be someone else's,
    /// still on its way to the tiers, so this waits for every change committed so far.
    fn settle_committed(&self) -> Confirmed {
        match self.store.committed_head() {
            Ok(0) => Confirmed::default(),
            Ok(head) => self.settle(Some(head - 1)),
            Err(e) => Confirmed {
                fenced: Vec::new(),
                unconfirmed: Some(format!("could not read the feed's head to confirm ({e})")),
            },
        }
    }

    /// Waits for this process's followers only.
    fn settle_here(&self, seq: u64) {
        let Some(followers) = &self.ports.followers else {
            return;
        };
        if !followers.wait_applied(seq, SETTLE_WAIT) {
            tracing::error!(
                change = seq,
                applied = followers.applied(),
                "the in-process followers have not applied a change in time; every in-process cache is dropped"
            );
            followers.reset_all();
        }
    }

    /// Waits (bounded) until the purge event `event` (the caller's own, not whatever was
    /// queued after it) reached every target that is up; returns the targets still pending.
    fn wait_for_purge(&self, event: u64) -> Option<Vec<String>> {
        let purges = self.ports.purges.as_ref()?;
        let pending = purges.wait_delivered(event + 1, self.ports.purge_wait);
        (!pending.is_empty()).then_some(pending)
    }
}

/// An audit entry for a change by `who` to `issuer`; a reason longer than [`MAX_WHY`] is
/// refused (the audit record is kept for years: it takes a reason, not a document).
fn audit(now: i64, who: &str, action: &str, issuer: &str, why: Option<&str>) -> Result<AuditEntry, DomainError> {
    let why = why.unwrap_or("");
    if why.len() > MAX_WHY {
        return Err(error::invalid(format!(
            "the reason (--why) is {} bytes; at most {MAX_WHY} are recorded. Nothing was changed",
            why.len()
        )));
    }
    let mut a = AuditEntry::new(now, who, action);
    a.issuer = Some(issuer.to_string());
    a.detail = why.to_string();
    Ok(a)
}
