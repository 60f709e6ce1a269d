#!/usr/bin/env python3
"""Asks an OCSP responder about many serials with Python's `cryptography`, a client we did not
write, over one keep-alive HTTP connection (POST, RFC 6960 appendix A).

For each serial (hex, one per line in --serials) under --issuer: builds a request with a SHA-1
CertID, POSTs it, checks the response is successful, names that CertID, is signed by the
responder certificate it carries (itself issued by the issuer) or by the issuer, and is
current. Prints one JSON line: counts of good, revoked, unknown and failed answers, and the
first failures; with --bodies DIR, also writes each response as DIR/<serial>.der.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from check_ocsp import verify  # the same signature check (tests/py is the script's folder)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--serials", required=True)
    p.add_argument("--bodies")
    a = p.parse_args()

    issuer = x509.load_pem_x509_certificate(open(a.issuer, "rb").read())
    name_hash = hashlib.sha1(issuer.subject.public_bytes()).digest()
    # The key hash is over the subjectPublicKey BIT STRING contents: the point (EC) or the
    # RSAPublicKey (RSA).
    key = issuer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    key_hash = hashlib.sha1(raw).digest()

    url = urllib.parse.urlparse(a.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    counts = {"good": 0, "revoked": 0, "unknown": 0, "failed": 0}
    failures = []
    now = datetime.datetime.now(datetime.timezone.utc)
    for line in open(a.serials):
        serial_hex = line.strip()
        if not serial_hex:
            continue
        serial = int(serial_hex, 16)
        req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1()).build()
        body = req.public_bytes(serialization.Encoding.DER)
        try:
            conn.request("POST", url.path or "/", body, {"Content-Type": "application/ocsp-request"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            counts["failed"] += 1
            failures.append(f"{serial_hex}: {e}")
            continue
        try:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            r = ocsp.load_der_ocsp_response(data)
            if r.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                raise ValueError(f"status {r.response_status}")
            if r.serial_number != serial or r.issuer_key_hash != key_hash or r.issuer_name_hash != name_hash:
                raise ValueError("answers another CertID")
            signer = issuer
            if r.certificates:
                signer = r.certificates[0]
                signer.verify_directly_issued_by(issuer)
            verify(signer.public_key(), r.signature, r.tbs_response_bytes, r.signature_hash_algorithm)
            if not (r.this_update_utc <= now + datetime.timedelta(seconds=5) and now < r.next_update_utc):
                raise ValueError("not current")
            counts[r.certificate_status.name.lower()] += 1
            if a.bodies:
                with open(os.path.join(a.bodies, f"{serial_hex.lower()}.der"), "wb") as f:
                    f.write(data)
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            counts["failed"] += 1
            if len(failures) < 5:
                failures.append(f"{serial_hex}: {e}")
    print(json.dumps({**counts, "failures": failures}))


if __name__ == "__main__":
    main()
