//! Signing through PKCS#11 with a real SoftHSM2 token the test creates (softhsm2-util), backup
//! identities and their promotion, and the identity checks at start.

use crate::util::*;
use ocsp_testpki::{Issued, KeyAlg, ResponderOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token store of our own (SOFTHSM2_CONF), with one token.
struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    fn new() -> SoftHsm {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        let hsm = SoftHsm { dir, conf };
        hsm.init_token("1234");
        hsm
    }

    fn util(&self, args: &[&str]) -> String {
        let out = Command::new("softhsm2-util").args(args).env("SOFTHSM2_CONF", &self.conf).output().unwrap();
        assert!(out.status.success(), "softhsm2-util {args:?}: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    fn init_token(&self, pin: &str) {
        self.util(&["--init-token", "--free", "--label", "ocspd", "--pin", pin, "--so-pin", "87654321"]);
    }

    fn delete_token(&self) {
        self.util(&["--delete-token", "--token", "ocspd"]);
    }

    /// Imports a PKCS#8 key (the pair: private and public objects) under `label`.
    fn import(&self, key: &str, label: &str, id: &str, pin: &str) {
        self.util(&["--import", key, "--token", "ocspd", "--label", label, "--id", id, "--pin", pin]);
    }

    fn pin_file(&self, pin: &str) -> PathBuf {
        let p = self.dir.path().join("pin");
        std::fs::write(&p, format!("{pin}\n")).unwrap();
        p
    }

    fn uri(&self, label: &str) -> String {
        format!(
            "pkcs11:token=ocspd;object={label}?module-path={MODULE}&pin-source=file:{}&sessions=2",
            self.dir.path().join("pin").display()
        )
    }

    /// The token's configuration, and SoftHSM2's module on ocspd's PKCS#11 allowlist.
    fn env(&self) -> [(&str, &str); 2] {
        [("SOFTHSM2_CONF", self.conf.to_str().unwrap()), ("OCSPD_PKCS11_MODULES", MODULE)]
    }
}

fn start(hsm: &SoftHsm, extra: &[&str]) -> Responder {
    Responder::start_env(tempfile::tempdir().unwrap(), extra, &hsm.env())
}

/// Registers the test intermediate with its delegated responder's key on the token.
fn register_pkcs11(pki: &TestPki, r: &Responder, key_uri: &str) {
    let out = pki.add_int(r, "responder.pem", key_uri, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn p256_p384_and_rsa_2048_to_4096_keys_on_a_softhsm2_token_sign_responses_openssl_verifies() {
    for (alg, label) in [
        (KeyAlg::P256, "resp-p256"),
        (KeyAlg::P384, "resp-p384"),
        (KeyAlg::Rsa2048, "resp-rsa"),
        (KeyAlg::Rsa3072, "resp-rsa3072"),
        (KeyAlg::Rsa4096, "resp-rsa4096"),
    ] {
        let hsm = SoftHsm::new();
        let pki = TestPki::new(alg);
        hsm.import(&pki.path("responder.key"), label, "01", "1234");
        hsm.pin_file("1234");
        // The key now lives only on the token.
        std::fs::remove_file(pki.path("responder.key")).unwrap();
        let r = start(&hsm, &["--no-presign"]);
        register_pkcs11(&pki, &r, &hsm.uri(label));
        let good = pki.leaf("good", &[0x0a]);
        let bad = pki.leaf("bad", &[0x0b]);
        r.ctl_ok(&["cert", "add", "--pem", &good]);
        r.ctl_ok(&["cert", "add", "--pem", &bad]);
        r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0b", "--reason", "keyCompromise"]);
        let out = pki.ask(&r.url, &good);
        assert!(out.contains("Response verify OK") && out.contains(": good"), "{label}: {out}");
        let out = pki.ask(&r.url, &bad);
        assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{label}: {out}");
        let shown: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "issuer", "show", "int"])).unwrap();
        assert!(shown["key"].as_str().unwrap().starts_with("pkcs11:token=ocspd;object="), "{shown}");
    }
}

#[test]
fn the_pre_signer_signs_through_the_token_too() {
    let hsm = SoftHsm::new();
    let pki = TestPki::new(KeyAlg::P256);
    hsm.import(&pki.path("responder.key"), "resp", "01", "1234");
    hsm.pin_file("1234");
    let r = start(&hsm, &[]);
    register_pkcs11(&pki, &r, &hsm.uri("resp"));
    let leaf = pki.leaf("a", &[0x0a]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    let stats: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "presign"])).unwrap();
    assert!(stats["signed"].as_u64().unwrap() >= 2 && stats["errors"] == 0, "{stats}");
    let out = pki.ask(&r.url, &leaf);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
}

