//! The admin API: authenticated, on its own listener, absent from the public one; and ocspctl's
//! bad calls are refused with a clear message and change nothing.

use crate::util::*;
use ocsp_testpki::KeyAlg;

fn setup() -> (TestPki, Responder, String) {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let leaf = pki.leaf("leaf", &[0x0a, 0x0b]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    (pki, r, leaf)
}

fn status(r: &Responder) -> String {
    r.ctl_ok(&["status", "--issuer", "int", "--serial", "0a0b"])
}

#[test]
fn admin_calls_need_the_token_and_refusals_are_logged() {
    let (_pki, r, _leaf) = setup();
    // No credential.
    let http = curl(&[&format!("{}/v1/issuers", r.admin_url)]);
    assert_eq!(http.status, 401);
    // A wrong one, through ocspctl.
    let wrong = r.dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let out = std::process::Command::new(bin("ocspctl"))
        .args(["--admin-url", &r.admin_url, "--token-file", wrong.to_str().unwrap()])
        .args(["revoke", "--issuer", "int", "--serial", "0a0b", "--reason", "superseded"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing or wrong admin token"), "{}", text(&out.stderr));
    assert!(status(&r).contains(": good"));
    let log = r.log();
    assert!(
        log.contains("admin call refused")
            && log.contains("credential=\"missing\"")
            && log.contains("credential=\"wrong\""),
        "{log}"
    );
}

#[test]
fn public_listener_has_no_admin_routes() {
    let (_pki, r, _leaf) = setup();
    let token = std::fs::read_to_string(r.data().join("admin.token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let body = r#"{"issuer":"int","serial":"0a0b","reason":"superseded"}"#;
    for path in ["/v1/revoke", "/v1/issuers", "/v1/status?issuer=int&serial=0a0b"] {
        let url = format!("{}{path}", r.url);
        for http in [
            curl(&["-H", &auth, &url]),
            curl(&["-X", "POST", "-H", &auth, "-H", "Content-Type: application/json", "--data", body, &url]),
        ] {
            assert!(
                http.status != 200 || http.header("content-type") == Some("application/ocsp-response"),
                "{path}: {http:?}"
            );
            assert!(!text(&http.body).contains("\"issuer\""), "{path}: admin JSON on the public port");
        }
    }
    assert!(status(&r).contains(": good"));
}

#[test]
fn bad_cli_calls_say_what_is_wrong_and_change_nothing() {
    let (pki, r, _leaf) = setup();
    let cases: [(&[&str], i32, &str); 6] = [
        (&["revoke", "--issuer", "int", "--serial", "0a0b", "--reason", "stolen"], 2, "stolen"),
        (&["revoke", "--issuer", "int", "--serial", "zz", "--reason", "superseded"], 2, "zz"),
        (&["revoke", "--issuer", "int", "--serial", "0a0b", "--time", "yesterday"], 2, "yesterday"),
        (&["revoke", "--issuer", "nope", "--serial", "0a0b"], 1, "nope"),
        (&["revoke", "--issuer", "int", "--serial", "ffff"], 1, "never recorded"),
        (&["revoke", "--issuer", "int", "--serial", "0a0b", "--time", "2999-01-01T00:00:00Z"], 1, "future"),
    ];
    for (args, code, needle) in cases {
        let out = r.ctl(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
        assert!(status(&r).contains(": good"), "{args:?} changed the status");
    }
    // clap's own usage errors exit 2 as well.
    assert_eq!(r.ctl(&["revoke", "--serial", "0a0b"]).status.code(), Some(2));

    // A key that does not match its certificate is refused, naming the rule.
    let out = r.ctl(&[
        "issuer",
        "add",
        "--name",
        "int2",
        "--cert",
        &pki.path("int.pem"),
        "--responder-cert",
        &pki.path("responder.pem"),
        "--key",
        &pki.path("root.key"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does not match"), "{}", text(&out.stderr));

    // Revocation is final: another reason is refused, keyCompromise is allowed.
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a0b", "--reason", "superseded"]);
    let out = r.ctl(&["revoke", "--issuer", "int", "--serial", "0a0b", "--reason", "cessationOfOperation"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already revoked (superseded)"), "{}", text(&out.stderr));
    assert!(status(&r).contains("superseded"));
    let out = r.ctl_ok(&["--json", "revoke", "--issuer", "int", "--serial", "0a0b", "--reason", "keyCompromise"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reason"], "keyCompromise");
    assert_eq!(v["outcome"], "changed");
}

#[test]
fn readyz_says_ready_only_with_an_issuer_to_answer_for() {
    let r = Responder::start();
    let not_ready = curl(&[&format!("{}/readyz", r.url)]);
    assert_eq!(not_ready.status, 503);
    assert!(text(&not_ready.body).contains("no issuer"), "{}", text(&not_ready.body));
    assert_eq!(curl(&[&format!("{}/healthz", r.url)]).status, 200, "alive all the same");
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&r);
    let ready = curl(&[&format!("{}/readyz", r.url)]);
    assert_eq!((ready.status, ready.header("cache-control")), (200, Some("max-age=0, no-cache")));
}

/// Metrics name the issuers and show the load: they are served on their own listener, never on
/// the public one.
#[test]
fn metrics_are_served_on_their_own_listener_not_the_public_one() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    // On the public port "/metrics" is only a GET path that is no OCSP request.
    let public = curl(&[&format!("{}/metrics", r.url)]);
    assert_eq!(public.header("content-type"), Some("application/ocsp-response"));
    assert!(!text(&public.body).contains("ocspd_"), "the public listener served metrics");
    let private = curl(&[&r.metrics_url]);
    assert_eq!(private.status, 200);
    let body = text(&private.body);
    assert!(body.contains("ocspd_requests_total") && body.contains("issuer=\"int\""), "{body}");
    assert!(!r.metrics_url.starts_with(&r.url) && !r.metrics_url.starts_with(&r.admin_url));
}
