use crate::*;
use proptest::prelude::*;
use rasn::types::{Any, Integer, IntegerType, ObjectIdentifier};

fn encode_request_with(ids: &[CertId], nonce: bool) -> Vec<u8> {
    let list = ids
        .iter()
        .map(|id| rasn_ocsp::Request {
            req_cert: rasn_ocsp::CertId {
                hash_algorithm: rasn_pkix::AlgorithmIdentifier {
                    algorithm: ObjectIdentifier::new(id.hash.oid_arcs().to_vec()).unwrap(),
                    parameters: Some(Any::new(vec![5, 0])),
                },
                issuer_name_hash: id.name_hash.clone().into(),
                issuer_key_hash: id.key_hash.clone().into(),
                serial_number: Integer::try_from_signed_bytes(id.serial.as_bytes(), rasn::Codec::Der).unwrap(),
            },
            single_request_extensions: None,
        })
        .collect();
    let extensions = nonce.then(|| {
        vec![rasn_pkix::Extension {
            extn_id: ObjectIdentifier::new(vec![1, 3, 6, 1, 5, 5, 7, 48, 1, 2]).unwrap(),
            critical: false,
            extn_value: vec![4, 2, 1, 2].into(),
        }]
        .into()
    });
    let req = rasn_ocsp::OcspRequest {
        tbs_request: rasn_ocsp::TbsRequest {
            version: Integer::ZERO,
            requestor_name: None,
            request_list: list,
            request_extensions: extensions,
        },
        optional_signature: None,
    };
    rasn::der::encode(&req).unwrap()
}

fn cert_id(hash: HashAlg, serial: &[u8]) -> CertId {
    CertId {
        hash,
        name_hash: vec![1; hash.len()],
        key_hash: vec![2; hash.len()],
        serial: Serial::from_int_bytes(serial).unwrap(),
    }
}

#[test]
fn parses_several_cert_ids_in_both_hashes() {
    let ids = vec![cert_id(HashAlg::Sha1, &[0x01, 0x02]), cert_id(HashAlg::Sha256, &[0x00, 0x80])];
    let parsed = parse_request(&encode_request_with(&ids, true)).unwrap();
    assert_eq!(parsed.cert_ids, ids);
    assert_eq!(parsed.nonce.as_deref(), Some(&[4u8, 2, 1, 2][..]));
    assert_eq!(crate::nonce_octets(parsed.nonce.as_deref().unwrap()).unwrap(), &[1, 2]);
}

#[test]
fn nonces_outside_1_to_32_octets_are_malformed() {
    use crate::nonce_octets;
    assert!(nonce_octets(&[4, 0]).is_err(), "empty");
    let mut n32 = vec![4, 32];
    n32.extend([7u8; 32]);
    assert_eq!(nonce_octets(&n32).unwrap().len(), 32);
    let mut n33 = vec![4, 33];
    n33.extend([7u8; 33]);
    assert!(nonce_octets(&n33).is_err(), "33 octets");
    let mut long = vec![4, 0x81, 200];
    long.extend([7u8; 200]);
    assert!(nonce_octets(&long).is_err(), "long form");
    assert!(nonce_octets(&[1, 2, 3]).is_err(), "raw octets, no OCTET STRING");
    assert!(nonce_octets(&[4, 3, 1]).is_err(), "truncated");
}

#[test]
fn the_public_encoder_round_trips() {
    let ids = vec![cert_id(HashAlg::Sha1, &[0x01]), cert_id(HashAlg::Sha256, &[0x00, 0x90])];
    let der = encode_request(&ids).unwrap();
    assert_eq!(der, encode_request_with(&ids, false));
    assert_eq!(parse_request(&der).unwrap().cert_ids, ids);
}

