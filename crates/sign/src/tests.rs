use crate::*;
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256};
use ocsp_proto::x509::CertInfo;
use ocsp_proto::{Answer, CertStatus, HashAlg, IssuerHashes, ResponseBuilder, Serial, SignatureAlgorithm};
use ocsp_testpki::{Issued, KeyAlg, ResponderOptions};
use std::sync::Arc;

const NOW_SLACK: i64 = 0;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + NOW_SLACK
}

fn signer(pem: &str) -> Arc<dyn Signer> {
    Arc::new(SoftwareSigner::from_pkcs8_pem(pem, "test").unwrap())
}

fn identity(issuer: &Issued, responder: Option<&Issued>, key_pem: &str) -> Result<ResponderIdentity, IdentityError> {
    let issuer_info = CertInfo::from_der(&issuer.der).unwrap();
    let resp = responder.map(|r| CertInfo::from_der(&r.der).unwrap());
    ResponderIdentity::new(&issuer_info, resp, signer(key_pem), now(), "test identity")
}

fn sign_and_verify(id: &ResponderIdentity, issuer: &Issued) {
    let hashes = IssuerHashes::of(&CertInfo::from_der(&issuer.der).unwrap());
    let builder = ResponseBuilder::new(id.key_hash(), now()).answer(Answer {
        cert_id: hashes.cert_id(HashAlg::Sha1, Serial::from_hex("01").unwrap()),
        status: CertStatus::Good,
        this_update: now(),
        next_update: now() + 3600,
    });
    let signed = id.sign(&builder).unwrap();
    let (_, basic) = ocsp_proto::decode_response(&signed.der).unwrap();
    let basic = basic.unwrap();
    let tbs = builder.tbs().unwrap();
    let sig: Vec<u8> = basic.signature.into_vec();
    let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match id.signer().algorithm() {
        SignatureAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_ASN1,
        SignatureAlgorithm::EcdsaP384Sha384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
        SignatureAlgorithm::RsaPkcs1Sha256 => &RSA_PKCS1_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(alg, &id.certificate().public_key).verify(&tbs, &sig).expect("signature verifies");
    assert_eq!(basic.certs.map(|c| c.len()).unwrap_or(0), usize::from(id.is_delegated()));
}

#[test]
fn valid_identities_sign_verifiable_responses() {
    for alg in [KeyAlg::P256, KeyAlg::P384, KeyAlg::Rsa2048] {
        let root = Issued::root("r", alg).unwrap();
        let int = root.intermediate("i", 2, alg).unwrap();
        let resp = int.responder("resp", &ResponderOptions { alg, ..Default::default() }).unwrap();
        let delegated = identity(&int, Some(&resp), &resp.key_pem).unwrap();
        sign_and_verify(&delegated, &int);
        let own = identity(&int, None, &int.key_pem).unwrap();
        sign_and_verify(&own, &int);
    }
}

fn broken(e: IdentityError) -> Vec<IdentityRule> {
    e.broken
}

#[test]
fn each_identity_rule_is_enforced() {
    let root = Issued::root("r", KeyAlg::P256).unwrap();
    let int = root.intermediate("i", 2, KeyAlg::P256).unwrap();
    let other = root.intermediate("other", 3, KeyAlg::P256).unwrap();
    let resp = int.responder("resp", &ResponderOptions::default()).unwrap();

    let e = identity(&int, Some(&resp), &int.key_pem).unwrap_err();
    assert_eq!(broken(e), vec![IdentityRule::KeyMatchesCertificate]);

    let no_eku = int.responder("no eku", &ResponderOptions { ocsp_signing_eku: false, ..Default::default() }).unwrap();
    assert_eq!(broken(identity(&int, Some(&no_eku), &no_eku.key_pem).unwrap_err()), vec![IdentityRule::OcspSigningEku]);

    let no_nocheck = int.responder("no nocheck", &ResponderOptions { nocheck: false, ..Default::default() }).unwrap();
    assert_eq!(
        broken(identity(&int, Some(&no_nocheck), &no_nocheck.key_pem).unwrap_err()),
        vec![IdentityRule::OcspNoCheck]
    );

    let foreign = other.responder("foreign", &ResponderOptions::default()).unwrap();
    let e = identity(&int, Some(&foreign), &foreign.key_pem).unwrap_err();
    assert_eq!(broken(e), vec![IdentityRule::IssuedByIssuer]);

    let expired = int.responder("expired", &ResponderOptions { valid_days: -1, ..Default::default() }).unwrap();
    let e = identity(&int, Some(&expired), &expired.key_pem).unwrap_err();
    assert!(matches!(broken(e).as_slice(), [IdentityRule::WithinValidity { .. }]));

    // Several rules at once are all reported.
    let bad = int
        .responder("bad", &ResponderOptions { ocsp_signing_eku: false, nocheck: false, ..Default::default() })
        .unwrap();
    let e = identity(&int, Some(&bad), &int.key_pem).unwrap_err();
    assert_eq!(e.broken.len(), 3, "{e}");
    assert!(e.to_string().contains("test identity"));
}

#[test]
fn key_files_in_other_forms_get_clear_errors() {
    let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert!(SoftwareSigner::from_pkcs8_pem(enc, "k").unwrap_err().to_string().contains("encrypted"));
    let trad = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert!(SoftwareSigner::from_pkcs8_pem(trad, "k").unwrap_err().to_string().contains("openssl pkcs8"));
    assert!(SoftwareSigner::from_pkcs8_pem("nothing", "k").is_err());
    let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(SoftwareSigner::from_pkcs8_pem(garbage, "k").is_err());
    assert!(load_signer("pkcs99:whatever").is_err());
}

#[test]
fn issued_by_needs_name_and_signature() {
    let r1 = Issued::root("same name", KeyAlg::P256).unwrap();
    let r1_twin = Issued::root("same name", KeyAlg::P256).unwrap();
    let leaf = r1.leaf("leaf.test", &[1]).unwrap();
    let leaf = CertInfo::from_der(&leaf.der).unwrap();
    assert!(verify_issued_by(&leaf, &CertInfo::from_der(&r1.der).unwrap()));
    // Same subject, other key: not the issuer.
    assert!(!verify_issued_by(&leaf, &CertInfo::from_der(&r1_twin.der).unwrap()));
}

#[test]
fn registry_finds_issuers_by_either_hash_and_forgets_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = Issued::root("r", KeyAlg::P256).unwrap();
    let a = root.intermediate("a", 2, KeyAlg::P256).unwrap();
    let b = root.intermediate("b", 3, KeyAlg::P256).unwrap();
    let registry = IssuerRegistry::default();
    for (name, ca) in [("a", &a), ("b", &b)] {
        ca.write(dir.path(), name, true).unwrap();
        let key = format!("file:{}", dir.path().join(format!("{name}.key")).display());
        registry.insert(IssuerEntry::load(name, &ca.der, None, &key, now()).unwrap());
    }
    let hashes = IssuerHashes::of(&CertInfo::from_der(&a.der).unwrap());
    for alg in HashAlg::ALL {
        let found = registry.find(&hashes.cert_id(alg, Serial::from_hex("01").unwrap())).unwrap();
        assert_eq!(found.name, "a");
    }
    // Name hash of one issuer with the key hash of another matches nothing.
    let mut mixed = hashes.cert_id(HashAlg::Sha1, Serial::from_hex("01").unwrap());
    mixed.key_hash = IssuerHashes::of(&CertInfo::from_der(&b.der).unwrap()).sha1_key.clone();
    assert!(registry.find(&mixed).is_none());
    assert_eq!(registry.len(), 2);
    assert!(registry.remove("a").is_some());
    assert!(registry.find(&hashes.cert_id(HashAlg::Sha256, Serial::from_hex("01").unwrap())).is_none());
    assert!(registry.by_name("b").is_some());
    assert!(registry.remove("a").is_none());
}

