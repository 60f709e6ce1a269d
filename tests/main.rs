//! Integration tests: the real `ocspd` and `ocspctl` binaries on 127.0.0.1 with a real RocksDB
//! in a temporary folder, queried by clients we did not write (`openssl ocsp`, curl, Python's
//! `cryptography`).
//!
//! The binaries come from the same cargo profile as this test (`make test` builds them first).

#![allow(missing_docs, clippy::unwrap_used)]

mod util;

mod admin;
mod conformance;
mod crl;
mod database;
mod deploy;
mod durability;
mod edge;
mod failover;
mod fault_matrix;
mod fleet;
mod globalsign;
mod hostile;
mod hsm;
mod malformed;
mod openssl;
mod policy;
mod presign;
