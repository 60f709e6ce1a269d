use crate::der::{self, tag};
use crate::{CertId, CertStatus, ProtoError};
use rasn::types::{Any, GeneralizedTime, Integer, IntegerType, ObjectIdentifier};
use rasn_ocsp as o;

/// The outer OCSPResponse status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseStatus {
    /// Response has valid confirmations.
    Successful = 0,
    /// Illegal confirmation request.
    MalformedRequest = 1,
    /// Internal error in the responder.
    InternalError = 2,
    /// Try again later.
    TryLater = 3,
    /// Must sign the request.
    SigRequired = 5,
    /// Request unauthorized: this responder does not answer for that issuer.
    Unauthorized = 6,
}

impl ResponseStatus {
    /// The label used in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            ResponseStatus::Successful => "successful",
            ResponseStatus::MalformedRequest => "malformedRequest",
            ResponseStatus::InternalError => "internalError",
            ResponseStatus::TryLater => "tryLater",
            ResponseStatus::SigRequired => "sigRequired",
            ResponseStatus::Unauthorized => "unauthorized",
        }
    }
}

/// An unsigned OCSP error response: `SEQUENCE { ENUMERATED status }`.
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// The signature algorithms the signing core produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ecdsa-with-SHA256 over P-256.
    EcdsaP256Sha256,
    /// ecdsa-with-SHA384 over P-384.
    EcdsaP384Sha384,
    /// sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaPkcs1Sha256,
}

impl SignatureAlgorithm {
    /// The DER AlgorithmIdentifier.
    pub fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            // SEQUENCE { OID 1.2.840.10045.4.3.2 } (RFC 5758: parameters absent)
            SignatureAlgorithm::EcdsaP256Sha256 => {
                &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
            }
            // SEQUENCE { OID 1.2.840.10045.4.3.3 } (RFC 5758: parameters absent)
            SignatureAlgorithm::EcdsaP384Sha384 => {
                &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]
            }
            // SEQUENCE { OID 1.2.840.113549.1.1.11, NULL }
            SignatureAlgorithm::RsaPkcs1Sha256 => {
                &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00]
            }
        }
    }

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SignatureAlgorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            SignatureAlgorithm::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
        }
    }
}

/// What one SingleResponse says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Which certificate, in the hash the client asked in.
    pub cert_id: CertId,
    /// Its status.
    pub status: CertStatus,
    /// Start of the validity interval, seconds since the epoch.
    pub this_update: i64,
    /// End of the validity interval, seconds since the epoch.
    pub next_update: i64,
}

/// A complete, signed OCSPResponse and the times its HTTP headers are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResponse {
    /// The OCSPResponse DER, as sent on the wire.
    pub der: Vec<u8>,
    /// The earliest thisUpdate of its SingleResponses.
    pub this_update: i64,
    /// The earliest nextUpdate of its SingleResponses.
    pub next_update: i64,
    /// producedAt.
    pub produced_at: i64,
    /// The status of the first SingleResponse (for logs and metrics).
    pub status: CertStatus,
}

/// Builds the `ResponseData` to be signed, then wraps a signature around it.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    responder_key_hash: Vec<u8>,
    produced_at: i64,
    answers: Vec<Answer>,
    nonce: Option<Vec<u8>>,
}

fn time(secs: i64) -> Result<GeneralizedTime, ProtoError> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.fixed_offset())
        .ok_or_else(|| ProtoError::Encode(format!("time {secs} out of range")))
}

pub(crate) fn rasn_cert_id(id: &CertId) -> Result<o::CertId, ProtoError> {
    let oid =
        ObjectIdentifier::new(id.hash.oid_arcs().to_vec()).ok_or_else(|| ProtoError::Encode("hash OID".into()))?;
    let serial = Integer::try_from_signed_bytes(id.serial.as_bytes(), rasn::Codec::Der)
        .map_err(|e| ProtoError::Encode(e.to_string()))?;
    Ok(o::CertId {
        // Parameters NULL, as OpenSSL and most clients send them.
        hash_algorithm: rasn_pkix::AlgorithmIdentifier { algorithm: oid, parameters: Some(Any::new(vec![0x05, 0x00])) },
        issuer_name_hash: id.name_hash.clone().into(),
        issuer_key_hash: id.key_hash.clone().into(),
        serial_number: serial,
    })
}

impl ResponseBuilder {
    /// Starts a response by the responder whose public key bits hash (SHA-1) to
    /// `responder_key_hash` (responderID byKey, as RFC 9919 requires).
    pub fn new(responder_key_hash: &[u8], produced_at: i64) -> Self {
        ResponseBuilder {
            responder_key_hash: responder_key_hash.to_vec(),
            produced_at,
            answers: Vec::new(),
            nonce: None,
        }
    }

    /// Adds one SingleResponse.
    pub fn answer(mut self, answer: Answer) -> Self {
        self.answers.push(answer);
        self
    }

    /// Echoes a request's nonce extension (RFC 8954): `extn_value` exactly as the request
    /// carried it, checked with [`crate::nonce_octets`].
    pub fn nonce(mut self, extn_value: &[u8]) -> Self {
        self.nonce = Some(extn_value.to_vec());
        self
    }

