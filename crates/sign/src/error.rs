use thiserror::Error;

/// Failures of loading a key or signing with it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key file could not be read.
    #[error("cannot read key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key is not in a form we load.
    #[error("key {source_name}: {reason}")]
    BadKey {
        /// Where the key came from.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing operation failed (the key or token refused it).
    #[error("signing with {0} failed")]
    SignFailed(String),
    /// The signer cannot sign now (token unreachable, session lost); retry later.
    #[error("signer {0} is unavailable: {1}")]
    Unavailable(String, String),
    /// The responder certificate is outside its validity at the signing time: this issuer
    /// answers tryLater until a valid identity is provisioned (others are unaffected).
    #[error("responder certificate {subject} is outside its validity at {at} (valid {not_before} to {not_after}); provision a new one (docs/runbooks.md)")]
    OutsideValidity {
        /// The responder certificate's subject.
        subject: String,
        /// The signing time.
        at: i64,
        /// notBefore.
        not_before: i64,
        /// notAfter.
        not_after: i64,
    },
    /// The response could not be encoded.
    #[error(transparent)]
    Proto(#[from] ocsp_proto::ProtoError),
}

/// A responder identity breaks one or more rules.
#[derive(Debug, Error)]
#[error("responder identity {what} is not usable: {}", .broken.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct IdentityError {
    /// Which identity (a file name or label).
    pub what: String,
    /// Every rule it breaks.
    pub broken: Vec<crate::IdentityRule>,
}
