use thiserror::Error;

/// Everything that can go wrong while reading OCSP or certificate bytes.
///
/// Each variant names what was wrong; the HTTP layer maps all of them to the OCSP
/// `malformedRequest` status (or a 4xx) in one place.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// The bytes are not a DER OCSPRequest.
    #[error("request is not a DER OCSPRequest: {0}")]
    MalformedRequest(String),
    /// The request is well formed but names no certificate.
    #[error("request names no certificate")]
    EmptyRequest,
    /// The request names more certificates than we answer in one response.
    #[error("request names {0} certificates; at most {max} are answered at once", max = crate::MAX_CERT_IDS)]
    TooManyCertIds(usize),
    /// A CertID uses a hash algorithm other than SHA-1 or SHA-256.
    #[error("unsupported CertID hash algorithm {0}")]
    UnsupportedHash(String),
    /// A CertID hash has the wrong length for its algorithm.
    #[error("CertID {field} is {got} bytes; {alg} gives {want}")]
    BadHashLength {
        /// Which hash field.
        field: &'static str,
        /// The algorithm named in the CertID.
        alg: &'static str,
        /// The length found.
        got: usize,
        /// The length the algorithm gives.
        want: usize,
    },
    /// The serial number is empty or absurdly long.
    #[error("serial number of {0} bytes is out of range (1..=20 in RFC 5280, we accept up to 64)")]
    BadSerial(usize),
    /// Certificate bytes did not parse.
    #[error("certificate: {0}")]
    BadCertificate(String),
    /// A response could not be encoded (a bug, never caused by request bytes).
    #[error("encoding a response failed: {0}")]
    Encode(String),
}
