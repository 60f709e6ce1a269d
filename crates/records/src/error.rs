use thiserror::Error;

/// Failures of the revocation database.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened (locked by another process, corrupt, unreadable).
    #[error("cannot open the database at {path}: {reason}")]
    Open {
        /// Where.
        path: String,
        /// RocksDB's explanation.
        reason: String,
    },
    /// The database was written by a newer or unknown schema.
    #[error("the database has schema version {0:?}; this ocspd reads version 1")]
    Schema(String),
    /// A column family is missing (a bug or a foreign database).
    #[error("column family {0} is missing")]
    MissingColumnFamily(&'static str),
    /// A stored record does not decode.
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("internal lock poisoned")]
    Poisoned,
    /// RocksDB is busy or timed out (a write stall, a lock): the same call may succeed later.
    #[error("database busy: {0}")]
    Busy(String),
    /// An I/O error, a full disk among them: writes fail until the cause is fixed.
    #[error("database I/O error: {0}")]
    Io(String),
    /// Any other RocksDB failure.
    #[error("database error: {0}")]
    Db(String),
    /// The fleet's shared database (PostgreSQL) cannot be reached or refused the transaction:
    /// nothing was changed.
    #[error("the fleet database is unavailable, nothing was changed: {0}")]
    Unreachable(String),
    /// The fleet's shared database refused a row (a constraint): the request contradicts what
    /// is stored. Nothing was changed.
    #[error("the fleet database refused the change: {0}")]
    Conflict(String),
    /// A fleet replica is written only by its replicator, in feed order.
    #[error("replica: {0}")]
    Replica(String),
}

impl StoreError {
    /// The same call may succeed later without anyone acting (busy, timed out).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy(_))
    }
}
