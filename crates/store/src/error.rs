use std::path::Path;
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
    /// Any other RocksDB failure (I/O error, out of space).
    #[error("database error: {0}")]
    Db(String),
}

impl StoreError {
    pub(crate) fn open(path: &Path, e: rocksdb::Error) -> StoreError {
        StoreError::Open { path: path.display().to_string(), reason: e.into_string() }
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Db(e.into_string())
    }
}
