use crate::{CertId, HashAlg, ProtoError, Serial};
use rasn::types::IntegerType;

/// The most CertIDs answered in one response. Browsers send one; a request with many is either
/// a bulk client (which should use several requests) or an attempt to make us sign big responses.
pub const MAX_CERT_IDS: usize = 32;

/// The id-pkix-ocsp-nonce extension OID.
pub(crate) const NONCE_ARCS: &[u32] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];

/// Request extensions this responder understands (RFC 6960 4.4): the nonce, acceptable
/// response types (it answers only id-pkix-ocsp-basic, which every client accepts) and
/// preferred signature algorithms (read, and answered with the issuer's algorithm). A critical
/// extension outside this list makes the request malformed.
const UNDERSTOOD_ARCS: &[&[u32]] = &[NONCE_ARCS, &[1, 3, 6, 1, 5, 5, 7, 48, 1, 4], &[1, 3, 6, 1, 5, 5, 7, 48, 1, 8]];

/// A parsed OCSP request: the CertIDs it asks about, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// What is asked, in the order asked.
    pub cert_ids: Vec<CertId>,
    /// The extnValue of the request's nonce extension (RFC 8954), as sent. Issuers with the
    /// default nonce policy answer from pre-signed responses and ignore it; issuers with the
    /// `echo` policy sign a fresh answer carrying it back ([`nonce_octets`] checks it first).
    pub nonce: Option<Vec<u8>>,
}

/// The shortest and longest nonce RFC 8954 allows (Nonce ::= OCTET STRING (SIZE(1..32))).
pub const NONCE_OCTETS: std::ops::RangeInclusive<usize> = 1..=32;

/// The nonce octets inside a nonce extension's extnValue: a DER OCTET STRING of 1 to 32
/// octets (RFC 8954), nothing after it.
pub fn nonce_octets(extn_value: &[u8]) -> Result<&[u8], ProtoError> {
    let bad = |why: String| ProtoError::MalformedRequest(format!("nonce: {why}"));
    match extn_value {
        [0x04, len, rest @ ..] if *len < 0x80 => {
            if rest.len() != usize::from(*len) {
                return Err(bad(format!("OCTET STRING of {len} octets holds {}", rest.len())));
            }
            if !NONCE_OCTETS.contains(&rest.len()) {
                return Err(bad(format!("{} octets; RFC 8954 allows 1 to 32", rest.len())));
            }
            Ok(rest)
        }
        [0x04, ..] => Err(bad("longer than 32 octets; RFC 8954 allows 1 to 32".into())),
        _ => Err(bad("not a DER OCTET STRING".into())),
    }
}

/// Parses a DER OCSPRequest. Signed requests are accepted and their signature ignored, as
/// RFC 5019 allows. Trailing bytes, an empty list, unsupported hashes and wrong hash lengths
/// are errors.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, ProtoError> {
    let (req, rest) = rasn::der::decode_with_remainder::<rasn_ocsp::OcspRequest>(der)
        .map_err(|e| ProtoError::MalformedRequest(first_line(&e.to_string())))?;
    if !rest.is_empty() {
        return Err(ProtoError::MalformedRequest(format!("{} trailing bytes", rest.len())));
    }
    let list = &req.tbs_request.request_list;
    if list.is_empty() {
        return Err(ProtoError::EmptyRequest);
    }
    if list.len() > MAX_CERT_IDS {
        return Err(ProtoError::TooManyCertIds(list.len()));
    }
    // A critical extension this responder does not understand is refused rather than
    // ignored (RFC 6960 leaves it open; X.509's rule for critical extensions, RFC 5280 4.2,
    // is the one clients expect: docs/decisions.md).
    let all_extensions = req
        .tbs_request
        .request_extensions
        .iter()
        .flat_map(|e| e.iter())
        .chain(list.iter().flat_map(|r| r.single_request_extensions.iter().flat_map(|e| e.iter())));
    for e in all_extensions {
        let arcs: &[u32] = e.extn_id.as_ref();
        if e.critical && !UNDERSTOOD_ARCS.contains(&arcs) {
            let dotted: Vec<String> = arcs.iter().map(u32::to_string).collect();
            return Err(ProtoError::MalformedRequest(format!(
                "critical extension {} is not supported",
                dotted.join(".")
            )));
        }
    }
    let cert_ids = list.iter().map(|r| cert_id(&r.req_cert)).collect::<Result<Vec<_>, _>>()?;
    let nonce = req
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id.as_ref() == NONCE_ARCS))
        .map(|e| e.extn_value.to_vec());
    Ok(OcspRequest { cert_ids, nonce })
}

fn cert_id(id: &rasn_ocsp::CertId) -> Result<CertId, ProtoError> {
    let arcs: &[u32] = id.hash_algorithm.algorithm.as_ref();
    let hash = HashAlg::from_oid_arcs(arcs).ok_or_else(|| {
        let dotted: Vec<String> = arcs.iter().map(u32::to_string).collect();
        ProtoError::UnsupportedHash(dotted.join("."))
    })?;
    for (field, value) in [("issuerNameHash", &id.issuer_name_hash), ("issuerKeyHash", &id.issuer_key_hash)] {
        if value.len() != hash.len() {
            return Err(ProtoError::BadHashLength { field, alg: hash.name(), got: value.len(), want: hash.len() });
        }
    }
    let (bytes, len) = id.serial_number.to_signed_bytes_be();
    let serial = Serial::from_int_bytes(&bytes.as_ref()[..len])?;
    Ok(CertId { hash, name_hash: id.issuer_name_hash.to_vec(), key_hash: id.issuer_key_hash.to_vec(), serial })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// Encodes an unsigned OCSPRequest for `ids` (no nonce, as RFC 5019 clients send). For tools,
/// tests and benchmarks that play the client.
pub fn encode_request(ids: &[CertId]) -> Result<Vec<u8>, ProtoError> {
    use rasn::types::Integer;
    let mut list = Vec::with_capacity(ids.len());
    for id in ids {
        list.push(rasn_ocsp::Request { req_cert: crate::response::rasn_cert_id(id)?, single_request_extensions: None });
    }
    let req = rasn_ocsp::OcspRequest {
        tbs_request: rasn_ocsp::TbsRequest {
            version: Integer::ZERO,
            requestor_name: None,
            request_list: list,
            request_extensions: None,
        },
        optional_signature: None,
    };
    rasn::der::encode(&req).map_err(|e| ProtoError::Encode(e.to_string()))
}
