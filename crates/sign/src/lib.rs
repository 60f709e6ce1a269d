//! The signing core of ocspd: the [`Signer`] seam, the software signer (PKCS#8 keys through
//! aws-lc-rs), and [`ResponderIdentity`], which checks that a key may sign for an issuer and
//! signs responses with it.
//!
//! This crate does no network I/O and keeps no state beyond loaded keys. Which identity signs
//! for which issuer, and when, is decided by the callers.

mod crl;
mod error;
pub mod files;
mod identity;
mod pkcs11;
mod registry;
mod software;
mod verify;

pub use crl::{crl_signer, CrlKeyError};
pub use error::{IdentityError, SignError};
pub use identity::{IdentityRule, ResponderIdentity, ValidityPolicy};
pub use pkcs11::{allow_pkcs11_modules, PinSource, Pkcs11Ref, Pkcs11Signer};
pub use registry::{load_signer, IssuerEntry, IssuerRegistry, LoadError};
pub use software::SoftwareSigner;
pub use verify::verify_issued_by;

use ocsp_proto::SignatureAlgorithm;

/// Something that signs response bytes with a private key it never hands out.
///
/// Implementations: [`SoftwareSigner`] (a PKCS#8 key in memory), and the PKCS#11 signer for
/// keys that live in an HSM. `sign` may block (an HSM round trip): async callers run it on
/// a blocking thread.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The algorithm every signature of this signer uses.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// The public key bits (the subjectPublicKey BIT STRING content of its certificate).
    fn public_key(&self) -> &[u8];
    /// Signs `message` (hashing it with SHA-256 as part of the algorithm). ECDSA signatures are
    /// DER `Ecdsa-Sig-Value`s; RSA signatures are the raw modulus-sized block.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
    /// Where the key lives, for logs and errors (a file path, a token and label).
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests;
