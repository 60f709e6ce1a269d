//! CRLs from the same database as the OCSP answers, checked by clients we did not write:
//! `openssl crl` and `openssl verify -crl_check`, Python `cryptography`, and pkilint's CRL
//! linter (BR profile).

use crate::util::*;
use ocsp_testpki::KeyAlg;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const SHARDS: u32 = 4;

/// The shard status list, as `ocspctl crl status --json` prints it.
fn shards(r: &Responder) -> Vec<serde_json::Value> {
    json(&r.ctl_ok(&["--json", "crl", "status"])).as_array().unwrap().clone()
}

/// Waits until every shard is signed and nothing is pending; returns the status list.
fn settled(r: &Responder, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let list = shards(r);
        if !list.is_empty() && list.iter().all(|s| s["number"].as_u64().unwrap() > 0 && !s["dirty"].as_bool().unwrap())
        {
            return list;
        }
        assert!(Instant::now() < deadline, "CRLs not settled: {list:?}\n{}", r.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GETs a served CRL into `dir/name`; returns the HTTP answer.
fn fetch(url: &str, dir: &std::path::Path, name: &str) -> Http {
    let http = curl(&[url]);
    std::fs::write(dir.join(name), &http.body).unwrap();
    http
}

#[test]
fn sharded_crls_are_signed_by_the_issuer_served_and_agree_with_ocsp() {
    // The responder's default is 2 shards; the issuer is given 4 of its own.
    let r = Responder::start_with(&["--crl-shards", "2", "--crl-within", "5s", "--crl-coalesce", "1s"]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&r);
    // The delegated responder's key cannot sign CRLs; the issuer's own key can.
    let refused = r.ctl(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("responder.key")]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("cRLSign") || text(&refused.stderr).contains("not the key"),
        "{}",
        text(&refused.stderr)
    );
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key"), "--shards", "4"]);
    // The count is fixed: certificates name their shard's URL.
    let moved = r.ctl(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key"), "--shards", "8"]);
    assert!(!moved.status.success() && text(&moved.stderr).contains("has 4 shards"), "{}", text(&moved.stderr));
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);

    let urls: Vec<String> = serde_json::from_str(&r.ctl_ok(&["crl", "urls"])).unwrap();
    assert_eq!(urls.len(), SHARDS as usize);
    let base = r.url.trim_end_matches('/');
    for (i, u) in urls.iter().enumerate() {
        assert_eq!(u, &format!("{base}/crl/int/{i}.crl"), "each URL is where the shard is served");
    }

    // Leaves naming their shard's URL (openssl matches it with the CRL's IDP).
    let mut leaves = Vec::new();
    for n in 1..=24u8 {
        let serial = vec![0x51, n];
        let shard = ocsp_proto::shard_of(&serial, SHARDS);
        let leaf = pki.int.leaf_with_crl(&format!("leaf{n}.test"), &serial, &urls[shard as usize]).unwrap();
        leaf.write(pki.dir.path(), &format!("leaf{n}"), false).unwrap();
        r.ctl_ok(&["cert", "add", "--pem", &pki.path(&format!("leaf{n}.pem"))]);
        leaves.push((n, serial, shard));
    }
    // Reasons as BR 7.2.2 wants them: keyCompromise and superseded coded, none left out.
    let reasons = [(1u8, Some("keyCompromise")), (2, Some("superseded")), (3, None), (7, Some("cessationOfOperation"))];
    let hex = |serial: &[u8]| serial.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for (n, reason) in reasons {
        let serial = hex(&leaves.iter().find(|l| l.0 == n).unwrap().1);
        r.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serial, "--reason", reason.unwrap_or("unspecified")]);
    }
    let list = settled(&r, Duration::from_secs(20));
    assert_eq!(list.len(), SHARDS as usize);

    // What OCSP says of each revoked certificate is what the CRLs must say.
    let mut want: BTreeMap<u32, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (n, reason) in reasons {
        let (_, serial, shard) = leaves.iter().find(|l| l.0 == n).unwrap();
        let hex = hex(serial);
        let status = json(&r.ctl_ok(&["--json", "status", "--issuer", "int", "--serial", &hex]));
        let time =
            status["revocation_time"].as_str().unwrap_or_else(|| panic!("no revocation time in {status}")).to_string();
        let reason = reason.map(|r| match r {
            "keyCompromise" => "key_compromise",
            "superseded" => "superseded",
            _ => "cessation_of_operation",
        });
        want.entry(*shard).or_default().insert(hex, serde_json::json!([time, reason]));
    }

    let dir = tempfile::tempdir().unwrap();
    for (i, url) in urls.iter().enumerate() {
        let name = format!("{i}.crl");
        let http = fetch(url, dir.path(), &name);
        assert_eq!(http.status, 200);
        assert_eq!(http.header("content-type"), Some("application/pkix-crl"));
        assert!(http.header("cache-control").is_some_and(|c| c.contains("max-age=")));
        assert!(http.header("cache-tag").is_some_and(|t| t.contains(&format!("-crl-{i}"))));
        let etag = http.header("etag").unwrap().to_string();
        let again = curl(&["-H", &format!("If-None-Match: {etag}"), url]);
        assert_eq!(again.status, 304, "the ETag of the CRL gives a 304");
        let crl = dir.path().join(&name);
        let crl = crl.to_str().unwrap();

        // openssl: the signature verifies with the issuer.
        let out = run(Command::new("openssl").args([
            "crl",
            "-inform",
            "DER",
            "-in",
            crl,
            "-CAfile",
            &pki.path("chain.pem"),
            "-noout",
        ]));
        assert!(text(&out.stderr).contains("verify OK"), "openssl crl: {}{}", text(&out.stdout), text(&out.stderr));

        // Python cryptography: IDP, number, times, entries, reasons.
        let expect = serde_json::Value::Object(want.get(&(i as u32)).cloned().unwrap_or_default()).to_string();
        let out = python_crl(&["--crl", crl, "--issuer", &pki.path("int.pem"), "--url", url, "--expect", &expect]);
        assert!(out.status.success(), "check_crl.py shard {i}: {}{}", text(&out.stdout), text(&out.stderr));

        // pkilint: no findings under the BR profile.
        lint_crl(crl);
    }

    // openssl verify -crl_check: a good leaf passes, a revoked one is refused, each with the
    // shard its cRLDistributionPoints names.
    for (n, expect_ok) in [(4u8, true), (1, false), (3, false)] {
        let shard = leaves.iter().find(|l| l.0 == n).unwrap().2;
        let crl_pem = dir.path().join(format!("{shard}.pem"));
        let out = run(Command::new("openssl").args([
            "crl",
            "-inform",
            "DER",
            "-in",
            dir.path().join(format!("{shard}.crl")).to_str().unwrap(),
            "-out",
            crl_pem.to_str().unwrap(),
        ]));
        assert!(out.status.success());
        let leaf = pki.path(&format!("leaf{n}.pem"));
        let out = run(Command::new("openssl").args([
            "verify",
            "-crl_check",
            "-CAfile",
            &pki.path("chain.pem"),
            "-CRLfile",
            crl_pem.to_str().unwrap(),
            &leaf,
        ]));
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if expect_ok {
            assert!(out.status.success() && said.contains(": OK"), "leaf{n}: {said}");
        } else {
            assert!(!out.status.success() && said.contains("certificate revoked"), "leaf{n}: {said}");
        }
    }

    // One truth: ocspctl crl verify agrees.
    let out = r.ctl_ok(&["crl", "verify"]);
    assert!(out.contains("they agree"), "{out}");

    // A revocation is in its served shard within the bound (5 s here); the number went up.
    let (n, serial, shard) = leaves.iter().find(|l| l.0 == 9).unwrap().clone();
    let before = list.iter().find(|s| s["shard"] == shard).unwrap()["number"].as_u64().unwrap();
    let started = Instant::now();
    let hex = hex(&serial);
    let _ = n;
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", &hex, "--reason", "keyCompromise"]);
    loop {
        let http = curl(&[&urls[shard as usize]]);
        std::fs::write(dir.path().join("now.crl"), &http.body).unwrap();
        let out = run(Command::new("openssl").args([
            "crl",
            "-inform",
            "DER",
            "-in",
            dir.path().join("now.crl").to_str().unwrap(),
            "-noout",
            "-text",
        ]));
        if text(&out.stdout).to_uppercase().contains(&format!("SERIAL NUMBER: {}", hex.to_uppercase())) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "not in the served CRL within 5 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = settled(&r, Duration::from_secs(10));
    let number = after.iter().find(|s| s["shard"] == shard).unwrap()["number"].as_u64().unwrap();
    assert!(number > before, "CRLNumber {number} after {before}");
    let out = r.ctl_ok(&["crl", "verify"]);
    assert!(out.contains("they agree"), "{out}");

    // `ocspctl export` writes the shards beside the responses, byte for byte as served.
    let export = tempfile::tempdir().unwrap();
    let folder = export.path().join("origin");
    r.ctl_ok(&["export", "--out", folder.to_str().unwrap()]);
    for (i, url) in urls.iter().enumerate() {
        let file = std::fs::read(folder.join(format!("crl/int/{i}.crl"))).unwrap();
        assert_eq!(file, curl(&[url]).body, "shard {i} exported as served");
    }
}