#[test]
fn rejects_bad_requests() {
    let good = encode_request_with(&[cert_id(HashAlg::Sha1, &[1])], false);
    assert!(matches!(parse_request(&[]), Err(ProtoError::MalformedRequest(_))));
    assert!(parse_request(&good[..good.len() - 1]).is_err());
    assert!(parse_request(&[good.as_slice(), &[0]].concat()).is_err());
    assert!(matches!(parse_request(&encode_request_with(&[], false)), Err(ProtoError::EmptyRequest)));
    let many: Vec<CertId> = (0..=MAX_CERT_IDS as u8).map(|i| cert_id(HashAlg::Sha1, &[i + 1])).collect();
    assert!(matches!(parse_request(&encode_request_with(&many, false)), Err(ProtoError::TooManyCertIds(_))));
    let mut short = cert_id(HashAlg::Sha256, &[1]);
    short.key_hash.truncate(20);
    assert!(matches!(parse_request(&encode_request_with(&[short], false)), Err(ProtoError::BadHashLength { .. })));
}

#[test]
fn response_round_trips_through_rasn() {
    let id = cert_id(HashAlg::Sha256, &[0x00, 0xff, 0x01]);
    let builder = ResponseBuilder::new(&[9; 20], 1_700_000_100)
        .answer(Answer {
            cert_id: id.clone(),
            status: CertStatus::Revoked { time: 1_600_000_000, reason: Some(RevocationReason::KeyCompromise) },
            this_update: 1_700_000_000,
            next_update: 1_700_086_400,
        })
        .answer(Answer {
            cert_id: cert_id(HashAlg::Sha1, &[5]),
            status: CertStatus::Unknown,
            this_update: 1_700_000_000,
            next_update: 1_700_000_500,
        });
    let tbs = builder.tbs().unwrap();
    let responder = ocsp_testpki::Issued::root("carried", ocsp_testpki::KeyAlg::P256).unwrap();
    let signed =
        builder.assemble(&tbs, SignatureAlgorithm::EcdsaP256Sha256, &[0xaa; 70], std::slice::from_ref(&responder.der));
    assert_eq!(signed.next_update, 1_700_000_500);
    let (status, basic) = decode_response(&signed.der).unwrap();
    assert_eq!(status, rasn_ocsp::OcspResponseStatus::Successful);
    let basic = basic.unwrap();
    assert_eq!(rasn::der::encode(&basic.tbs_response_data).unwrap(), tbs, "signed bytes are the bytes sent");
    assert_eq!(basic.certs.unwrap().len(), 1);
    let single = &basic.tbs_response_data.responses[0];
    assert_eq!(single.cert_id.issuer_key_hash.to_vec(), vec![2; 32]);
    assert!(
        matches!(single.cert_status, rasn_ocsp::CertStatus::Revoked(ref r) if r.revocation_reason == Some(rasn_pkix::CrlReason::KeyCompromise))
    );
    assert_eq!(single.this_update.timestamp(), 1_700_000_000);
    assert!(
        matches!(basic.tbs_response_data.responder_id, rasn_ocsp::ResponderId::ByKey(ref k) if k.to_vec() == vec![9; 20])
    );
}

