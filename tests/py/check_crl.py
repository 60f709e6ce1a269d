#!/usr/bin/env python3
"""Checks a CRL with Python's `cryptography`, a client we did not write.

Loads the DER CRL, verifies its signature with the issuer certificate, and checks: the issuer
name, a critical IssuingDistributionPoint whose only full name is --url, the CRLNumber (above
--above), thisUpdate <= now < nextUpdate with nextUpdate - thisUpdate <= --max-days, the
AuthorityKeyIdentifier, and the entries against --expect (a JSON object of serial hex ->
[revocation time RFC 3339, reason name or null]): the same serials, times and reasons, and no
reasonCode "unspecified". Prints one JSON line (number, entries); exits 1 on any failure.
"""
import argparse
import datetime
import json

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from check_ocsp import fail  # the same failure line and exit status (tests/py is the script's folder)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--crl", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--expect", required=True, help="JSON: serial hex -> [RFC 3339 time, reason or null]")
    p.add_argument("--above", type=int, default=0)
    p.add_argument("--max-days", type=int, default=10)
    a = p.parse_args()

    crl = x509.load_der_x509_crl(open(a.crl, "rb").read())
    issuer = x509.load_pem_x509_certificate(open(a.issuer, "rb").read())
    if not crl.is_signature_valid(issuer.public_key()):
        fail("signature does not verify with the issuer's key")
    if crl.issuer != issuer.subject:
        fail(f"issuer {crl.issuer} is not {issuer.subject}")
    idp = crl.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    if not idp.critical:
        fail("IssuingDistributionPoint is not critical")
    names = [n.value for n in (idp.value.full_name or [])]
    if names != [a.url]:
        fail(f"IssuingDistributionPoint names {names}, served at {a.url}")
    number = crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number
    if number <= a.above:
        fail(f"CRLNumber {number} is not above {a.above}")
    aki = crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
    ski = issuer.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    if aki != ski:
        fail("AuthorityKeyIdentifier is not the issuer's subjectKeyIdentifier")
    now = datetime.datetime.now(datetime.timezone.utc)
    this, nxt = crl.last_update_utc, crl.next_update_utc
    if not (this <= now + datetime.timedelta(seconds=5) and now < nxt):
        fail(f"not current: {this} .. {nxt}")
    if nxt - this > datetime.timedelta(days=a.max_days):
        fail(f"valid {nxt - this}, more than {a.max_days} days")
    want = json.loads(a.expect)
    got = {}
    for entry in crl:
        serial = format(entry.serial_number, "x")
        reason = None
        try:
            reason = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON).value.reason.name
        except x509.ExtensionNotFound:
            pass
        if reason == "unspecified":
            fail(f"{serial}: reasonCode unspecified is encoded (BR 7.2.2 forbids it)")
        got[serial] = [int(entry.revocation_date_utc.timestamp()), reason]
    want = {
        k.lower().lstrip("0") or "0": [int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()), r]
        for k, (t, r) in want.items()
    }
    if got != want:
        fail(f"entries {got}, expected {want}")
    print(json.dumps({"number": number, "entries": len(got)}))


if __name__ == "__main__":
    main()