#[test]
fn crl_numbers_never_go_back_or_repeat_across_kill_9() {
    let r = Responder::start_with(&["--crl-within", "2s", "--crl-coalesce", "0s"]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&r);
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);
    // Enough revoked certificates that a regeneration takes a while to sign and store.
    let serials: Vec<String> = (0..20_000u32).map(|n| format!("6{n:07x}")).collect();
    let file = r.dir.path().join("serials.txt");
    std::fs::write(&file, serials.join("\n")).unwrap();
    r.ctl_ok(&["import", "--issuer", "int", "--csv", file.to_str().unwrap()]);
    let mut seen = settled(&r, Duration::from_secs(30))[0]["number"].as_u64().unwrap();
    let mut r = r;
    for round in 0..5usize {
        // Revoke a batch, then kill -9 at a varying moment of the regeneration it starts.
        let batch: Vec<String> = serials[round * 2000..(round + 1) * 2000].to_vec();
        std::fs::write(&file, batch.join("\n")).unwrap();
        r.ctl_ok(&["bulk-revoke", "--issuer", "int", "--file", file.to_str().unwrap(), "--reason", "superseded"]);
        std::thread::sleep(Duration::from_millis(200 + 250 * round as u64));
        let served = shards(&r)[0]["number"].as_u64().unwrap();
        let dir = r.kill();
        r = Responder::start_in(dir, &["--crl-within", "2s", "--crl-coalesce", "0s"]);
        // After the restart the changes not yet in a CRL are read again: wait until the CRL
        // agrees with the database, then look at its number.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = r.ctl(&["crl", "verify"]);
            if out.status.success() && text(&out.stdout).contains("they agree") {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: {}{}", text(&out.stdout), text(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
        let list = settled(&r, Duration::from_secs(30));
        let number = list[0]["number"].as_u64().unwrap();
        assert!(number > seen, "round {round}: CRLNumber {number} after {seen} was served");
        assert!(number >= served, "round {round}: CRLNumber {number} after {served} was served before kill -9");
        seen = number;
    }
}

