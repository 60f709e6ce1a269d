use crate::{SignError, Signer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use ocsp_proto::SignatureAlgorithm;

/// A private key held in memory and used through aws-lc-rs (constant-time, FIPS-capable).
pub struct SoftwareSigner {
    key: Key,
    public_key: Vec<u8>,
    source: String,
    rng: SystemRandom,
}

enum Key {
    Ecdsa(EcdsaKeyPair, SignatureAlgorithm),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("source", &self.source)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// Loads a PKCS#8 PEM key file.
    pub fn from_file(path: &std::path::Path) -> Result<SoftwareSigner, SignError> {
        let text = crate::files::read_operator_file(path, crate::files::MAX_OPERATOR_FILE)
            .map_err(|source| SignError::Read { path: path.display().to_string(), source })?;
        SoftwareSigner::from_pkcs8_pem(&text, &path.display().to_string())
    }

    /// Loads a PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`): P-256, P-384, or RSA of 2048 to
    /// 4096 bits. The signature algorithm follows the key: ECDSA with SHA-256 on P-256 and
    /// SHA-384 on P-384 (RFC 5758, CA/B Forum BR 7.1.3.2), RSA PKCS#1 v1.5 with SHA-256.
    pub fn from_pkcs8_pem(text: &str, source: &str) -> Result<SoftwareSigner, SignError> {
        let bad = |reason: &str| SignError::BadKey { source_name: source.to_string(), reason: reason.to_string() };
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(bad("the key is encrypted; ocspd loads unencrypted PKCS#8 keys (keep encrypted keys in an HSM and use PKCS#11)"));
        }
        if text.contains("-----BEGIN EC PRIVATE KEY-----") || text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return Err(bad(
                "the key is in the traditional OpenSSL form; convert it with `openssl pkcs8 -topk8 -nocrypt`",
            ));
        }
        let der = ocsp_proto::x509::pem_block(text, "PRIVATE KEY")
            .ok_or_else(|| bad("no `-----BEGIN PRIVATE KEY-----` (PKCS#8) block"))?;
        SoftwareSigner::from_pkcs8_der(&der, source)
    }

    /// Loads a PKCS#8 DER key.
    pub fn from_pkcs8_der(der: &[u8], source: &str) -> Result<SoftwareSigner, SignError> {
        let bad = |reason: String| SignError::BadKey { source_name: source.to_string(), reason };
        let key = if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            Key::Ecdsa(k, SignatureAlgorithm::EcdsaP256Sha256)
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der) {
            Key::Ecdsa(k, SignatureAlgorithm::EcdsaP384Sha384)
        } else {
            match RsaKeyPair::from_pkcs8(der) {
                Ok(k) => {
                    let bits = k.public_modulus_len() * 8;
                    if !(2048..=4096).contains(&bits) {
                        return Err(bad(format!("RSA key of {bits} bits; ocspd signs with RSA 2048 to 4096")));
                    }
                    Key::Rsa(k)
                }
                Err(e) => return Err(bad(format!("neither a P-256, a P-384 nor an RSA PKCS#8 key ({e})"))),
            }
        };
        let public_key = match &key {
            Key::Ecdsa(k, _) => k.public_key().as_ref().to_vec(),
            Key::Rsa(k) => k.public_key().as_ref().to_vec(),
        };
        Ok(SoftwareSigner { key, public_key, source: source.to_string(), rng: SystemRandom::new() })
    }

    /// Generates a fresh key (for tests, benchmarks and the demo PKI), returned with its
    /// PKCS#8 DER.
    pub fn generate(alg: SignatureAlgorithm) -> Result<(SoftwareSigner, Vec<u8>), SignError> {
        let fail = |_| SignError::SignFailed("key generation".into());
        let der = match alg {
            SignatureAlgorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                    .map_err(fail)?
                    .as_ref()
                    .to_vec()
            }
            SignatureAlgorithm::EcdsaP384Sha384 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, &SystemRandom::new())
                    .map_err(fail)?
                    .as_ref()
                    .to_vec()
            }
            SignatureAlgorithm::RsaPkcs1Sha256 => {
                use aws_lc_rs::encoding::AsDer;
                let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?;
                k.as_der().map_err(fail)?.as_ref().to_vec()
            }
        };
        Ok((SoftwareSigner::from_pkcs8_der(&der, "generated")?, der))
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key {
            Key::Ecdsa(_, alg) => alg,
            Key::Rsa(_) => SignatureAlgorithm::RsaPkcs1Sha256,
        }
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let fail = |_| SignError::SignFailed(self.source.clone());
        match &self.key {
            Key::Ecdsa(k, _) => Ok(k.sign(&self.rng, message).map_err(fail)?.as_ref().to_vec()),
            Key::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig).map_err(fail)?;
                Ok(sig)
            }
        }
    }

    fn describe(&self) -> String {
        self.source.clone()
    }
}
