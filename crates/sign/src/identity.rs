use crate::{verify_issued_by, IdentityError, SignError, Signer};
use ocsp_proto::x509::CertInfo;
use ocsp_proto::{HashAlg, ResponseBuilder, SignedResponse};
use std::fmt;
use std::sync::Arc;

/// The rules a responder identity must keep (RFC 6960 4.2.2.2, RFC 9919).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityRule {
    /// The private key does not belong to the certificate it signs under.
    KeyMatchesCertificate,
    /// A delegated responder certificate must carry EKU id-kp-OCSPSigning.
    OcspSigningEku,
    /// A delegated responder certificate must carry id-pkix-ocsp-nocheck.
    OcspNoCheck,
    /// A delegated responder certificate must be issued (name and signature) by the issuer.
    IssuedByIssuer,
    /// The certificate must be within its validity period.
    WithinValidity {
        /// notBefore
        not_before: i64,
        /// notAfter
        not_after: i64,
    },
    /// A backup identity must use another key than the primary.
    DistinctBackupKey,
}

impl fmt::Display for IdentityRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityRule::KeyMatchesCertificate => f.write_str("the key does not match the certificate's public key"),
            IdentityRule::OcspSigningEku => {
                f.write_str("the delegated responder certificate lacks EKU id-kp-OCSPSigning (1.3.6.1.5.5.7.3.9)")
            }
            IdentityRule::OcspNoCheck => {
                f.write_str("the delegated responder certificate lacks id-pkix-ocsp-nocheck (1.3.6.1.5.5.7.48.1.5)")
            }
            IdentityRule::IssuedByIssuer => f.write_str(
                "the delegated responder certificate is not issued by this issuer (name and signature must both match)",
            ),
            IdentityRule::WithinValidity { not_before, not_after } => write!(
                f,
                "the certificate is outside its validity ({} to {})",
                fmt_time(*not_before),
                fmt_time(*not_after)
            ),
            IdentityRule::DistinctBackupKey => {
                f.write_str("the backup identity uses the primary's key; a spare must have a key of its own")
            }
        }
    }
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339()).unwrap_or_else(|| t.to_string())
}

/// Whether an identity outside its certificate's validity may be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityPolicy {
    /// Refuse it (registration, promotion).
    Require,
    /// Load it anyway (start-up): it refuses to sign while outside its validity, so only its
    /// issuer answers tryLater and the other issuers are served.
    AllowOutside,
}

/// A key allowed to sign responses for one issuer: the issuer's own key, or a delegated
/// responder certificate's key.
#[derive(Clone)]
pub struct ResponderIdentity {
    signer: Arc<dyn Signer>,
    key_hash: Vec<u8>,
    certs: Vec<Vec<u8>>,
    cert: CertInfo,
    delegated: bool,
}

impl fmt::Debug for ResponderIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponderIdentity")
            .field("signer", &self.signer.describe())
            .field("delegated", &self.delegated)
            .field("subject", &self.cert.subject_text())
            .finish()
    }
}

impl ResponderIdentity {
    /// Checks every rule again at `now` (validity moves on), with the key already loaded.
    pub fn recheck(&self, issuer: &CertInfo, now: i64, what: &str) -> Result<(), IdentityError> {
        let responder = self.delegated.then(|| self.cert.clone());
        ResponderIdentity::new(issuer, responder, self.signer.clone(), now, what).map(|_| ())
    }

    /// Checks every rule and builds the identity. `responder` is the delegated responder
    /// certificate, or `None` when the issuer signs with its own key. `what` names the identity
    /// in errors (a file name).
    pub fn new(
        issuer: &CertInfo,
        responder: Option<CertInfo>,
        signer: Arc<dyn Signer>,
        now: i64,
        what: &str,
    ) -> Result<ResponderIdentity, IdentityError> {
        ResponderIdentity::checked(issuer, responder, signer, now, what, ValidityPolicy::Require)
    }

    /// As [`ResponderIdentity::new`], with the validity rule applied as `validity` says.
    pub fn checked(
        issuer: &CertInfo,
        responder: Option<CertInfo>,
        signer: Arc<dyn Signer>,
        now: i64,
        what: &str,
        validity: ValidityPolicy,
    ) -> Result<ResponderIdentity, IdentityError> {
        let delegated = responder.is_some();
        let cert = responder.unwrap_or_else(|| issuer.clone());
        let mut broken = Vec::new();
        if signer.public_key() != cert.public_key.as_slice() {
            broken.push(IdentityRule::KeyMatchesCertificate);
        }
        if delegated {
            if !cert.ocsp_signing {
                broken.push(IdentityRule::OcspSigningEku);
            }
            if !cert.ocsp_nocheck {
                broken.push(IdentityRule::OcspNoCheck);
            }
            if !verify_issued_by(&cert, issuer) {
                broken.push(IdentityRule::IssuedByIssuer);
            }
        }
        if !cert.valid_at(now) && validity == ValidityPolicy::Require {
            broken.push(IdentityRule::WithinValidity { not_before: cert.not_before, not_after: cert.not_after });
        }
        if !broken.is_empty() {
            return Err(IdentityError { what: what.to_string(), broken });
        }
        Ok(ResponderIdentity {
            key_hash: HashAlg::Sha1.digest(&cert.public_key),
            certs: if delegated { vec![cert.der.clone()] } else { Vec::new() },
            signer,
            cert,
            delegated,
        })
    }

    /// SHA-1 of the responder's public key bits: the responderID byKey.
    pub fn key_hash(&self) -> &[u8] {
        &self.key_hash
    }

    /// The certificate the responses are signed under.
    pub fn certificate(&self) -> &CertInfo {
        &self.cert
    }

    /// True for a delegated responder certificate, false when the issuer signs itself.
    pub fn is_delegated(&self) -> bool {
        self.delegated
    }

    /// The signer behind this identity.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// Seconds until the certificate expires (negative once expired).
    pub fn expires_in(&self, now: i64) -> i64 {
        self.cert.not_after - now
    }

    /// True when the certificate is within its validity at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        self.cert.valid_at(now)
    }

    /// Signs a response. May block (HSM): call from a blocking context in async code.
    /// Refused when the certificate is outside its validity at the response's producedAt: a
    /// response signed under an expired responder certificate fails every client's check.
    pub fn sign(&self, builder: &ResponseBuilder) -> Result<SignedResponse, SignError> {
        let at = builder.produced_at();
        if !self.cert.valid_at(at) {
            return Err(SignError::OutsideValidity {
                subject: self.cert.subject_text(),
                at,
                not_before: self.cert.not_before,
                not_after: self.cert.not_after,
            });
        }
        let tbs = builder.tbs()?;
        let signature = self.signer.sign(&tbs)?;
        Ok(builder.assemble(&tbs, self.signer.algorithm(), &signature, &self.certs))
    }
}
