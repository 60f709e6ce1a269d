use ocsp_records::StoreError;

/// Why an operation was refused or failed. Transports map it to their own terms in exactly
/// one place each (the admin API: [`DomainError`] to an HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The request is wrong: a bad serial, a reason the issuer's profile refuses, a time in
    /// the future. Nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist (an issuer, a recorded certificate).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the current state (already revoked for another reason, already
    /// retired, no backup to promote). Nothing changed.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot take it now (busy, out of space, an I/O error): try again.
    /// Nothing was acknowledged.
    #[error("the database cannot take this now: {0}")]
    Unavailable(String),
    /// A fault on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(_) | StoreError::Io(_) | StoreError::Unreachable(_) => {
                DomainError::Unavailable(e.to_string())
            }
            StoreError::Conflict(_) => DomainError::Conflict(e.to_string()),
            other => DomainError::Internal(other.to_string()),
        }
    }
}

/// Shorthand for [`DomainError::Invalid`].
pub(crate) fn invalid(msg: impl Into<String>) -> DomainError {
    DomainError::Invalid(msg.into())
}