/// Runs tests/py/check_crl.py.
fn python_crl(args: &[&str]) -> std::process::Output {
    run(Command::new("python3").arg(repo().join("tests/py/check_crl.py")).args(args))
}

/// pkilint's CRL linter under the BR profile; fails the test on any finding at all (every
/// severity down to INFO is reported).
fn lint_crl(crl: &str) {
    let out = run(Command::new("python3").args([
        "-m",
        "pkilint.bin.lint_crl",
        "lint",
        "-t",
        "CRL",
        "-p",
        "BR",
        "-s",
        "INFO",
        "--document-format",
        "DER",
        crl,
    ]));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "pkilint {crl}: {said}");
}

#[test]
fn a_crl_key_that_cannot_sign_stops_only_its_issuers_crls_and_can_be_unset_or_replaced_without_a_restart() {
    let r = Responder::start();
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&r);
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);
    settled(&r, Duration::from_secs(30));
    let served_before = curl(&[&format!("{}/crl/int/0.crl", r.url)]).body;
    let good_key = std::fs::read(pki.dir.path().join("int.key")).unwrap();
    let dir = r.kill();
    // The issuer's key file now holds another key (the delegated responder's).
    std::fs::copy(pki.dir.path().join("responder.key"), pki.dir.path().join("int.key")).unwrap();
    // ocspd starts anyway: OCSP for every issuer, the admin API, the stored CRL served.
    let r = Responder::start_in(dir, &[]);
    let leaf = pki.leaf("leaf", &[0x51]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    assert!(pki.ask(&r.url, &leaf).contains(": good"), "OCSP goes on");
    let stored = curl(&[&format!("{}/crl/int/0.crl", r.url)]);
    assert_eq!(stored.status, 200, "the stored shard is served at once");
    assert_eq!(stored.body, served_before, "the stored shard, as it was");
    let ready = curl(&[&format!("{}/readyz", r.url)]);
    let said = text(&ready.body);
    assert_eq!(ready.status, 200, "{said}");
    assert!(said.contains("degraded") && said.contains("CRL signing stopped for int"), "{said}");
    let metrics = text(&curl(&[&r.metrics_url]).body);
    assert!(metrics.contains("ocspd_crl_signing_stopped{issuer=\"int\"} 1"), "{metrics}");
    // A revocation while the key cannot sign: it must be on the shard once a key signs again.
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "51", "--reason", "keyCompromise"]);
    // Staff unset the key: no longer degraded, nothing signed for it.
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--unset", "--why", "key lost"]);
    let said = text(&curl(&[&format!("{}/readyz", r.url)]).body);
    assert_eq!(said, "ready\n", "{said}");
    let audit = r.ctl_ok(&["audit", "--action", "issuer.crl-key-unset"]);
    assert!(audit.contains("key lost"), "{audit}");
    // The right key again, without a restart: signed again.
    std::fs::write(pki.dir.path().join("int.key"), good_key).unwrap();
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = curl(&[&format!("{}/crl/int/0.crl", r.url)]).body;
        if now != served_before && !now.is_empty() && crl_lists(&pki, &now, "51", None).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the shard was never signed again\n{}", r.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let ready = text(&curl(&[&format!("{}/readyz", r.url)]).body);
    assert_eq!(ready, "ready\n");
    // Unsetting a key that is not set changes nothing and says so.
    let out = r.ctl(&["issuer", "crl-key", "--name", "int", "--unset"]);
    assert!(out.status.success(), "the key is set: unset works");
    let again = r.ctl(&["issuer", "crl-key", "--name", "int", "--unset"]);
    assert!(!again.status.success() && text(&again.stderr).contains("no CRL key"), "{}", text(&again.stderr));
}

