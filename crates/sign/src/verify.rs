use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use ocsp_proto::x509::CertInfo;

/// True when `cert` names `issuer` as its issuer and `issuer`'s key verifies its signature.
///
/// Both conditions, never the name alone: the GlobalSign 2016 incident came from treating
/// certificates with the same subject as the same issuer.
pub fn verify_issued_by(cert: &CertInfo, issuer: &CertInfo) -> bool {
    if cert.issuer != issuer.subject {
        return false;
    }
    algorithms(&cert.signature_alg, &issuer.public_key_alg)
        .iter()
        .any(|alg| UnparsedPublicKey::new(*alg, &issuer.public_key).verify(&cert.tbs, &cert.signature).is_ok())
}

fn algorithms(sig_oid: &str, key_oid: &str) -> Vec<&'static dyn VerificationAlgorithm> {
    const EC_KEY: &str = "1.2.840.10045.2.1";
    match (sig_oid, key_oid) {
        ("1.2.840.10045.4.3.2", EC_KEY) => {
            vec![&signature::ECDSA_P256_SHA256_ASN1, &signature::ECDSA_P384_SHA256_ASN1]
        }
        ("1.2.840.10045.4.3.3", EC_KEY) => {
            vec![&signature::ECDSA_P384_SHA384_ASN1, &signature::ECDSA_P256_SHA384_ASN1]
        }
        ("1.2.840.113549.1.1.11", _) => vec![&signature::RSA_PKCS1_2048_8192_SHA256],
        ("1.2.840.113549.1.1.12", _) => vec![&signature::RSA_PKCS1_2048_8192_SHA384],
        ("1.2.840.113549.1.1.13", _) => vec![&signature::RSA_PKCS1_2048_8192_SHA512],
        ("1.3.101.112", _) => vec![&signature::ED25519],
        _ => Vec::new(),
    }
}
