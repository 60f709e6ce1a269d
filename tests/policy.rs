//! Issue 11: per-issuer revocation-reason profiles (BR 4.9 and 7.2.2), nonces (RFC 8954), and
//! the configuration file, against the real binaries with openssl and Python `cryptography`.

use crate::util::*;
use ocsp_testpki::KeyAlg;
use std::process::Command;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The response to a GET for `cert` (issued by the test intermediate), saved to a file.
fn fetch(pki: &TestPki, r: &Responder, cert: &str, dir: &std::path::Path) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pki.request_der(cert));
    let http = curl(&[&format!("{}/{b64}", r.url)]);
    assert_eq!(http.status, 200);
    let path = dir.join("resp.der");
    std::fs::write(&path, &http.body).unwrap();
    path.display().to_string()
}

/// Python `cryptography` reads the served answer for `cert`: revoked, with no revocationReason.
fn assert_revoked_without_reason(pki: &TestPki, r: &Responder, cert: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let resp = fetch(pki, r, cert, tmp.path());
    let (int, responder) = (pki.path("int.pem"), pki.path("responder.pem"));
    let args = ["--response", &resp, "--issuer", &int, "--responder", &responder, "--expect", "revoked", "--no-reason"];
    let py = python_check(&args);
    assert!(py.status.success(), "{}{}", text(&py.stdout), text(&py.stderr));
}

#[test]
fn the_tls_br_profile_refuses_holds_and_leaf_ca_compromise_and_needs_a_reason_for_ca_certificates() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    r.ctl_ok(&["issuer", "add", "--name", "root", "--cert", &pki.path("root.pem"), "--key", &pki.path("root.key")]);
    // The intermediate is a CA certificate (basicConstraints cA), recorded under the root.
    r.ctl_ok(&["cert", "add", "--pem", &pki.path("int.pem")]);
    let leaf = pki.leaf("leaf", &[0x51]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);

    for (reason, why) in [
        ("certificateHold", "BR 4.9.13"),
        ("cACompromise", "cACompromise only for CA certificates"),
        ("aACompromise", "BR 7.2.2"),
        ("removeFromCRL", "not a revocation reason"),
    ] {
        let out = r.ctl(&["revoke", "--issuer", "int", "--serial", "51", "--reason", reason]);
        assert_eq!(out.status.code(), Some(1), "{reason} was accepted");
        assert!(text(&out.stderr).contains(why), "{reason}: {}", text(&out.stderr));
    }
    let answer = pki.ask(&r.url, &leaf);
    assert!(answer.contains("leaf.pem: good"), "nothing was revoked: {answer}");

    // No reason (the default): revoked, and no revocationReason on the wire.
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "51"]);
    let answer = pki.ask(&r.url, &leaf);
    assert!(answer.contains("leaf.pem: revoked") && !answer.contains("Reason:"), "{answer}");
    assert_revoked_without_reason(&pki, &r, &leaf);

    // The CA certificate needs a reason; cACompromise is one for a CA.
    let out = r.ctl(&["revoke", "--issuer", "root", "--serial", "07"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("a CA certificate"), "{}", text(&out.stderr));
    let root_says = |cert: &str| {
        let out = openssl_ocsp(&[
            "-issuer",
            &pki.path("root.pem"),
            "-cert",
            cert,
            "-url",
            &r.url,
            "-CAfile",
            &pki.path("root.pem"),
            "-no_nonce",
        ]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    assert!(root_says(&pki.path("int.pem")).contains("int.pem: good"));
    r.ctl_ok(&["revoke", "--issuer", "root", "--serial", "07", "--reason", "cACompromise"]);
    let answer = root_says(&pki.path("int.pem"));
    assert!(answer.contains("int.pem: revoked") && answer.contains("Reason: cACompromise"), "{answer}");
}

#[test]
fn issuers_named_in_the_configuration_get_their_own_profile() {
    let (a, b) = (TestPki::new(KeyAlg::P256), TestPki::new(KeyAlg::P256));
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "ocspd.toml", "[policy.issuer.\"private-ca\"]\nreasons = \"private\"\n");
    let r = Responder::start_with(&["--config", &config]);
    a.register_as(&r, "private-ca");
    b.register_as(&r, "public-ca");
    let list = r.ctl_ok(&["issuer", "list"]);
    assert!(list.lines().any(|l| l.starts_with("private-ca") && l.contains("reasons private")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("public-ca") && l.contains("reasons tls-br")), "{list}");
    let (la, lb) = (a.leaf("held", &[0x61]), b.leaf("held", &[0x61]));
    r.ctl_ok(&["cert", "add", "--pem", &la]);
    r.ctl_ok(&["cert", "add", "--pem", &lb]);
    r.ctl_ok(&["revoke", "--issuer", "private-ca", "--serial", "61", "--reason", "certificateHold"]);
    let out = r.ctl(&["revoke", "--issuer", "public-ca", "--serial", "61", "--reason", "certificateHold"]);
    assert_eq!(out.status.code(), Some(1));
    let answer = a.ask(&r.url, &la);
    assert!(answer.contains("held.pem: revoked") && answer.contains("Reason: certificateHold"), "{answer}");
    assert!(b.ask(&r.url, &lb).contains("held.pem: good"));
}

#[test]
fn an_index_import_refused_by_the_profile_names_each_line_and_records_nothing() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let tmp = tempfile::tempdir().unwrap();
    let lines = [
        "V\t301231235959Z\t\t71\tunknown\t/CN=v",
        "R\t301231235959Z\t250102030405Z,holdInstruction\t72\tunknown\t/CN=held",
        "R\t301231235959Z\t250102030405Z,CAkeyTime\t73\tunknown\t/CN=ca-compromise",
        "R\t301231235959Z\t250102030405Z\t74\tunknown\t/CN=no-reason",
        "R\t301231235959Z\t250102030405Z,superseded\t75\tunknown\t/CN=superseded",
    ];
    let index = write(tmp.path(), "index.txt", &(lines.join("\n") + "\n"));
    let out = r.ctl(&["import", "--issuer", "int", "--index", &index]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("index.txt:2: serial 72") && err.contains("certificateHold"), "{err}");
    assert!(err.contains("index.txt:3: serial 73") && err.contains("cACompromise"), "{err}");
    assert!(!err.contains("index.txt:4") && !err.contains("index.txt:5"), "{err}");
    let show = json(&r.ctl_ok(&["--json", "issuer", "show", "int"]));
    assert_eq!((show["good"].as_u64(), show["revoked"].as_u64()), (Some(0), Some(0)), "nothing recorded: {show}");

    // The admin API itself refuses such a call whole, naming each refused certificate.
    let token = std::fs::read_to_string(r.token_file()).unwrap();
    let body = r#"{"issuer":"int","certs":[{"serial":"81"},{"serial":"82","revocation":{"time":1735787045,"reason":"certificateHold"}},{"serial":"83","revocation":{"time":1735787045,"reason":"aACompromise"}}]}"#;
    let http = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {}", token.trim()),
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
        &format!("{}/v1/certs", r.admin_url),
    ]);
    assert_eq!(http.status, 400);
    let said = text(&http.body);
    assert!(said.contains("certificate 2 (serial 82") && said.contains("certificate 3 (serial 83"), "{said}");
    let status = r.ctl(&["status", "--issuer", "int", "--serial", "81"]);
    assert!(!text(&status.stdout).contains("good"), "serial 81 was recorded: {}", text(&status.stdout));

    // Without the refused lines the import goes through; no reason is mapped to none.
    let kept: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| ![1, 2].contains(i)).map(|(_, l)| *l).collect();
    let index = write(tmp.path(), "index.txt", &(kept.join("\n") + "\n"));
    let imported = json(&r.ctl_ok(&["--json", "import", "--issuer", "int", "--index", &index]));
    assert_eq!((imported["added"].as_u64(), imported["revoked"].as_u64()), (Some(3), Some(2)), "{imported}");
    let leaf = pki.leaf("no-reason", &[0x74]);
    assert_revoked_without_reason(&pki, &r, &leaf);
}