    /// producedAt of the response.
    pub fn produced_at(&self) -> i64 {
        self.produced_at
    }

    /// The DER `ResponseData`: the bytes the responder signs.
    pub fn tbs(&self) -> Result<Vec<u8>, ProtoError> {
        if self.answers.is_empty() {
            return Err(ProtoError::Encode("a response needs at least one answer".into()));
        }
        let mut responses = Vec::with_capacity(self.answers.len());
        for a in &self.answers {
            let cert_status = match a.status {
                CertStatus::Good => o::CertStatus::Good,
                CertStatus::Unknown => o::CertStatus::Unknown(()),
                CertStatus::Revoked { time: t, reason } => o::CertStatus::Revoked(o::RevokedInfo {
                    revocation_time: time(t)?,
                    // BR 7.2.2 / RFC 5280: an unspecified reason is never encoded.
                    revocation_reason: reason.filter(|r| *r != crate::RevocationReason::Unspecified).map(crl_reason),
                }),
            };
            responses.push(o::SingleResponse {
                cert_id: rasn_cert_id(&a.cert_id)?,
                cert_status,
                this_update: time(a.this_update)?,
                next_update: Some(time(a.next_update)?),
                single_extensions: None,
            });
        }
        let data = o::ResponseData {
            version: Integer::ZERO,
            responder_id: o::ResponderId::ByKey(self.responder_key_hash.clone().into()),
            produced_at: time(self.produced_at)?,
            responses,
            response_extensions: match &self.nonce {
                None => None,
                Some(value) => Some(
                    vec![rasn_pkix::Extension {
                        extn_id: ObjectIdentifier::new(crate::request::NONCE_ARCS.to_vec())
                            .ok_or_else(|| ProtoError::Encode("nonce OID".into()))?,
                        critical: false,
                        extn_value: value.clone().into(),
                    }]
                    .into(),
                ),
            },
        };
        rasn::der::encode(&data).map_err(|e| ProtoError::Encode(e.to_string()))
    }

    /// Wraps the signed `tbs` into a complete OCSPResponse. `certs` are DER certificates for
    /// the client to verify the signature with (the delegated responder certificate; none when
    /// the issuer signs itself).
    pub fn assemble(&self, tbs: &[u8], alg: SignatureAlgorithm, signature: &[u8], certs: &[Vec<u8>]) -> SignedResponse {
        let bits = {
            let mut b = Vec::with_capacity(signature.len() + 1);
            b.push(0);
            b.extend_from_slice(signature);
            der::element(tag::BIT_STRING, &[&b])
        };
        let certs_field = if certs.is_empty() {
            Vec::new()
        } else {
            let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
            let seq = der::element(tag::SEQUENCE, &refs);
            der::element(tag::explicit(0), &[&seq])
        };
        let basic = der::element(tag::SEQUENCE, &[tbs, alg.algorithm_identifier(), &bits, &certs_field]);
        // id-pkix-ocsp-basic 1.3.6.1.5.5.7.48.1.1
        const BASIC_OID: &[u8] = &[0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
        let octets = der::element(tag::OCTET_STRING, &[&basic]);
        let response_bytes = der::element(tag::SEQUENCE, &[BASIC_OID, &octets]);
        let explicit = der::element(tag::explicit(0), &[&response_bytes]);
        let der_bytes = der::element(tag::SEQUENCE, &[&[0x0a, 0x01, 0x00], &explicit]);
        SignedResponse {
            der: der_bytes,
            this_update: self.answers.iter().map(|a| a.this_update).min().unwrap_or(0),
            next_update: self.answers.iter().map(|a| a.next_update).min().unwrap_or(0),
            produced_at: self.produced_at,
            status: self.answers.first().map_or(CertStatus::Unknown, |a| a.status),
        }
    }
}

fn crl_reason(r: crate::RevocationReason) -> rasn_pkix::CrlReason {
    use crate::RevocationReason as R;
    use rasn_pkix::CrlReason as C;
    match r {
        R::Unspecified => C::Unspecified,
        R::KeyCompromise => C::KeyCompromise,
        R::CaCompromise => C::CaCompromise,
        R::AffiliationChanged => C::AffiliationChanged,
        R::Superseded => C::Superseded,
        R::CessationOfOperation => C::CessationOfOperation,
        R::CertificateHold => C::CertificateHold,
        R::RemoveFromCrl => C::RemoveFromCRL,
        R::PrivilegeWithdrawn => C::PrivilegeWithdrawn,
        R::AaCompromise => C::AaCompromise,
    }
}

/// Decodes a complete OCSPResponse with rasn-ocsp (for tests and tooling): the status, and for
/// a successful one, the BasicOCSPResponse.
pub fn decode_response(der_bytes: &[u8]) -> Result<(o::OcspResponseStatus, Option<o::BasicOcspResponse>), ProtoError> {
    let resp: o::OcspResponse =
        rasn::der::decode(der_bytes).map_err(|e| ProtoError::MalformedRequest(e.to_string()))?;
    let basic = match resp.bytes {
        Some(b) => Some(
            rasn::der::decode::<o::BasicOcspResponse>(&b.response)
                .map_err(|e| ProtoError::MalformedRequest(e.to_string()))?,
        ),
        None => None,
    };
    Ok((resp.status, basic))
}
