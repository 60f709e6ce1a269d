//! Pre-signed responses: served as stored (stable bytes and ETag, so caches revalidate with
//! 304), verified by openssl and Python `cryptography`, and replaced the moment a revocation is
//! acknowledged.

use crate::util::*;
use base64::Engine;
use ocsp_testpki::KeyAlg;

fn request(pki: &TestPki, cert: &str, digest: &str, dir: &std::path::Path) -> String {
    let req = dir.join("req.der");
    let out = openssl_ocsp(&[
        digest,
        "-issuer",
        &pki.path("int.pem"),
        "-cert",
        cert,
        "-no_nonce",
        "-reqout",
        req.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(req).unwrap())
}

fn metric(r: &Responder, name: &str) -> f64 {
    let m = text(&curl(&[&r.metrics_url]).body);
    m.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

fn check(pki: &TestPki, body: &[u8], expect: &str, dir: &std::path::Path) {
    let resp = dir.join("resp.der");
    std::fs::write(&resp, body).unwrap();
    let mut args = vec!["--response", resp.to_str().unwrap(), "--issuer"];
    let (int, responder) = (pki.path("int.pem"), pki.path("responder.pem"));
    args.extend([int.as_str(), "--responder", responder.as_str(), "--expect", expect]);
    let out = python_check(&args);
    assert!(out.status.success(), "python: {}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn presigned_responses_are_stable_verified_and_replaced_at_revocation() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let good = pki.leaf("good", &[0x21]);
    let other = pki.leaf("other", &[0x22]);
    r.ctl_ok(&["cert", "add", "--pem", &good, &other]);
    let stats: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "presign"])).unwrap();
    assert!(stats["signed"].as_u64().unwrap() >= 4, "both certificates, both CertID forms: {stats}");
    assert_eq!(stats["errors"], 0);

    let tmp = tempfile::tempdir().unwrap();
    for digest in ["-sha1", "-sha256"] {
        let b64 = request(&pki, &good, digest, tmp.path());
        let url = format!("{}/{b64}", r.url);
        let (a, b) = (curl(&[&url]), curl(&[&url]));
        assert_eq!(a.status, 200);
        assert_eq!(a.body, b.body, "{digest}: the stored response is served as stored");
        let etag = a.header("etag").unwrap().to_string();
        assert_eq!(b.header("etag"), Some(etag.as_str()));
        let revalidated = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
        assert_eq!(revalidated.status, 304, "{digest}");
        assert_eq!(revalidated.header("etag"), Some(etag.as_str()));
        check(&pki, &a.body, "good", tmp.path());
        let cc = a.header("cache-control").unwrap();
        let max_age: i64 = cc.trim_start_matches("max-age=").split(',').next().unwrap().parse().unwrap();
        assert!(max_age > 0 && max_age <= 24 * 3600, "{cc}");
    }
    // Six answers: the first of each from the stored responses, repeats from the memory tier.
    let presigned = metric(&r, "ocspd_tier_answers_total{tier=\"presigned\"}");
    let memory = metric(&r, "ocspd_tier_answers_total{tier=\"memory\"}");
    assert!(presigned >= 2.0 && memory >= 4.0 && presigned + memory >= 6.0, "presigned {presigned} memory {memory}");
    assert_eq!(metric(&r, "ocspd_live_signings_total"), 0.0, "nothing was signed on request");
    assert!(metric(&r, "ocspd_presign_signed_total") >= 4.0);

    // Revocation: the very next answer says revoked, and soon it is pre-signed again.
    let b64 = request(&pki, &other, "-sha1", tmp.path());
    let url = format!("{}/{b64}", r.url);
    check(&pki, &curl(&[&url]).body, "good", tmp.path());
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "22", "--reason", "keyCompromise"]);
    check(&pki, &curl(&[&url]).body, "revoked", tmp.path());
    let mut stable = false;
    for _ in 0..100 {
        let (a, b) = (curl(&[&url]), curl(&[&url]));
        if a.body == b.body {
            check(&pki, &a.body, "revoked", tmp.path());
            stable = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(stable, "the revoked response is pre-signed and served as stored");
}

#[test]
fn without_a_pre_signer_ocspctl_presign_says_so_and_answers_are_signed_live() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_with(&["--no-presign"]);
    pki.register(&r);
    let leaf = pki.leaf("leaf", &[0x31]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    let out = r.ctl(&["presign"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no pre-signer"), "{}", text(&out.stderr));
    let answer = pki.ask(&r.url, &leaf);
    assert!(answer.contains("leaf.pem: good"), "{answer}");
    assert!(metric(&r, "ocspd_tier_answers_total{tier=\"live\"}") >= 1.0);
}