#[test]
fn a_revocation_made_while_the_crl_key_fails_is_on_the_crl_once_the_key_works_even_across_restarts() {
    // A fixed origin: a restart on new ports would sign every shard again for its new URL,
    // hiding what this test looks for.
    const ORIGIN: &[&str] = &["--crl-base-url", "http://crl.test"];
    let r = Responder::start_with(ORIGIN);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&r);
    let leaf = pki.leaf("leaf", &[0x52]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);
    settled(&r, Duration::from_secs(30));
    let good_key = std::fs::read(pki.dir.path().join("int.key")).unwrap();
    let dir = r.kill();
    std::fs::copy(pki.dir.path().join("responder.key"), pki.dir.path().join("int.key")).unwrap();
    let r = Responder::start_in(dir, ORIGIN);
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "52", "--reason", "keyCompromise"]);
    std::thread::sleep(Duration::from_secs(1));
    // Killed while the key fails; started again with the key repaired.
    let dir = r.kill();
    std::fs::write(pki.dir.path().join("int.key"), good_key).unwrap();
    let r = Responder::start_in(dir, ORIGIN);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let der = curl(&[&format!("{}/crl/int/0.crl", r.url)]).body;
        if crl_lists(&pki, &der, "52", None).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the revocation never reached the CRL\n{}", r.log());
        std::thread::sleep(Duration::from_millis(300));
    }
}
