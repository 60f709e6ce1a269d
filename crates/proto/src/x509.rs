//! The facts about an X.509 certificate that an OCSP responder needs.
//!
//! Parsing is done by `x509-cert`; the name and key bytes that CertIDs hash are taken from the
//! certificate as it was encoded, so a hash never depends on how a library re-encodes a name.

use crate::der::{tag, Reader};
use crate::ProtoError;
use der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
use x509_cert::Certificate;

const OID_EKU: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_BASIC_CONSTRAINTS: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_KP_OCSP_SIGNING: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const OID_OCSP_NOCHECK: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
const OID_KEY_USAGE: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_SUBJECT_KEY_ID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.14");

/// What ocspd knows about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The whole certificate, DER.
    pub der: Vec<u8>,
    /// The DER of the signed part, exactly as in the certificate.
    pub tbs: Vec<u8>,
    /// The DER of the subject Name, exactly as in the certificate.
    pub subject: Vec<u8>,
    /// The DER of the issuer Name, exactly as in the certificate.
    pub issuer: Vec<u8>,
    /// The serial number's content octets (two's complement, minimal).
    pub serial: Vec<u8>,
    /// notBefore, seconds since the epoch.
    pub not_before: i64,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
    /// The DER of the SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// The subject public key BIT STRING's bits (without the unused-bits octet): what CertID key
    /// hashes and responder key hashes are computed over.
    pub public_key: Vec<u8>,
    /// The OID of the SubjectPublicKeyInfo algorithm, dotted.
    pub public_key_alg: String,
    /// The OID of the certificate's signature algorithm, dotted.
    pub signature_alg: String,
    /// The certificate's signature bits.
    pub signature: Vec<u8>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// extendedKeyUsage includes id-kp-OCSPSigning.
    pub ocsp_signing: bool,
    /// id-pkix-ocsp-nocheck is present.
    pub ocsp_nocheck: bool,
    /// keyUsage is present and asserts cRLSign.
    pub crl_sign: bool,
    /// The subjectKeyIdentifier, if present.
    pub subject_key_id: Option<Vec<u8>>,
}

fn bad(e: impl std::fmt::Display) -> ProtoError {
    ProtoError::BadCertificate(e.to_string())
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn from_der(der_bytes: &[u8]) -> Result<CertInfo, ProtoError> {
        let cert = Certificate::from_der(der_bytes).map_err(bad)?;
        // The raw spans: Certificate ::= SEQUENCE { tbs, alg, sig }, TBSCertificate ::=
        // SEQUENCE { [0] version OPTIONAL, serial, sigAlg, issuer, validity, subject, spki, ... }
        let mut outer = Reader::new(der_bytes);
        let cert_seq = outer.expect(tag::SEQUENCE).map_err(bad)?;
        let tbs = Reader::new(cert_seq.value).expect(tag::SEQUENCE).map_err(bad)?;
        let mut fields = Reader::new(tbs.value);
        fields.optional(tag::explicit(0)).map_err(bad)?;
        let serial = fields.expect(tag::INTEGER).map_err(bad)?;
        fields.expect(tag::SEQUENCE).map_err(bad)?;
        let issuer = fields.expect(tag::SEQUENCE).map_err(bad)?;
        fields.expect(tag::SEQUENCE).map_err(bad)?;
        let subject = fields.expect(tag::SEQUENCE).map_err(bad)?;
        let spki = fields.expect(tag::SEQUENCE).map_err(bad)?;

        let tbs_cert = &cert.tbs_certificate;
        let public_key = tbs_cert
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("public key BIT STRING has unused bits"))?
            .to_vec();
        let mut info = CertInfo {
            der: der_bytes.to_vec(),
            tbs: tbs.raw.to_vec(),
            subject: subject.raw.to_vec(),
            issuer: issuer.raw.to_vec(),
            serial: serial.value.to_vec(),
            not_before: tbs_cert.validity.not_before.to_unix_duration().as_secs() as i64,
            not_after: tbs_cert.validity.not_after.to_unix_duration().as_secs() as i64,
            spki: spki.raw.to_vec(),
            public_key,
            public_key_alg: tbs_cert.subject_public_key_info.algorithm.oid.to_string(),
            signature_alg: cert.signature_algorithm.oid.to_string(),
            signature: cert.signature.as_bytes().ok_or_else(|| bad("signature BIT STRING has unused bits"))?.to_vec(),
            is_ca: false,
            ocsp_signing: false,
            ocsp_nocheck: false,
            crl_sign: false,
            subject_key_id: None,
        };
        for ext in tbs_cert.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == OID_EKU {
                let eku = ExtendedKeyUsage::from_der(value).map_err(bad)?;
                info.ocsp_signing = eku.0.contains(&OID_KP_OCSP_SIGNING);
            } else if ext.extn_id == OID_BASIC_CONSTRAINTS {
                info.is_ca = BasicConstraints::from_der(value).map_err(bad)?.ca;
            } else if ext.extn_id == OID_OCSP_NOCHECK {
                info.ocsp_nocheck = true;
            } else if ext.extn_id == OID_KEY_USAGE {
                // KeyUsage ::= BIT STRING; cRLSign is bit 6 of the first octet after the
                // unused-bits octet.
                let bits = Reader::new(value).expect(tag::BIT_STRING).map_err(bad)?;
                info.crl_sign = bits.value.get(1).is_some_and(|b| b & 0x02 != 0);
            } else if ext.extn_id == OID_SUBJECT_KEY_ID {
                let id = Reader::new(value).expect(tag::OCTET_STRING).map_err(bad)?;
                info.subject_key_id = Some(id.value.to_vec());
            }
        }
        Ok(info)
    }

    /// Parses a PEM or DER certificate, whichever `bytes` holds (the first PEM block).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<CertInfo, ProtoError> {
        if bytes.first() == Some(&0x30) {
            return CertInfo::from_der(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("neither DER nor PEM"))?;
        let der = pem_block(text, "CERTIFICATE").ok_or_else(|| bad("no CERTIFICATE PEM block"))?;
        CertInfo::from_der(&der)
    }

    /// The subject Name re-encoded by x509-cert, for display.
    pub fn subject_text(&self) -> String {
        x509_cert::name::Name::from_der(&self.subject)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| hex_lower(&self.subject))
    }

    /// True when `now` lies within notBefore..=notAfter.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Serial as lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex_lower(&self.serial)
    }

    /// Re-encodes the certificate through x509-cert, to prove the bytes round-trip.
    pub fn reencode(&self) -> Result<Vec<u8>, ProtoError> {
        Certificate::from_der(&self.der).and_then(|c| c.to_der()).map_err(bad)
    }
}

/// Decodes the first PEM block with `label` in `text`.
pub fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Every PEM block with `label` in `text`, decoded.
pub fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(&begin) {
        let tail = &rest[pos..];
        match pem_block(tail, label) {
            Some(der) => out.push(der),
            None => break,
        }
        rest = &tail[begin.len()..];
    }
    out
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
