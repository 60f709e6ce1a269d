//! The OCSP protocol core of ocspd: request parsing, CertIDs, certificate facts, and
//! response assembly (RFC 6960, with the RFC 5019 / RFC 9919 lightweight profile).
//!
//! This crate does no I/O and runs no tasks. Every time is passed in as seconds since the Unix
//! epoch; the one exception is [`SystemClock`], the production implementation of the
//! [`Clock`] trait the binaries hand to the other crates ([`clock::FixedClock`] is the tests'). Signing is done elsewhere (`ocsp-sign`); this crate only
//! hands out the exact bytes to be signed and assembles the signed result.

mod cadence;
mod certid;
pub mod clock;
pub mod crl;
pub mod der;
mod error;
mod getpath;
mod hash;
pub mod policy;
mod request;
mod response;
mod status;
pub mod x509;

pub use cadence::{Cadence, CadenceError};
pub use certid::{AnswerKey, CertId, IssuerHashes, IssuerKey, Serial};
pub use clock::{Clock, SystemClock};
pub use crl::{shard_of, CrlBuilder, CrlEntry, CrlScope, MAX_CRL_SHARDS};
pub use error::ProtoError;
pub use getpath::{decode_get_path, percent_decode, PercentError, MAX_REQUEST_BYTES};
pub use hash::HashAlg;
pub use policy::{IssuerPolicy, NoncePolicy, Policies, ReasonProfile};
pub use request::{encode_request, nonce_octets, parse_request, OcspRequest, MAX_CERT_IDS, NONCE_OCTETS};
pub use response::{
    decode_response, error_response, Answer, ResponseBuilder, ResponseStatus, SignatureAlgorithm, SignedResponse,
};
pub use status::{CertStatus, RevocationReason};

#[cfg(test)]
mod tests;