/// Issue 11.2 (BR 7.2.2, 7.3; RFC 5280 5.3.1): the reason code is left out when the reason is
/// unspecified, as for a revocation recorded with no reason.
#[test]
fn an_unspecified_reason_is_not_encoded() {
    for (reason, want) in [
        (Some(RevocationReason::Unspecified), None),
        (None, None),
        (Some(RevocationReason::Superseded), Some(rasn_pkix::CrlReason::Superseded)),
    ] {
        let builder = ResponseBuilder::new(&[9; 20], 1_700_000_100).answer(Answer {
            cert_id: cert_id(HashAlg::Sha1, &[7]),
            status: CertStatus::Revoked { time: 1_600_000_000, reason },
            this_update: 1_700_000_000,
            next_update: 1_700_086_400,
        });
        let tbs = builder.tbs().unwrap();
        let signed = builder.assemble(&tbs, SignatureAlgorithm::EcdsaP256Sha256, &[0xaa; 70], &[]);
        let (_, basic) = decode_response(&signed.der).unwrap();
        let single = &basic.unwrap().tbs_response_data.responses[0];
        match &single.cert_status {
            rasn_ocsp::CertStatus::Revoked(r) => assert_eq!(r.revocation_reason, want, "{reason:?}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn error_responses_decode() {
    let (status, basic) = decode_response(&error_response(ResponseStatus::Unauthorized)).unwrap();
    assert_eq!(status, rasn_ocsp::OcspResponseStatus::Unauthorized);
    assert!(basic.is_none());
}

#[test]
fn issuer_hashes_match_the_certificate_bytes() {
    let root = ocsp_testpki::Issued::root("hash test", ocsp_testpki::KeyAlg::P256).unwrap();
    let info = x509::CertInfo::from_der(&root.der).unwrap();
    assert_eq!(info.subject, info.issuer, "self-signed");
    assert_eq!(info.public_key.len(), 65, "uncompressed P-256 point");
    let h = IssuerHashes::of(&info);
    assert_eq!(h.sha1_name, HashAlg::Sha1.digest(&info.subject));
    assert_eq!(h.key().0[32..], h.sha256_key[..]);
    assert_eq!(info.reencode().unwrap(), root.der);
    assert!(info.is_ca);
}

proptest! {
    #[test]
    fn request_round_trip(serial in proptest::collection::vec(any::<u8>(), 1..21), sha256 in any::<bool>(), name in any::<u8>()) {
        let hash = if sha256 { HashAlg::Sha256 } else { HashAlg::Sha1 };
        let id = CertId { hash, name_hash: vec![name; hash.len()], key_hash: vec![!name; hash.len()], serial: Serial::from_int_bytes(&serial).unwrap() };
        let parsed = parse_request(&encode_request_with(std::slice::from_ref(&id), false)).unwrap();
        prop_assert_eq!(&parsed.cert_ids[0], &id);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_request(&bytes);
        let _ = x509::CertInfo::from_der(&bytes);
    }
}

/// An OCSPRequest for one CertID carrying `ext` (in requestExtensions or, with `single`, in the
/// singleRequestExtensions of its one request).
fn request_with_extension(ext: rasn_pkix::Extension, single: bool) -> Vec<u8> {
    let id = cert_id(HashAlg::Sha1, &[0x05]);
    let mut req: rasn_ocsp::OcspRequest = rasn::der::decode(&encode_request_with(&[id], false)).unwrap();
    if single {
        req.tbs_request.request_list[0].single_request_extensions = Some(vec![ext].into());
    } else {
        req.tbs_request.request_extensions = Some(vec![ext].into());
    }
    rasn::der::encode(&req).unwrap()
}

#[test]
fn an_unknown_critical_extension_is_malformed_and_a_known_or_non_critical_one_is_not() {
    let ext = |arcs: Vec<u32>, critical: bool| rasn_pkix::Extension {
        extn_id: ObjectIdentifier::new(arcs).unwrap(),
        critical,
        extn_value: vec![4, 2, 1, 2].into(),
    };
    let unknown = vec![1, 3, 6, 1, 4, 1, 99999, 1];
    for single in [false, true] {
        let e = parse_request(&request_with_extension(ext(unknown.clone(), true), single)).unwrap_err();
        assert!(e.to_string().contains("critical extension 1.3.6.1.4.1.99999.1 is not supported"), "{e}");
        assert!(parse_request(&request_with_extension(ext(unknown.clone(), false), single)).is_ok());
    }
    // The nonce, even marked critical, is understood.
    let nonce = parse_request(&request_with_extension(ext(vec![1, 3, 6, 1, 5, 5, 7, 48, 1, 2], true), false)).unwrap();
    assert!(nonce.nonce.is_some());
}