fn nonce_query(pki: &TestPki, r: &Responder, cert: &str, len: usize) -> serde_json::Value {
    let out = run(Command::new("python3").arg(repo().join("tests/py/nonce.py")).args([
        "--url",
        &format!("{}/", r.url),
        "--issuer",
        &pki.path("int.pem"),
        "--responder",
        &pki.path("responder.pem"),
        "--cert",
        cert,
        "--nonce-len",
        &len.to_string(),
    ]));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    json(&text(&out.stdout))
}

#[test]
fn an_echo_issuer_answers_nonces_live_and_openssl_verifies_the_echo() {
    let (echo, plain) = (TestPki::new(KeyAlg::P256), TestPki::new(KeyAlg::P256));
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "ocspd.toml", "[policy.issuer.\"echo-ca\"]\nnonces = \"echo\"\n");
    let r = Responder::start_with(&["--config", &config]);
    echo.register_as(&r, "echo-ca");
    plain.register_as(&r, "plain-ca");
    let (le, lp) = (echo.leaf("n", &[0x91]), plain.leaf("n", &[0x91]));
    r.ctl_ok(&["cert", "add", "--pem", &le]);
    r.ctl_ok(&["cert", "add", "--pem", &lp]);

    // openssl sends a nonce unless told not to, and checks the echo.
    let openssl = |pki: &TestPki, cert: &str| {
        let out = openssl_ocsp(&[
            "-issuer",
            &pki.path("int.pem"),
            "-cert",
            cert,
            "-url",
            &r.url,
            "-CAfile",
            &pki.path("chain.pem"),
        ]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    for _ in 0..3 {
        let said = openssl(&echo, &le);
        assert!(said.contains("Response verify OK") && said.contains("n.pem: good"), "{said}");
        assert!(!said.contains("nonce"), "openssl found the echo wanting: {said}");
    }
    let said = openssl(&plain, &lp);
    assert!(said.contains("WARNING: no nonce in response") && said.contains("n.pem: good"), "{said}");

    // Python: a 32-octet nonce is echoed, never cached; 33 or 0 octets are malformed.
    let v = nonce_query(&echo, &r, &le, 32);
    assert_eq!(v["response_status"], "successful", "{v}");
    assert_eq!((v["nonce_echoed"].as_bool(), v["verified"].as_bool()), (Some(true), Some(true)), "{v}");
    assert_eq!(v["cache_control"], "max-age=0, no-cache", "{v}");
    for len in [33, 0] {
        assert_eq!(nonce_query(&echo, &r, &le, len)["response_status"], "malformed_request", "{len} octets");
    }
    // The default policy ignores the nonce, whatever its length, and serves the cached answer.
    let v = nonce_query(&plain, &r, &lp, 33);
    assert_eq!((v["response_status"].as_str(), v["nonce_present"].as_bool()), (Some("successful"), Some(false)));
    assert!(v["cache_control"].as_str().unwrap().contains("public"), "{v}");

    // Echoed answers are signed from the status of the moment.
    r.ctl_ok(&["revoke", "--issuer", "echo-ca", "--serial", "91", "--reason", "keyCompromise"]);
    let v = nonce_query(&echo, &r, &le, 16);
    assert_eq!((v["cert_status"].as_str(), v["nonce_echoed"].as_bool()), (Some("revoked"), Some(true)), "{v}");
    let said = openssl(&echo, &le);
    assert!(said.contains("n.pem: revoked") && !said.contains("nonce"), "{said}");
}

#[test]
fn the_configuration_file_is_checked_whole_and_flags_and_variables_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(
        tmp.path(),
        "bad.toml",
        "[listen]\npublic = \"127.0.0.1:1\"\npublik = \"x\"\n[responses]\nvalidity = 3600\n[policy]\nreasons = \"lenient\"\nnonce = \"echo\"\n",
    );
    let started = std::time::Instant::now();
    let out = run(Command::new(bin("ocspd")).args(["--config", &bad, "--data-dir"]).arg(tmp.path().join("d")));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("4 problem(s)"), "{err}");
    for want in ["`listen.publik`", "BR 4.9.9", "lenient", "`policy.nonce`"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!tmp.path().join("d").exists(), "the data folder was touched before the configuration was valid");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let out = run(Command::new(bin("ocspd")).args(["check-config", "--config", &bad]));
    assert_eq!(out.status.code(), Some(2));

    let good = write(
        tmp.path(),
        "good.toml",
        "[listen]\npublic = \"127.0.0.1:1111\"\nadmin = \"127.0.0.1:1112\"\n[responses]\nvalidity = \"2d\"\n",
    );
    let check = |env: &[(&str, &str)], flags: &[&str]| {
        let mut cmd = Command::new(bin("ocspd"));
        cmd.args(["check-config", "--config", &good]).args(flags).envs(env.iter().copied());
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let said = check(&[], &[]);
    assert!(said.contains("listen.public = \"127.0.0.1:1111\"  # file"), "{said}");
    assert!(said.contains("responses.backdate = \"1h\"  # default"), "{said}");
    let said = check(&[("OCSPD_LISTEN", "127.0.0.1:2222")], &[]);
    assert!(said.contains("listen.public = \"127.0.0.1:2222\"  # flag or OCSPD_* variable"), "{said}");
    let said = check(&[("OCSPD_LISTEN", "127.0.0.1:2222")], &["--listen", "127.0.0.1:3333"]);
    assert!(said.contains("listen.public = \"127.0.0.1:3333\""), "{said}");

    // The server runs with what the file says: responses valid for two days.
    let r = Responder::start_with(&["--config", &good]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&r);
    let leaf = pki.leaf("leaf", &[0x21]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    let resp = fetch(&pki, &r, &leaf, tmp.path());
    let out = run(Command::new("python3").args([
        "-c",
        "import sys; from cryptography.x509 import ocsp; r = ocsp.load_der_ocsp_response(open(sys.argv[1],'rb').read()); print(int((r.next_update_utc - r.this_update_utc).total_seconds()))",
        &resp,
    ]));
    assert_eq!(text(&out.stdout).trim(), "172800", "{}", text(&out.stderr));
}
