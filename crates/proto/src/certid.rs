use crate::x509::{hex_lower, CertInfo};
use crate::{HashAlg, ProtoError};

/// A certificate serial number: the content octets of its DER INTEGER, in minimal two's
/// complement form, so that one serial has exactly one byte form (and one database key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// The longest serial we accept. RFC 5280 caps serials at 20 octets; some CAs overshoot by
/// a little, so we accept more, but bound it so a request cannot make us allocate freely.
pub const MAX_SERIAL_LEN: usize = 64;

impl Serial {
    /// Takes INTEGER content octets, dropping redundant sign octets.
    pub fn from_int_bytes(bytes: &[u8]) -> Result<Serial, ProtoError> {
        if bytes.is_empty() || bytes.len() > MAX_SERIAL_LEN + 1 {
            return Err(ProtoError::BadSerial(bytes.len()));
        }
        let mut start = 0;
        while start + 1 < bytes.len() {
            let (b, next) = (bytes[start], bytes[start + 1]);
            if (b == 0x00 && next < 0x80) || (b == 0xff && next >= 0x80) {
                start += 1;
            } else {
                break;
            }
        }
        let s = &bytes[start..];
        if s.len() > MAX_SERIAL_LEN {
            return Err(ProtoError::BadSerial(s.len()));
        }
        Ok(Serial(s.to_vec()))
    }

    /// Parses a positive serial written in hex, as CA staff and OpenSSL write them:
    /// `0x` prefix and `:` separators are allowed.
    pub fn from_hex(text: &str) -> Result<Serial, String> {
        let t = text.trim();
        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
        let digits: String = t.chars().filter(|&c| c != ':').collect();
        if digits.is_empty() {
            return Err(format!("serial {text:?} is empty"));
        }
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("serial {text:?} is not hexadecimal"));
        }
        let padded = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits };
        let mut bytes = vec![0u8];
        for pair in padded.as_bytes().chunks(2) {
            let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            bytes.push(u8::from_str_radix(s, 16).map_err(|e| e.to_string())?);
        }
        Serial::from_int_bytes(&bytes).map_err(|e| format!("serial {text:?}: {e}"))
    }

    /// The content octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex of the content octets (a leading `00` is kept when the sign needs it).
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }

    /// Hex without the sign octet, as OpenSSL prints serials.
    pub fn to_hex_unsigned(&self) -> String {
        let bytes = match self.0.as_slice() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            all => all,
        };
        hex_lower(bytes).to_uppercase()
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex_unsigned())
    }
}

/// One CertID: which certificate a client asks about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    /// The hash the client used for the two issuer hashes; answers use the same one.
    pub hash: HashAlg,
    /// Hash of the issuer's distinguished name.
    pub name_hash: Vec<u8>,
    /// Hash of the issuer's public key bits.
    pub key_hash: Vec<u8>,
    /// The certificate's serial number.
    pub serial: Serial,
}

/// Which answer: the certificate (its issuer's key and its serial) and the hash its CertID was
/// asked in. The key of the memory tier and of live signings in flight; storage layouts are the
/// store's own business.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The issuer.
    pub issuer: IssuerKey,
    /// The certificate's serial.
    pub serial: Serial,
    /// The CertID hash.
    pub hash: HashAlg,
}

impl AnswerKey {
    /// The key of `serial` of `issuer`, asked in `hash`.
    pub fn new(issuer: IssuerKey, serial: Serial, hash: HashAlg) -> AnswerKey {
        AnswerKey { issuer, serial, hash }
    }

    /// Bytes it takes (for memory bounds).
    pub fn weight(&self) -> usize {
        64 + self.serial.as_bytes().len() + 1
    }
}

/// The canonical identity of an issuer in the database: SHA-256 of its name and SHA-256 of its
/// public key, 64 bytes. Status records are keyed by this pair and a serial, never by subject
/// or key alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerKey(pub [u8; 64]);

impl IssuerKey {
    /// Builds the key from the SHA-256 name and key hashes.
    pub fn new(name_sha256: &[u8], key_sha256: &[u8]) -> Option<IssuerKey> {
        if name_sha256.len() != 32 || key_sha256.len() != 32 {
            return None;
        }
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(name_sha256);
        k[32..].copy_from_slice(key_sha256);
        Some(IssuerKey(k))
    }