/// Asks until the answer contains `want` (or 20 s pass); returns the last answer.
fn ask_until(pki: &TestPki, r: &Responder, cert: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = pki.ask(&r.url, cert);
        if out.contains(want) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn token_errors_become_try_later_and_the_signer_reconnects() {
    let hsm = SoftHsm::new();
    let pki = TestPki::new(KeyAlg::P256);
    hsm.import(&pki.path("responder.key"), "resp", "01", "1234");
    hsm.pin_file("1234");
    // No pre-signer and no memory tier: every answer is signed on request.
    let mut r = start(&hsm, &["--no-presign", "--memory-cache", "0"]);
    register_pkcs11(&pki, &r, &hsm.uri("resp"));
    let leaf = pki.leaf("a", &[0x0a]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    assert!(pki.ask(&r.url, &leaf).contains(": good"));

    // The token disappears: tryLater, never a crash.
    hsm.delete_token();
    let out = ask_until(&pki, &r, &leaf, "trylater");
    assert!(out.contains("trylater"), "{out}");
    assert!(r.alive());

    // It comes back with another PIN than ocspd's PIN file holds: still tryLater, and the log
    // says why.
    hsm.init_token("5555");
    hsm.import(&pki.path("responder.key"), "resp", "01", "5555");
    std::thread::sleep(Duration::from_millis(1200));
    let out = pki.ask(&r.url, &leaf);
    assert!(out.contains("trylater"), "{out}");
    let log = r.log();
    assert!(log.contains("login to token \"ocspd\"") && log.to_lowercase().contains("pin"), "{log}");

    // The PIN file is fixed: the signer reconnects by itself.
    hsm.pin_file("5555");
    let out = ask_until(&pki, &r, &leaf, ": good");
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    assert!(r.log().contains("PKCS#11 token reconnected"));
    assert!(r.alive());
}

/// Runs ocspd on `data`, expecting it to refuse to start; returns what it printed.
fn refused_start(data: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(bin("ocspd"))
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "ocspd started: {}", text(&out.stdout));
    text(&out.stderr)
}

#[test]
fn a_bad_identity_stops_start_up_naming_the_key_and_the_rule() {
    let hsm = SoftHsm::new();
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let dir = r.kill();
    // The responder key file is swapped for another key.
    let other = Issued::root("other", KeyAlg::P256).unwrap();
    std::fs::write(pki.path("responder.key"), &other.key_pem).unwrap();
    let err = refused_start(&dir.path().join("data"), &[]);
    assert!(err.contains(&pki.path("responder.key")), "names the key file: {err}");
    assert!(err.contains("the key does not match the certificate's public key"), "names the rule: {err}");

    // A PKCS#11 key with a wrong PIN stops start-up with the token named.
    let pki = TestPki::new(KeyAlg::P256);
    hsm.import(&pki.path("responder.key"), "resp", "01", "1234");
    hsm.pin_file("1234");
    let r = start(&hsm, &[]);
    register_pkcs11(&pki, &r, &hsm.uri("resp"));
    let dir = r.kill();
    hsm.pin_file("0000");
    let err = refused_start(&dir.path().join("data"), &hsm.env());
    assert!(err.contains("token \"ocspd\"") && err.contains("login"), "{err}");
}

#[test]
fn each_identity_rule_is_checked_when_an_identity_is_registered_and_expiry_warns() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_with(&["--expiry-warning-days", "30"]);
    let dir = pki.dir.path();
    let cases: [(&str, ResponderOptions, &str); 3] = [
        ("no-eku", ResponderOptions { ocsp_signing_eku: false, ..Default::default() }, "id-kp-OCSPSigning"),
        ("no-nocheck", ResponderOptions { nocheck: false, ..Default::default() }, "id-pkix-ocsp-nocheck"),
        ("expired", ResponderOptions { valid_days: -1, ..Default::default() }, "outside its validity"),
    ];
    for (name, opts, rule) in cases {
        let cert = pki.int.responder(name, &opts).unwrap();
        cert.write(dir, name, true).unwrap();
        let out = pki.add_int(&r, &format!("{name}.pem"), &pki.path(&format!("{name}.key")), &[]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(text(&out.stderr).contains(rule), "{name}: {}", text(&out.stderr));
    }
    // Issued by someone else.
    let stranger = Issued::root("stranger", KeyAlg::P256).unwrap();
    let foreign = stranger.responder("foreign", &ResponderOptions::default()).unwrap();
    foreign.write(dir, "foreign", true).unwrap();
    let out = pki.add_int(&r, "foreign.pem", &pki.path("foreign.key"), &[]);
    assert!(text(&out.stderr).contains("not issued by this issuer"), "{}", text(&out.stderr));
    // A backup with the primary's own key is no spare.
    let (cert, key) = (pki.path("responder.pem"), pki.path("responder.key"));
    let out = pki.add_int(&r, "responder.pem", &key, &["--backup-responder-cert", &cert, "--backup-key", &key]);
    assert!(text(&out.stderr).contains("a spare must have a key of its own"), "{}", text(&out.stderr));
    assert!(!r.ctl_ok(&["issuer", "list"]).contains("int"), "nothing was registered");

    // A responder certificate 10 days from expiry: accepted, with a warning at start.
    let soon = pki.int.responder("soon", &ResponderOptions { valid_days: 10, ..Default::default() }).unwrap();
    soon.write(dir, "soon", true).unwrap();
    assert!(pki.add_int(&r, "soon.pem", &pki.path("soon.key"), &[]).status.success());
    let data = r.kill();
    let r = Responder::start_in(data, &["--expiry-warning-days", "30"]);
    assert!(r.log().contains("responder certificate expires soon"), "{}", r.log());
}

fn check_signed_by(pki: &TestPki, body: &[u8], responder: &str, expect: &str) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), body).unwrap();
    let out = python_check(&[
        "--response",
        f.path().to_str().unwrap(),
        "--issuer",
        &pki.path("int.pem"),
        "--responder",
        responder,
        "--expect",
        expect,
    ]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
}

