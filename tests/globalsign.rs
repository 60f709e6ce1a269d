//! GlobalSign, October 2016: revoking a cross-certificate (root R1's subject and key, issued by
//! root R2) made a responder answer "revoked" for everything under R1, because it matched
//! revocations by subject and key. Status here is keyed by (issuerNameHash, issuerKeyHash,
//! serial), so the revocation stays with the cross-certificate.

use crate::util::*;
use ocsp_testpki::{Issued, KeyAlg};

#[test]
fn globalsign_2016_cross_root() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let r1 = Issued::root("GlobalSign-like Root R1", KeyAlg::P256).unwrap();
    let r2 = Issued::root("GlobalSign-like Root R2", KeyAlg::P256).unwrap();
    // The cross certificate and one leaf of R1 share a serial on purpose.
    let shared_serial = [0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0f];
    let cross = r2.cross_sign(&r1, &shared_serial).unwrap();
    let same_serial_leaf = r1.leaf("same-serial.r1.test", &shared_serial).unwrap();
    let other_leaf = r1.leaf("other.r1.test", &[0x33, 0x44]).unwrap();
    r1.write(dir.path(), "r1", true).unwrap();
    r2.write(dir.path(), "r2", true).unwrap();
    cross.write(dir.path(), "cross", false).unwrap();
    same_serial_leaf.write(dir.path(), "same-serial", false).unwrap();
    other_leaf.write(dir.path(), "other", false).unwrap();

    let r = Responder::start();
    for name in ["r1", "r2"] {
        r.ctl_ok(&[
            "issuer",
            "add",
            "--name",
            name,
            "--cert",
            &p(&format!("{name}.pem")),
            "--key",
            &p(&format!("{name}.key")),
        ]);
    }
    // The server finds each certificate's issuer by name and signature.
    let added = r.ctl_ok(&["--json", "cert", "add", "--pem", &p("cross.pem"), &p("same-serial.pem"), &p("other.pem")]);
    let added: serde_json::Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["added"], 3, "{added}");
    let serials = added["serials"].to_string();
    assert!(
        serials.contains("[\"r2\",\"0400000000010F\"]") && serials.contains("[\"r1\",\"0400000000010F\"]"),
        "{serials}"
    );

    r.ctl_ok(&["revoke", "--issuer", "r2", "--serial", "0400000000010f", "--reason", "cACompromise"]);

    let ask = |issuer: &str, cert: &str| ask_issuer_signed(dir.path(), &r.url, issuer, cert);
    let cross_answer = ask("r2", "cross");
    assert!(cross_answer.contains("cross.pem: revoked") && cross_answer.contains("cACompromise"), "{cross_answer}");
    assert!(ask("r1", "same-serial").contains("same-serial.pem: good"));
    assert!(ask("r1", "other").contains("other.pem: good"));
    // R1 itself is not touched by the revocation of a certificate bearing its name and key.
    let status = r.ctl_ok(&["status", "--issuer", "r1", "--serial", "0400000000010f"]);
    assert!(status.contains(": good"), "{status}");
}

/// Re-keyed issuers (same subject, another key) and re-named ones (same key, another subject)
/// are distinct issuers: the same serial under each is a different certificate. An issuer with
/// the same subject *and* key as a registered one is refused, because their CertIDs are equal.
#[test]
fn rekeyed_and_renamed_issuers_stay_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let root = Issued::root("root", KeyAlg::P256).unwrap();
    let old = root.intermediate("Issuing CA", 2, KeyAlg::P256).unwrap();
    let rekeyed = root.intermediate("Issuing CA", 3, KeyAlg::P256).unwrap();
    let renamed = root.intermediate_with_key("Issuing CA 2", 4, &old).unwrap();
    let twin = root.cross_sign(&old, &[9]).unwrap();
    let r = Responder::start();
    for (name, ca) in [("old", &old), ("rekeyed", &rekeyed), ("renamed", &renamed)] {
        ca.write(dir.path(), name, true).unwrap();
        r.ctl_ok(&[
            "issuer",
            "add",
            "--name",
            name,
            "--cert",
            &p(&format!("{name}.pem")),
            "--key",
            &p(&format!("{name}.key")),
        ]);
        r.ctl_ok(&["cert", "add", "--issuer", name, "--serial", "05"]);
        let leaf = ca.leaf(&format!("{name}.test"), &[5]).unwrap();
        leaf.write(dir.path(), &format!("leaf-{name}"), false).unwrap();
    }
    twin.write(dir.path(), "twin", false).unwrap();
    std::fs::copy(dir.path().join("old.key"), dir.path().join("twin.key")).unwrap();
    let out = r.ctl(&["issuer", "add", "--name", "twin", "--cert", &p("twin.pem"), "--key", &p("twin.key")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("share CertIDs"), "{}", text(&out.stderr));

    r.ctl_ok(&["revoke", "--issuer", "old", "--serial", "05", "--reason", "keyCompromise"]);
    for (name, expect) in [("old", "revoked"), ("rekeyed", "good"), ("renamed", "good")] {
        let stdout = ask_issuer_signed(dir.path(), &r.url, name, &format!("leaf-{name}"));
        assert!(stdout.contains(&format!("leaf-{name}.pem: {expect}")), "{name}: {stdout}");
    }
}

/// `openssl ocsp` for `dir/cert.pem` under `dir/issuer.pem`, whose own key signs the responses
/// (so it is also the `-VAfile`); insists on a verified answer and returns openssl's stdout.
fn ask_issuer_signed(dir: &std::path::Path, url: &str, issuer: &str, cert: &str) -> String {
    let issuer = dir.join(format!("{issuer}.pem")).display().to_string();
    let cert = dir.join(format!("{cert}.pem")).display().to_string();
    let out = openssl_ocsp(&["-issuer", &issuer, "-cert", &cert, "-url", url, "-VAfile", &issuer, "-no_nonce"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains("Response verify OK"), "{cert}: {stdout}{stderr}");
    stdout
}
