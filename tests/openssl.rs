//! `openssl ocsp` and Python `cryptography` against the real server, over POST and GET, with
//! SHA-1 and SHA-256 CertIDs, delegated and issuer-signed responses, P-256 and RSA.

use crate::util::*;
use base64::Engine;
use ocsp_testpki::KeyAlg;

fn assert_verified(out: &std::process::Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "openssl failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("Response verify OK") || stdout.contains("Response verify OK"),
        "not verified:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// `openssl ocsp -respin`: reads a response saved in `resp` for `cert` (CertID hashed with
/// `digest`), verifies it against the chain, and returns openssl's stdout.
fn verify_stored(s: &Setup, resp: &std::path::Path, digest: &str, cert: &str) -> String {
    let (int, chain) = (s.pki.path("int.pem"), s.pki.path("chain.pem"));
    let resp = resp.to_str().unwrap();
    let out = openssl_ocsp(&["-respin", resp, digest, "-issuer", &int, "-cert", cert, "-CAfile", &chain, "-no_nonce"]);
    assert_verified(&out).0
}

struct Setup {
    pki: TestPki,
    r: Responder,
    good: String,
    revoked: String,
    unknown: String,
}

fn setup(alg: KeyAlg) -> Setup {
    let pki = TestPki::new(alg);
    let r = Responder::start();
    pki.register(&r);
    let good = pki.leaf("good", &[0x01, 0x23]);
    let revoked = pki.leaf("revoked", &[0x45, 0x67]);
    // High bit set: the DER serial needs a leading zero octet.
    let unknown = pki.leaf("unknown", &[0x89, 0xab]);
    r.ctl_ok(&["cert", "add", "--pem", &good, &revoked]);
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "4567", "--reason", "keyCompromise"]);
    Setup { pki, r, good, revoked, unknown }
}

#[test]
fn openssl_post_good_revoked_unknown_sha1_and_sha256() {
    let s = setup(KeyAlg::P256);
    for digest in ["-sha1", "-sha256"] {
        let out = openssl_ocsp(&[
            digest,
            "-issuer",
            &s.pki.path("int.pem"),
            "-cert",
            &s.good,
            "-cert",
            &s.revoked,
            "-cert",
            &s.unknown,
            "-url",
            &s.r.url,
            "-CAfile",
            &s.pki.path("chain.pem"),
            "-no_nonce",
        ]);
        let (stdout, _) = assert_verified(&out);
        assert!(stdout.contains(&format!("{}: good", s.good)), "{digest}: {stdout}");
        assert!(stdout.contains(&format!("{}: revoked", s.revoked)), "{digest}: {stdout}");
        assert!(stdout.contains("Reason: keyCompromise"), "{digest}: {stdout}");
        assert!(stdout.contains(&format!("{}: unknown", s.unknown)), "{digest}: {stdout}");
    }
}

#[test]
fn openssl_post_rsa_responder() {
    let s = setup(KeyAlg::Rsa2048);
    let out = openssl_ocsp(&[
        "-issuer",
        &s.pki.path("int.pem"),
        "-cert",
        &s.good,
        "-cert",
        &s.revoked,
        "-url",
        &s.r.url,
        "-CAfile",
        &s.pki.path("chain.pem"),
        "-no_nonce",
    ]);
    let (stdout, _) = assert_verified(&out);
    assert!(stdout.contains(&format!("{}: good", s.good)), "{stdout}");
    assert!(stdout.contains(&format!("{}: revoked", s.revoked)), "{stdout}");
}

