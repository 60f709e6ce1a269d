#!/usr/bin/env python3
"""Checks an OCSP response with Python's `cryptography`, a client we did not write.

Loads the DER response, verifies its signature with the responder certificate (the one the
response carries, or --responder, or the issuer itself), checks that a delegated responder
certificate is signed by the issuer, and checks certStatus, reason and
thisUpdate <= now < nextUpdate. Prints one line; exits 0 when every check holds, 1 otherwise.
"""
import argparse
import datetime
import hashlib
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp


def verify(public_key, signature, data, hash_alg):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_alg))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_alg)
    else:
        raise ValueError(f"unsupported key {type(public_key)}")


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--response", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--responder", help="expected responder certificate (default: issuer signs)")
    p.add_argument("--expect", required=True, choices=["good", "revoked", "unknown"])
    p.add_argument("--reason")
    p.add_argument("--no-reason", action="store_true", help="a revoked answer must carry no revocationReason")
    p.add_argument("--signature", help="expected signature hash, e.g. sha256, sha384")
    p.add_argument("--serial", help="expected serial, hex")
    args = p.parse_args()

    issuer = x509.load_pem_x509_certificate(open(args.issuer, "rb").read())
    resp = ocsp.load_der_ocsp_response(open(args.response, "rb").read())
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        fail(f"response status {resp.response_status}")

    expected_signer = issuer
    if args.responder:
        expected_signer = x509.load_pem_x509_certificate(open(args.responder, "rb").read())
        if resp.certificates:
            if resp.certificates[0] != expected_signer:
                fail("the response carries a different responder certificate")
        else:
            fail("a delegated response carries no responder certificate")
        verify(issuer.public_key(), expected_signer.signature, expected_signer.tbs_certificate_bytes,
               expected_signer.signature_hash_algorithm)
        eku = expected_signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            fail("responder certificate lacks id-kp-OCSPSigning")
    elif resp.certificates:
        fail("an issuer-signed response should carry no certificates")

    spki_bits = expected_signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # responderID byKey = SHA-1 of the subjectPublicKey BIT STRING value.
    raw_key = _subject_public_key_bits(spki_bits)
    if resp.responder_key_hash != hashlib.sha1(raw_key).digest():
        fail("responderID byKey does not match the responder's key")
    if resp.responder_name is not None:
        fail("responderID is byName; RFC 9919 wants byKey")

    verify(expected_signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)

    now = datetime.datetime.now(datetime.timezone.utc)
    singles = list(resp.responses)
    if len(singles) != 1:
        fail(f"{len(singles)} SingleResponses, expected 1")
    single = singles[0]
    if not (single.this_update_utc <= now < single.next_update_utc):
        fail(f"not current: thisUpdate {single.this_update_utc} nextUpdate {single.next_update_utc} now {now}")
    if args.serial is not None and single.serial_number != int(args.serial, 16):
        fail(f"serial {single.serial_number:x} != {args.serial}")
    status = single.certificate_status.name.lower()
    if status != args.expect:
        fail(f"status {status}, expected {args.expect}")
    if args.expect == "revoked":
        reason = single.revocation_reason.name if single.revocation_reason else None
        want = args.reason
        # cryptography names reasons in snake_case (key_compromise).
        if want and (reason or "").replace("_", "").lower() != want.replace("_", "").lower():
            fail(f"reason {reason}, expected {want}")
        if args.no_reason and single.revocation_reason is not None:
            fail(f"revocationReason {reason} is encoded; an unspecified reason must be left out (BR 7.2.2)")
    if args.signature and resp.signature_hash_algorithm.name != args.signature:
        fail(f"signed with {resp.signature_hash_algorithm.name}, expected {args.signature}")
        if single.revocation_time_utc is None or single.revocation_time_utc > now:
            fail(f"revocation time {single.revocation_time_utc}")
    print(f"OK {status} serial {single.serial_number:x} hash {single.hash_algorithm.name}")


def _subject_public_key_bits(spki_der):
    """The BIT STRING content (minus the unused-bits octet) of a DER SubjectPublicKeyInfo."""
    def tlv(buf, i):
        tag = buf[i]
        length = buf[i + 1]
        j = i + 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[j:j + n], "big")
            j += n
        return tag, j, j + length
    _, start, end = tlv(spki_der, 0)
    _, _, alg_end = tlv(spki_der, start)
    tag, bits_start, bits_end = tlv(spki_der, alg_end)
    assert tag == 0x03
    return spki_der[bits_start + 1:bits_end]


if __name__ == "__main__":
    main()
