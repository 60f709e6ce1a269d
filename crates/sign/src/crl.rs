//! The issuer's own key, which signs its CRLs (a CA usually delegates OCSP, but must sign its
//! CRLs itself, RFC 5280 5.1.1.2 and BR 7.2).

use crate::{load_signer, SignError, Signer};
use ocsp_proto::x509::CertInfo;
use std::sync::Arc;

/// Why a key cannot sign an issuer's CRLs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlKeyError {
    /// The issuer certificate does not parse.
    #[error("the issuer certificate: {0}")]
    Certificate(String),
    /// The key cannot be loaded.
    #[error("the CRL key {key}: {source}")]
    Load {
        /// The key reference.
        key: String,
        /// Why.
        source: SignError,
    },
    /// The issuer certificate does not allow CRL signing.
    #[error("the issuer certificate {0} has no keyUsage cRLSign; it may not sign CRLs (RFC 5280 4.2.1.3)")]
    NotCrlSign(String),
    /// The key is not the issuer certificate's.
    #[error("the CRL key {key} is not the key of the issuer certificate {subject}; CRLs must be signed by the issuer itself")]
    KeyMismatch {
        /// The key reference.
        key: String,
        /// The issuer certificate's subject.
        subject: String,
    },
}

/// Loads `key_ref` as the CRL signer of the issuer certificate `issuer_der`, checked: the
/// certificate asserts cRLSign and the key is the certificate's own.
pub fn crl_signer(issuer_der: &[u8], key_ref: &str) -> Result<Arc<dyn Signer>, CrlKeyError> {
    let cert = CertInfo::from_der(issuer_der).map_err(|e| CrlKeyError::Certificate(e.to_string()))?;
    if !cert.crl_sign {
        return Err(CrlKeyError::NotCrlSign(cert.subject_text()));
    }
    let signer = load_signer(key_ref).map_err(|source| CrlKeyError::Load { key: key_ref.to_string(), source })?;
    if signer.public_key() != cert.public_key.as_slice() {
        return Err(CrlKeyError::KeyMismatch { key: key_ref.to_string(), subject: cert.subject_text() });
    }
    Ok(signer)
}
