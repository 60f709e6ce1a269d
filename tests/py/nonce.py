#!/usr/bin/env python3
"""Asks an OCSP responder about one certificate with a nonce (RFC 8954), as Python's
`cryptography` builds the request, and reports what came back as one JSON line: the response
status, the certificate status, whether the response echoes the nonce, its Cache-Control, and
whether the signature verifies with the responder certificate (or the issuer)."""
import argparse
import json
import os
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from check_ocsp import verify


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--responder", help="the delegated responder certificate")
    p.add_argument("--nonce-len", type=int, required=True)
    args = p.parse_args()

    issuer = x509.load_pem_x509_certificate(open(args.issuer, "rb").read())
    cert = x509.load_pem_x509_certificate(open(args.cert, "rb").read())
    nonce = os.urandom(args.nonce_len)
    req = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    body = req.public_bytes(serialization_der())
    http = urllib.request.Request(args.url, data=body, headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(http, timeout=20) as r:
        data, cache_control = r.read(), r.headers.get("Cache-Control")
    resp = ocsp.load_der_ocsp_response(data)
    out = {"response_status": resp.response_status.name.lower(), "cache_control": cache_control}
    if resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
        try:
            echoed = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        signer = x509.load_pem_x509_certificate(open(args.responder, "rb").read()) if args.responder else issuer
        try:
            verify(signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
            verified = True
        except Exception:  # noqa: BLE001 - any failure means not verified
            verified = False
        out.update(
            cert_status=resp.certificate_status.name.lower(),
            nonce_echoed=echoed == nonce,
            nonce_present=echoed is not None,
            verified=verified,
        )
    print(json.dumps(out))


def serialization_der():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


if __name__ == "__main__":
    main()