/// A responder certificate that expires while ocspd runs stops signing at its notAfter: a
/// response produced after it would fail every client's check.
#[test]
fn an_identity_refuses_to_sign_outside_its_certificate_validity() {
    let root = Issued::root("root", KeyAlg::P256).unwrap();
    let resp = root.responder("responder", &ResponderOptions { valid_days: 1, ..Default::default() }).unwrap();
    let id = identity(&root, Some(&resp), &resp.key_pem).unwrap();
    let not_after = id.certificate().not_after;
    let hashes = IssuerHashes::of(&CertInfo::from_der(&root.der).unwrap());
    let at = |t: i64| {
        ResponseBuilder::new(id.key_hash(), t).answer(Answer {
            cert_id: hashes.cert_id(HashAlg::Sha1, Serial::from_hex("01").unwrap()),
            status: CertStatus::Good,
            this_update: t,
            next_update: t + 3600,
        })
    };
    assert!(id.sign(&at(not_after - 60)).is_ok());
    match id.sign(&at(not_after + 1)) {
        Err(SignError::OutsideValidity { not_after: n, .. }) => assert_eq!(n, not_after),
        other => panic!("signed after notAfter: {other:?}"),
    }
    assert!(!id.valid_at(not_after + 1));
    // At start-up such an identity still loads (only its issuer stops), unless the rule is required.
    let cert = CertInfo::from_der(&root.der).unwrap();
    let responder = Some(CertInfo::from_der(&resp.der).unwrap());
    let later = not_after + 10;
    let what = "expired";
    assert!(ResponderIdentity::checked(
        &cert,
        responder.clone(),
        signer(&resp.key_pem),
        later,
        what,
        ValidityPolicy::Require
    )
    .is_err());
    assert!(ResponderIdentity::checked(
        &cert,
        responder,
        signer(&resp.key_pem),
        later,
        what,
        ValidityPolicy::AllowOutside
    )
    .is_ok());
}
