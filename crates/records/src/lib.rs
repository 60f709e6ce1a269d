//! The vocabulary of ocspd's storage, owned above every backend: status and issuer records,
//! audit entries, changes of the feed, stored responses and CRL shards, what the operations
//! did, the rules that decide it (finality of a revocation, lifting a hold, CRL numbers only
//! going up) and the one error type of the storage traits.
//!
//! It holds no storage: the domain (`ocsp-domain`) declares the traits in these terms, and
//! each backend (`ocsp-store` on RocksDB, `ocsp-fleet` on PostgreSQL) implements them and
//! translates its own errors at its edge. Encodings here are the stored forms every backend
//! writes, so a record reads the same wherever it was written.

mod audit;
mod change;
mod crl;
mod error;
mod mirrored;
mod outcome;
mod records;
mod response;

pub use audit::{AuditEntry, AuditFilter};
pub use change::{Change, ChangeKind};
pub use crl::{crl_shard_of, crl_shard_serial, CrlWrite, StoredCrl};
pub use error::StoreError;
pub use mirrored::Mirrored;
pub use outcome::{BulkRevocation, BulkSummary, Revocation, UnholdOutcome};
pub use records::{Issued, IssuerRecord, RevokeOutcome, State, StatusRecord, RECORD_LEN};
pub use response::{ResponseEntry, StatusCursor, StatusEntry, StoredResponse};