    /// Lower-case hex, 128 characters.
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }

    /// The key from its hex form ([`IssuerKey::to_hex`]); `None` unless 64 bytes of hex.
    pub fn from_hex(text: &str) -> Option<IssuerKey> {
        let raw = hex::decode(text).ok()?;
        IssuerKey::new(raw.get(..32)?, raw.get(32..)?)
    }

    /// A short form for logs: the first 8 bytes of each hash.
    pub fn short(&self) -> String {
        format!("{}.{}", hex_lower(&self.0[..8]), hex_lower(&self.0[32..40]))
    }

    /// The cache tag on every answer of this issuer: `ocsp-` and the first 8 bytes of each
    /// hash in hex. Tags hold only `[a-z0-9-]`, so they are safe in headers and ban regexes.
    pub fn cache_tag(&self) -> String {
        format!("ocsp-{}{}", hex_lower(&self.0[..8]), hex_lower(&self.0[32..40]))
    }

    /// The cache tag on one CRL shard of this issuer: the issuer's tag, `-crl-`, the shard
    /// (a serial in hex never holds `-`, so it never matches a certificate's tag).
    pub fn crl_cache_tag(&self, shard: u32) -> String {
        format!("{}-crl-{shard}", self.cache_tag())
    }

    /// The cache tag on the answers for one certificate: the issuer's tag, `-`, the serial.
    pub fn cert_cache_tag(&self, serial: &Serial) -> String {
        format!("{}-{}", self.cache_tag(), serial.to_hex())
    }
}

/// Both hash pairs of one issuer, so that a SHA-1 and a SHA-256 CertID find the same issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHashes {
    /// SHA-1 of the subject name DER.
    pub sha1_name: Vec<u8>,
    /// SHA-1 of the public key bits.
    pub sha1_key: Vec<u8>,
    /// SHA-256 of the subject name DER.
    pub sha256_name: Vec<u8>,
    /// SHA-256 of the public key bits.
    pub sha256_key: Vec<u8>,
}

impl IssuerHashes {
    /// Computes the hashes from an issuer certificate.
    pub fn of(issuer: &CertInfo) -> IssuerHashes {
        IssuerHashes {
            sha1_name: HashAlg::Sha1.digest(&issuer.subject),
            sha1_key: HashAlg::Sha1.digest(&issuer.public_key),
            sha256_name: HashAlg::Sha256.digest(&issuer.subject),
            sha256_key: HashAlg::Sha256.digest(&issuer.public_key),
        }
    }

    /// The (name, key) hash pair for one algorithm.
    pub fn pair(&self, alg: HashAlg) -> (&[u8], &[u8]) {
        match alg {
            HashAlg::Sha1 => (&self.sha1_name, &self.sha1_key),
            HashAlg::Sha256 => (&self.sha256_name, &self.sha256_key),
        }
    }

    /// The canonical database identity.
    pub fn key(&self) -> IssuerKey {
        // Both halves are SHA-256 outputs, 32 bytes by construction.
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&self.sha256_name);
        k[32..].copy_from_slice(&self.sha256_key);
        IssuerKey(k)
    }

    /// The CertID of `serial` under this issuer, in hash `alg`.
    pub fn cert_id(&self, alg: HashAlg, serial: Serial) -> CertId {
        let (name, key) = self.pair(alg);
        CertId { hash: alg, name_hash: name.to_vec(), key_hash: key.to_vec(), serial }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn serial_normalises_sign_octets() {
        assert_eq!(Serial::from_int_bytes(&[0, 0, 0x7f]).unwrap().as_bytes(), &[0x7f]);
        assert_eq!(Serial::from_int_bytes(&[0, 0x80]).unwrap().as_bytes(), &[0, 0x80]);
        assert_eq!(Serial::from_int_bytes(&[0xff, 0xff, 0x80]).unwrap().as_bytes(), &[0x80]);
        assert_eq!(Serial::from_int_bytes(&[0xff, 0x7f]).unwrap().as_bytes(), &[0xff, 0x7f]);
        assert!(Serial::from_int_bytes(&[]).is_err());
        assert!(Serial::from_int_bytes(&[1; 80]).is_err());
    }

    #[test]
    fn serial_from_hex_forms_agree() {
        let a = Serial::from_hex("0x00A1B2").unwrap();
        let b = Serial::from_hex("a1:b2").unwrap();
        let c = Serial::from_hex("A1B2").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.as_bytes(), &[0, 0xa1, 0xb2]);
        assert_eq!(a.to_string(), "A1B2");
        assert!(Serial::from_hex("xyz").is_err());
        assert!(Serial::from_hex("").is_err());
    }

    proptest! {
        #[test]
        fn hex_round_trip(bytes in proptest::collection::vec(any::<u8>(), 1..40)) {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let s = Serial::from_hex(&hex).unwrap();
            let back = Serial::from_hex(&s.to_hex_unsigned()).unwrap();
            prop_assert_eq!(s, back);
        }
    }
}
