//! RocksDB's errors in the domain's terms: `rocksdb::Error` never leaves this crate.

use ocsp_records::StoreError;
use std::path::Path;

/// A database that could not be opened, saying where.
pub(crate) fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    StoreError::Open { path: path.display().to_string(), reason: e.into_string() }
}

/// A RocksDB failure as a [`StoreError`]: busy kinds may succeed later, I/O (a full disk)
/// until the cause is fixed.
pub(crate) fn db_error(e: rocksdb::Error) -> StoreError {
    use rocksdb::ErrorKind as K;
    match e.kind() {
        K::Busy | K::TimedOut | K::TryAgain | K::Incomplete => StoreError::Busy(e.into_string()),
        K::IOError => StoreError::Io(e.into_string()),
        _ => StoreError::Db(e.into_string()),
    }
}

/// `?` on RocksDB's results: `.db()?`.
pub(crate) trait Db<T> {
    /// The result with RocksDB's error translated.
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, rocksdb::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_error)
    }
}