#[test]
fn get_with_curl_verified_by_openssl_and_python() {
    let s = setup(KeyAlg::P256);
    let tmp = tempfile::tempdir().unwrap();
    let cases = [(&s.good, "good", "0123"), (&s.revoked, "revoked", "4567"), (&s.unknown, "unknown", "89ab")];
    for digest in ["-sha1", "-sha256"] {
        for (cert, expect, serial) in cases {
            let req = tmp.path().join("req.der");
            let out = openssl_ocsp(&[
                digest,
                "-issuer",
                &s.pki.path("int.pem"),
                "-cert",
                cert,
                "-no_nonce",
                "-reqout",
                req.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&req).unwrap());
            let http = curl(&[&format!("{}/{b64}", s.r.url)]);
            assert_eq!(http.status, 200, "{expect} {digest}");
            assert_eq!(http.header("content-type"), Some("application/ocsp-response"));
            let cc = http.header("cache-control").unwrap();
            assert!(cc.starts_with("max-age=") && cc.ends_with("public, no-transform, must-revalidate"), "{cc}");
            let etag = http.header("etag").unwrap();
            assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");
            assert!(http.header("last-modified").is_some() && http.header("expires").is_some());

            let resp = tmp.path().join("resp.der");
            std::fs::write(&resp, &http.body).unwrap();
            let stdout = verify_stored(&s, &resp, digest, cert);
            assert!(stdout.contains(&format!("{cert}: {expect}")), "{digest}: {stdout}");

            let mut args = vec![
                "--response",
                resp.to_str().unwrap(),
                "--issuer",
                &s.pki.path("int.pem") as &str,
                "--responder",
                &s.pki.path("responder.pem") as &str,
                "--expect",
                expect,
                "--serial",
                serial,
            ]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
            if expect == "revoked" {
                args.extend(["--reason".to_string(), "keyCompromise".to_string()]);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = python_check(&refs);
            assert!(out.status.success(), "python cryptography: {}{}", text(&out.stdout), text(&out.stderr));
            let hash = if digest == "-sha1" { "sha1" } else { "sha256" };
            assert!(text(&out.stdout).contains(&format!("hash {hash}")), "{}", text(&out.stdout));

            // The other spellings clients send decode to the same request: percent-encoding,
            // a leading `//`, `+` turned into a space.
            let encoded = b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
            for path in [format!("/{encoded}"), format!("//{b64}"), format!("/{}", b64.replace('+', "%20"))] {
                let other = curl(&[&format!("{}{path}", s.r.url)]);
                assert_eq!(other.status, 200, "{path}");
                std::fs::write(&resp, &other.body).unwrap();
                let stdout = verify_stored(&s, &resp, digest, cert);
                assert!(stdout.contains(&format!("{cert}: {expect}")), "{path}: {stdout}");
            }

            // A cache revalidating with a date after thisUpdate gets 304 and no body; a stale ETag
            // gets the full answer. (Live ECDSA signatures differ per request, so an ETag only
            // matches again once responses are pre-signed.)
            let last_modified = http.header("last-modified").unwrap().to_string();
            let later = "Fri, 01 Jan 2100 00:00:00 GMT";
            let again = curl(&["-H", &format!("If-Modified-Since: {later}"), &format!("{}/{b64}", s.r.url)]);
            assert_eq!(again.status, 304, "If-Modified-Since after {last_modified}");
            let stale = curl(&["-H", "If-None-Match: \"0000\"", &format!("{}/{b64}", s.r.url)]);
            assert_eq!(stale.status, 200);
            assert!(again.body.is_empty());
        }
    }
}

#[test]
fn demo_prints_a_working_openssl_command() {
    let r = Responder::start_with(&["--demo"]);
    let mut line = None;
    for _ in 0..100 {
        line = r.stdout().into_iter().find(|l| l.starts_with("openssl ocsp "));
        if line.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let line = line.expect("ocspd --demo prints an openssl ocsp command");
    let out = run(std::process::Command::new("sh").arg("-c").arg(&line));
    let (stdout, _) = assert_verified(&out);
    assert!(stdout.contains("leaf-1.pem: good"), "{stdout}");
    assert!(stdout.contains("leaf-3.pem: revoked"), "{stdout}");

    // The root signs for itself (no delegated certificate): the intermediate's status.
    let d = r.data().join("demo");
    let p = |n: &str| d.join(n).display().to_string();
    let out = openssl_ocsp(&[
        "-issuer",
        &p("root.pem"),
        "-cert",
        &p("intermediate.pem"),
        "-url",
        &r.url,
        "-CAfile",
        &p("root.pem"),
        "-VAfile",
        &p("root.pem"),
        "-no_nonce",
    ]);
    let (stdout, _) = assert_verified(&out);
    assert!(stdout.contains("intermediate.pem: good"), "{stdout}");
    let out = python_check(&["--response", "/dev/null", "--issuer", &p("root.pem"), "--expect", "good"]);
    assert!(!out.status.success(), "the checker must fail on an empty response");
}

#[test]
fn an_issuer_we_do_not_serve_gets_unauthorized() {
    let s = setup(KeyAlg::P256);
    let stranger = TestPki::new(KeyAlg::P256);
    let leaf = stranger.leaf("stranger", &[0x01]);
    let out = openssl_ocsp(&["-issuer", &stranger.path("int.pem"), "-cert", &leaf, "-url", &s.r.url, "-no_nonce"]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("unauthorized (6)"), "{all}");
}

/// Issue 11.1: P-384 issuers. A P-384 root signs for itself (ecdsa-with-SHA384) and a P-384
/// intermediate delegates to a P-384 responder; openssl verifies both, Python `cryptography`
/// checks the signature algorithm, the signer and the status.
#[test]
fn p384_root_signs_for_itself_and_a_p384_delegated_responder_signs() {
    let s = setup(KeyAlg::P384);
    // The delegated responder of the P-384 intermediate.
    let out = openssl_ocsp(&[
        "-issuer",
        &s.pki.path("int.pem"),
        "-cert",
        &s.good,
        "-cert",
        &s.revoked,
        "-url",
        &s.r.url,
        "-CAfile",
        &s.pki.path("chain.pem"),
        "-no_nonce",
    ]);
    let (stdout, _) = assert_verified(&out);
    assert!(stdout.contains(&format!("{}: good", s.good)), "{stdout}");
    assert!(stdout.contains(&format!("{}: revoked", s.revoked)), "{stdout}");

    // The P-384 root, registered with its own key, answers for a certificate it issued.
    s.r.ctl_ok(&[
        "issuer",
        "add",
        "--name",
        "root",
        "--cert",
        &s.pki.path("root.pem"),
        "--key",
        &s.pki.path("root.key"),
    ]);
    s.r.ctl_ok(&["cert", "add", "--issuer", "root", "--serial", "7e57"]);
    let tmp = tempfile::tempdir().unwrap();
    for (who, issuer, responder, serial, cafile) in [
        ("root", s.pki.path("root.pem"), None, "7e57", s.pki.path("root.pem")),
        ("int", s.pki.path("int.pem"), Some(s.pki.path("responder.pem")), "0123", s.pki.path("chain.pem")),
    ] {
        let req = tmp.path().join(format!("{who}.req"));
        let resp = tmp.path().join(format!("{who}.resp"));
        let out = openssl_ocsp(&[
            "-issuer",
            &issuer,
            "-serial",
            &format!("0x{serial}"),
            "-no_nonce",
            "-reqout",
            req.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let http = post(&format!("{}/", s.r.url), &std::fs::read(&req).unwrap(), Some("application/ocsp-request"));
        assert_eq!(http.status, 200);
        std::fs::write(&resp, &http.body).unwrap();
        let verified = openssl_ocsp(&[
            "-respin",
            resp.to_str().unwrap(),
            "-issuer",
            &issuer,
            "-serial",
            &format!("0x{serial}"),
            "-CAfile",
            &cafile,
            "-no_nonce",
            "-resp_text",
        ]);
        let (stdout, _) = assert_verified(&verified);
        assert!(stdout.contains("ecdsa-with-SHA384"), "{who}: signed with another algorithm:\n{stdout}");
        assert!(stdout.contains(": good"), "{who}: {stdout}");
        let mut args =
            vec!["--response", resp.to_str().unwrap(), "--issuer", &issuer, "--expect", "good", "--serial", serial];
        if let Some(r) = &responder {
            args.extend(["--responder", r.as_str()]);
        }
        let py = python_check(&args);
        assert!(py.status.success(), "{who}: python cryptography: {}{}", text(&py.stdout), text(&py.stderr));
    }
}

/// Issue 11.1: RSA 2048, 3072 and 4096 responder keys (PKCS#1 v1.5 with SHA-256, from key files):
/// openssl verifies good and revoked answers and shows the key size; Python `cryptography`
/// checks signer, signature hash, status and reason.
#[test]
fn rsa_2048_3072_and_4096_responders_are_verified_by_openssl_and_python() {
    for (alg, bits) in [(KeyAlg::Rsa2048, 2048), (KeyAlg::Rsa3072, 3072), (KeyAlg::Rsa4096, 4096)] {
        let s = setup(alg);
        let tmp = tempfile::tempdir().unwrap();
        for (cert, serial, expect) in [(&s.good, "0123", "good"), (&s.revoked, "4567", "revoked")] {
            let req = tmp.path().join("req.der");
            let out = openssl_ocsp(&[
                "-issuer",
                &s.pki.path("int.pem"),
                "-cert",
                cert,
                "-no_nonce",
                "-reqout",
                req.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let http = post(&format!("{}/", s.r.url), &std::fs::read(&req).unwrap(), Some("application/ocsp-request"));
            assert_eq!(http.status, 200);
            let resp = tmp.path().join("resp.der");
            std::fs::write(&resp, &http.body).unwrap();
            let out = openssl_ocsp(&[
                "-respin",
                resp.to_str().unwrap(),
                "-issuer",
                &s.pki.path("int.pem"),
                "-cert",
                cert,
                "-CAfile",
                &s.pki.path("chain.pem"),
                "-no_nonce",
                "-resp_text",
            ]);
            let (stdout, _) = assert_verified(&out);
            assert!(stdout.contains(&format!("{cert}: {expect}")), "RSA {bits}: {stdout}");
            assert!(stdout.contains("sha256WithRSAEncryption"), "RSA {bits}: {stdout}");
            assert!(stdout.contains(&format!("Public-Key: ({bits} bit)")), "RSA {bits}: {stdout}");
            let mut args = vec![
                "--response",
                resp.to_str().unwrap(),
                "--issuer",
                &s.pki.path("int.pem") as &str,
                "--responder",
                &s.pki.path("responder.pem") as &str,
                "--expect",
                expect,
                "--serial",
                serial,
                "--signature",
                "sha256",
            ]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
            if expect == "revoked" {
                args.extend(["--reason".into(), "keyCompromise".into()]);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let py = python_check(&refs);
            assert!(py.status.success(), "RSA {bits}: python: {}{}", text(&py.stdout), text(&py.stderr));
        }
    }
}