fn get_body(pki: &TestPki, url: &str, cert: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pki.request_der(cert));
    curl(&[&format!("{url}/{b64}")]).body
}

#[test]
fn promoting_the_backup_switches_signing_at_once_and_re_signs_everything() {
    let hsm = SoftHsm::new();
    let pki = TestPki::new(KeyAlg::P256);
    // The backup: issued in advance, another key, on the HSM.
    let backup = pki.int.responder("backup responder", &ResponderOptions::default()).unwrap();
    backup.write(pki.dir.path(), "backup", true).unwrap();
    hsm.import(&pki.path("backup.key"), "backup", "02", "1234");
    hsm.pin_file("1234");
    let r = start(&hsm, &[]);
    let (backup_cert, backup_uri) = (pki.path("backup.pem"), hsm.uri("backup"));
    let extra = ["--backup-responder-cert", backup_cert.as_str(), "--backup-key", backup_uri.as_str()];
    let added = pki.add_int(&r, "responder.pem", &pki.path("responder.key"), &extra);
    assert!(added.status.success(), "{}", text(&added.stderr));
    let shown: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "issuer", "show", "int"])).unwrap();
    assert!(shown["backup_responder"].as_str().unwrap().starts_with("CN=backup responder"), "{shown}");
    let metrics = text(&curl(&[&r.metrics_url]).body);
    for role in ["primary", "backup"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("ocspd_responder_cert_expiry_seconds{{issuer=\"int\",role=\"{role}\"}}")))
            .unwrap_or_else(|| panic!("no expiry metric for the {role}: {metrics}"));
        let secs: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(secs > 80 * 86_400 && secs <= 90 * 86_400, "{line}");
    }
    let leaves: Vec<String> = (1..=20u8).map(|i| pki.leaf(&format!("l{i}"), &[0x40, i])).collect();
    for l in &leaves {
        r.ctl_ok(&["cert", "add", "--pem", l]);
    }
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "4001", "--reason", "keyCompromise"]);
    r.ctl_ok(&["presign"]);
    // Served (and now in the memory tier) signed by the primary.
    for l in &leaves[..5] {
        check_signed_by(
            &pki,
            &get_body(&pki, &r.url, l),
            &pki.path("responder.pem"),
            if l == &leaves[0] { "revoked" } else { "good" },
        );
    }

    let out: serde_json::Value =
        serde_json::from_str(&r.ctl_ok(&["--json", "issuer", "promote", "--name", "int", "--why", "drill"])).unwrap();
    assert_eq!(out["revoked_first"], 1, "{out}");
    assert!(out["hot_next"].as_u64().unwrap() >= 5, "{out}");
    assert!(out["issuer"]["responder"].as_str().unwrap().starts_with("CN=backup responder"), "{out}");
    // Every answer, cached or not, is now signed by the backup.
    for (i, l) in leaves.iter().enumerate() {
        let body = get_body(&pki, &r.url, l);
        check_signed_by(&pki, &body, &pki.path("backup.pem"), if i == 0 { "revoked" } else { "good" });
    }
    let stats: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "presign"])).unwrap();
    assert_eq!(stats["errors"], 0, "{stats}");
    let audit = r.ctl_ok(&["audit", "--action", "issuer.promote"]);
    assert!(audit.contains("drill") && audit.contains("previous key"), "{audit}");
    // The promotion survives a restart; a second promotion has no backup left.
    let data = r.kill();
    let r = Responder::start_env(data, &[], &hsm.env());
    let body = get_body(&pki, &r.url, &leaves[3]);
    check_signed_by(&pki, &body, &pki.path("backup.pem"), "good");
    let again = r.ctl(&["issuer", "promote", "--name", "int"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("no backup identity"), "{}", text(&again.stderr));
}
