//! Issue 10: the revocation guarantee tried as a hostile client and a careless operator would.
//! Connection floods under a low file limit, admin roles and the PKCS#11 module allowlist,
//! export confined to its own files, unknown serials against the live-signing budget, expired
//! responders, audit listings, broken pipes, and a full disk.

use crate::util::*;
use ocsp_proto::{IssuerHashes, Serial};
use ocsp_testpki::{KeyAlg, ResponderOptions};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The body of an OCSP tryLater error response.
const TRY_LATER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn post_ocsp(url: &str, der: &[u8]) -> Http {
    post(&format!("{url}/"), der, Some("application/ocsp-request"))
}

/// Issue 10.2: 1,100 connections that never complete a request (silent, a partial HTTP/2
/// preface, a full h2c preface, HTTP/1.1 headers that never end, h2c PINGs and nothing else)
/// against ocspd limited to 1,024 open files. They are all closed
/// within a bound, staff can revoke meanwhile, public GETs are answered, and accept never runs
/// out of file descriptors.
#[test]
fn a_flood_of_idle_connections_is_closed_and_staff_can_revoke_meanwhile() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_limited(tempfile::tempdir().unwrap(), &["--idle-timeout", "3s"], &[], Some(1024));
    pki.register(&r);
    let a = pki.leaf("a", &[0x0a]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    r.ctl_ok(&["presign"]);
    let mut flood = Command::new("python3")
        .arg(repo().join("tests/py/flood.py"))
        .args(["127.0.0.1", &port_of(&r.url).to_string(), "1100", "25"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(flood.stdout.take().unwrap()).lines().map_while(Result::ok);
    let opened = lines.next().unwrap();
    assert_eq!(opened, "opened 1100", "every connection was made (accepted or in the backlog)");
    // Staff can revoke at once while the public listener is flooded; the admin call returns
    // within its purge wait, not after a client time-out.
    let started = Instant::now();
    let out = r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    assert!(out.contains("revoked"), "{out}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "ocspctl revoke took {took:?} under the flood");
    // A public GET is answered (curl gives up after 10 s): idle connections make room.
    let answer = curl(&[&format!("{}/{}", r.url, base64_of(&pki.request_der(&a)))]);
    assert_eq!(answer.status, 200);
    assert_eq!(status_of(&pki, &a, &answer.body), "revoked");
    // Every hostile connection is closed within the bound (3 s idle, two rounds of the backlog).
    let last = lines.last().unwrap();
    assert_eq!(last, "final 0", "connections the server still held after 25 s");
    assert!(flood.wait().unwrap().success());
    let log = r.log();
    assert!(!log.contains("Too many open files"), "accept ran out of descriptors:\n{}", tail(&log));
    let metrics = curl(&[&r.metrics_url]);
    let body = text(&metrics.body);
    assert!(body.contains("ocspd_connections_closed_idle_total{listener=\"public\"}"), "{body}");
}

fn base64_of(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn tail(log: &str) -> String {
    log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Adds a token with `role` through `ocspd token add` and writes it to a file.
fn token(r: &Responder, name: &str, role: &str) -> String {
    let out = Command::new(bin("ocspd"))
        .arg("--data-dir")
        .arg(r.data())
        .args(["token", "add", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = r.dir.path().join(format!("{name}.token"));
    std::fs::write(&path, text(&out.stdout)).unwrap();
    path.display().to_string()
}

fn ctl_as(r: &Responder, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin("ocspctl")).args(["--admin-url", &r.admin_url, "--token-file", token]).args(args).output().unwrap()
}

/// Issue 10.6: a PKCS#11 module outside ocspd's own allowlist is never loaded (a library whose
/// constructor leaves a mark proves it), tokens have roles, and refused calls are audited.
#[test]
fn pkcs11_modules_come_only_from_the_allowlist_and_token_roles_hold() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    // A shared library that, if ever loaded, writes a file from its constructor.
    let lib = tempfile::tempdir().unwrap();
    let mark = lib.path().join("LOADED");
    let src = lib.path().join("evil.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void evil(void) {{ FILE *f = fopen(\"{}\", \"w\"); if (f) fclose(f); }}\n",
            mark.display()
        ),
    )
    .unwrap();
    let so = lib.path().join("evil.so");
    let cc = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&so).arg(&src).output().unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let uri = format!("pkcs11:token=x;object=y?module-path={}&pin-env=NOPE", so.display());
    let out = pki.add_int(&r, "responder.pem", &uri, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is not allowed by this ocspd"), "{}", text(&out.stderr));
    assert!(!mark.exists(), "the module's constructor ran inside ocspd");

    pki.register(&r);
    let a = pki.leaf("a", &[0x0a]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    // A revoke-only token revokes and reads, and may not register issuers or lift holds.
    let revoker = token(&r, "oncall", "revoke");
    let denied = ctl_as(&r, &revoker, &["issuer", "retire", "int", "--why", "x"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(text(&denied.stderr).contains("may not"), "{}", text(&denied.stderr));
    let ok = ctl_as(&r, &revoker, &["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(ctl_as(&r, &revoker, &["status", "--issuer", "int", "--serial", "0a"]).status.success());
    // A purge-only token (what peers hold) may purge and nothing else, not even read.
    let peer = token(&r, "peer-b", "purge");
    let denied = ctl_as(&r, &peer, &["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    assert_eq!(denied.status.code(), Some(1));
    assert_eq!(ctl_as(&r, &peer, &["issuer", "list"]).status.code(), Some(1));
    let tok = std::fs::read_to_string(&peer).unwrap();
    let purge = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {}", tok.trim()),
        "--data",
        &format!("{{\"issuer\":\"{}\",\"serials\":[\"0a\"]}}", issuer_hex(&pki)),
        &format!("{}/v1/purge", r.admin_url),
    ]);
    assert_eq!(purge.status, 200, "{}", text(&purge.body));
    // Every refusal is on the record, with who and what.
    let audit = r.ctl_ok(&["audit", "--action", "refused"]);
    for want in ["admin refused", "oncall refused", "peer-b refused", "is not allowed by this ocspd", "/retire"] {
        assert!(audit.contains(want), "missing {want:?} in:\n{audit}");
    }
    // The state is what the allowed calls made it: int is still served, 0a revoked.
    assert!(pki.ask(&r.url, &a).contains("revoked"));
}

fn issuer_hex(pki: &TestPki) -> String {
    IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&pki.int.der).unwrap()).key().to_hex()
}

/// Issue 10.7: `ocspctl export --issuer A` touches only A's files; other issuers' files and
/// files the export did not write stay.
#[test]
fn export_of_one_issuer_leaves_every_other_file_alone() {
    let pki = TestPki::new(KeyAlg::P256);
    let other = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    other.register_as(&r, "other");
    for (p, n) in [(&pki, 1u8), (&pki, 2), (&other, 3), (&other, 4)] {
        let leaf = p.leaf(&format!("l{n}"), &[n]);
        r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    }
    r.ctl_ok(&["presign"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("origin");
    let d = dir.to_str().unwrap();
    let all: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "export", "--out", d])).unwrap();
    assert_eq!(all["written"], 8, "{all}");
    std::fs::write(dir.join("README.txt"), "the operator's own file").unwrap();
    let count = || walk(&dir).len();
    assert_eq!(count(), 10, "8 responses, the marker, the operator's file (manifests aside)");
    // Exporting only int: other's four files and the operator's file stay.
    let one: serde_json::Value =
        serde_json::from_str(&r.ctl_ok(&["--json", "export", "--out", d, "--issuer", "int"])).unwrap();
    assert_eq!((one["written"].as_u64(), one["removed"].as_u64()), (Some(4), Some(0)), "{one}");
    assert_eq!(count(), 10);
    // Retiring int and exporting everything removes int's files only.
    r.ctl_ok(&["issuer", "retire", "int", "--why", "test"]);
    let after: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "export", "--out", d])).unwrap();
    assert_eq!((after["written"].as_u64(), after["removed"].as_u64()), (Some(4), Some(4)), "{after}");
    assert!(dir.join("README.txt").exists());
    assert_eq!(count(), 6);
}

/// Files under `dir`, manifests excluded.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".ocspd-export.d") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Issue 10.8: a reader that goes away (`ocspctl ... | head`) ends ocspctl quietly.
#[test]
fn ocspctl_ends_quietly_when_its_reader_goes_away() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    for args in [&["--json", "purge", "status"][..], &["--json", "issuer", "list"][..], &["issuer", "list"][..]] {
        let mut child = Command::new(bin("ocspctl"))
            .args(["--admin-url", &r.admin_url, "--token-file"])
            .arg(r.token_file())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before ocspctl has its answer to print.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "ocspctl {args:?} panicked: {err}");
        assert_eq!(out.status.code(), Some(0), "ocspctl {args:?}: {err}");
    }
}

/// Issue 10.8: unknown serials cannot spend the live-signing budget: beyond
/// --untrusted-signing-rate they get tryLater, and a known certificate is still answered.
#[test]
fn unknown_serials_cannot_drain_the_live_signing_budget() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_with(&["--no-presign", "--memory-cache", "0", "--untrusted-signing-rate", "5"]);
    pki.register(&r);
    let a = pki.leaf("a", &[0x0a]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    let requests: Vec<Vec<u8>> = (0..60).map(|n| request_for_serial(&pki, &format!("{:x}", 0x5000 + n))).collect();
    let started = Instant::now();
    let (mut unknown, mut try_later) = (0, 0);
    for req in &requests {
        let h = post_ocsp(&r.url, req);
        assert_eq!(h.status, 200);
        if h.body == TRY_LATER {
            try_later += 1;
        } else {
            unknown += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // 5 a second with a burst of 5: at most 5 + 5 x elapsed were signed.
    assert!(f64::from(unknown) <= 5.0 + 5.0 * secs + 1.0, "{unknown} unknown answers signed in {secs:.1} s");
    assert!(try_later > 0, "no request was held back");
    // Known certificates are never held back by that bound.
    for _ in 0..20 {
        assert!(pki.ask(&r.url, &a).contains(": good"), "a known certificate was refused");
    }
}

/// Issue 10.8: a responder certificate outside its validity stops only its own issuer
/// (tryLater, a metric), and never stops ocspd from starting with the other issuers.
#[test]
fn an_expired_responder_stops_only_its_issuer() {
    let pki = TestPki::new(KeyAlg::P256);
    let other = TestPki::new(KeyAlg::P256);
    // Nothing pre-signed: every answer is signed now, by the identity of its issuer.
    let r = Responder::start_with(&["--no-presign"]);
    pki.register(&r);
    other.register_as(&r, "other");
    let a = pki.leaf("a", &[0x0a]);
    let b = other.leaf("b", &[0x0b]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    r.ctl_ok(&["cert", "add", "--pem", &b]);
    // While ocspd is down, other's responder certificate expires: its record now holds one
    // that ended yesterday (written to the database as time would have made it).
    let expired =
        other.int.responder("expired responder", &ResponderOptions { valid_days: -1, ..Default::default() }).unwrap();
    expired.write(other.dir.path(), "expired", true).unwrap();
    let dir = r.kill();
    {
        let store = ocsp_store::Store::open(&dir.path().join("data/db")).unwrap();
        let key = IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&other.int.der).unwrap()).key();
        let mut record = store.issuer(&key).unwrap().unwrap();
        record.responder_cert_der = Some(expired.der.clone());
        record.responder_key = format!("file:{}", other.path("expired.key"));
        store.put_issuer(&key, &record, ocsp_store::AuditEntry::new(0, "test", "issuer.backup")).unwrap();
    }
    let r = Responder::start_in(dir, &["--no-presign", "--memory-cache", "0"]);
    assert!(pki.ask(&r.url, &a).contains(": good"), "the other issuer is served");
    let h = post_ocsp(&r.url, &other.request_der(&b));
    assert_eq!(h.body, TRY_LATER, "the issuer with an expired responder answers tryLater");
    let metrics = text(&curl(&[&r.metrics_url]).body);
    assert!(metrics.contains("ocspd_issuer_signing_blocked{issuer=\"other\"} 1"), "{metrics}");
    assert!(metrics.contains("ocspd_issuer_signing_blocked{issuer=\"int\"} 0"), "{metrics}");
    assert!(r.log().contains("responder certificate outside its validity"));
}

/// Issue 10.8: audit listings are bounded: at most 1,000 entries a page (`limit=0` is refused,
/// not unlimited), a few serials per entry with their count, and the next page by `before`.
#[test]
fn audit_listings_are_paginated_and_capped() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let csv = pki.dir.path().join("issued.csv");
    std::fs::write(&csv, (1..=300).map(|n| format!("{n:x}\n")).collect::<String>()).unwrap();
    r.ctl_ok(&["import", "--issuer", "int", "--csv", csv.to_str().unwrap()]);
    r.ctl_ok(&["bulk-revoke", "--issuer", "int", "--reason", "superseded", "--file", csv.to_str().unwrap()]);
    for n in 1..=5 {
        r.ctl_ok(&["revoke", "--issuer", "int", "--serial", &format!("{n:x}"), "--reason", "keyCompromise"]);
    }
    let token = std::fs::read_to_string(r.token_file()).unwrap();
    let get = |q: &str| {
        curl(&["-H", &format!("Authorization: Bearer {}", token.trim()), &format!("{}/v1/audit?{q}", r.admin_url)])
    };
    assert_eq!(get("limit=0").status, 400, "limit=0 is not 'unlimited'");
    assert_eq!(get("limit=5000").status, 400);
    let all: Vec<serde_json::Value> = serde_json::from_slice(&get("limit=1000").body).unwrap();
    let bulk = all.iter().find(|e| e["serial_count"] == 300).expect("the bulk revocation, counted");
    assert!(bulk["serials"].as_array().unwrap().len() <= 20);
    // Pages of two, newest first, meet every entry once.
    let mut seen = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let q = match before {
            Some(b) => format!("limit=2&before={b}"),
            None => "limit=2".into(),
        };
        let page: Vec<serde_json::Value> = serde_json::from_slice(&get(&q).body).unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|e| e["seq"].as_u64().unwrap()));
        before = page.last().and_then(|e| e["seq"].as_u64());
    }
    let want: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seen, want);
    // ocspctl says where the next page starts.
    let text = r.ctl_ok(&["audit", "--limit", "2"]);
    assert!(text.contains("(more: ocspctl audit --before"), "{text}");
    let _ = Serial::from_hex("01");
}

/// A tmpfs of `mb` MiB mounted for one test (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mb: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "mounting a small tmpfs needs root (CI runs as root): {}", text(&out.stderr));
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full; returns it.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).output();
    }
}

fn readyz(url: &str) -> u16 {
    curl(&[&format!("{url}/readyz")]).status
}

/// Issue 10.4: the disk fills up under ocspd (ENOSPC in the pre-signer and in admin writes):
/// /readyz says not ready while reads go on, writes fail with an error, acknowledged
/// revocations stay; once space returns, ocspd takes writes again by itself.
#[test]
fn after_a_full_disk_ocspd_takes_writes_again_when_space_returns() {
    let disk = SmallDisk::mount(64);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(disk.path().join("data")).unwrap();
    std::os::unix::fs::symlink(disk.path().join("data"), dir.path().join("data")).unwrap();
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_limited(dir, &["--db-write-buffer", "1MiB"], &[], None);
    pki.register(&r);
    let a = pki.leaf("a", &[0x0a]);
    let b = pki.leaf("b", &[0x0b]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    r.ctl_ok(&["cert", "add", "--pem", &b]);
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0b", "--reason", "keyCompromise"]);
    r.ctl_ok(&["presign"]);
    assert_eq!(readyz(&r.url), 200);

    let filler = disk.fill();
    // Writes now fail: an import of 50,000 certificates (several MB of log and tables).
    let csv = pki.dir.path().join("many.csv");
    std::fs::write(&csv, (0x10000..0x10000 + 50_000).map(|n| format!("{n:x}\n")).collect::<String>()).unwrap();
    let out = r.ctl(&["import", "--issuer", "int", "--csv", csv.to_str().unwrap()]);
    assert!(!out.status.success(), "an import onto a full disk said it succeeded");
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&r.url) == 200 {
        assert!(Instant::now() < deadline, "/readyz kept saying ready with a full disk");
        std::thread::sleep(Duration::from_millis(200));
    }
    let revoke = r.ctl(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "superseded"]);
    assert!(!revoke.status.success(), "a revocation was acknowledged that could not be written");
    // Reads go on: pre-signed answers are served.
    assert!(pki.ask(&r.url, &a).contains(": good"));
    assert!(pki.ask(&r.url, &b).contains(": revoked"));

    // Space returns: ocspd takes writes again by itself, on the same ports (in place, or after
    // restarting itself: the log says which).
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::panic::catch_unwind(|| readyz(&r.url)).is_ok_and(|s| s == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "ocspd did not recover after space returned:\n{}", tail(&r.log()));
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "superseded"]);
    assert!(out.contains("revoked"), "{out}");
    assert!(pki.ask(&r.url, &a).contains(": revoked"));
    assert!(pki.ask(&r.url, &b).contains(": revoked"), "the revocation acknowledged before the fault stayed");
    let log = r.log();
    let how = ["database writes work again", "restarting ocspd in place"].into_iter().filter(|m| log.contains(m));
    eprintln!("recovered: {:?}", how.collect::<Vec<_>>());
}

/// Issue 23.2 and 23.3: a token cannot grow the audit record, nor memory through listings.
/// A `read` token sends 300 refused calls with a 60,000-character path: the first few are
/// recorded (path clipped), the rest counted, then summarised in one entry; a `--why` of 100 KB
/// is refused and changes nothing; a listing of entries recorded before these bounds stays
/// small, and 64 listings in parallel leave the resident memory where it was.
#[test]
fn a_token_cannot_grow_the_audit_record_or_memory_through_refused_calls_and_listings() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let reader = token(&r, "reader", "read");
    let reader_token = std::fs::read_to_string(&reader).unwrap();
    let long = "a".repeat(60_000);
    for _ in 0..300 {
        let h = curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {}", reader_token.trim()),
            &format!("{}/v1/{long}", r.admin_url),
        ]);
        assert_eq!(h.status, 403);
    }
    let size =
        |dir: &std::path::Path| -> u64 { walk(dir).iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum() };
    let refused = json(&r.ctl_ok(&["--json", "audit", "--action", "refused", "--limit", "1000"]));
    let refused = refused.as_array().unwrap();
    assert!(refused.len() <= 10, "{} refusals recorded one by one", refused.len());
    for e in refused {
        assert!(e["detail"].as_str().unwrap().len() < 2048, "{}", e["detail"]);
    }
    assert!(size(&r.data().join("db")) < 20 << 20, "the database grew to {} bytes", size(&r.data().join("db")));
    // A reason of 100 KB (a command line holds at most 128 KB per argument) is refused;
    // nothing changed.
    let why = "w".repeat(100_000);
    let out = r.ctl(&["cert", "add", "--pem", &pki.leaf("w", &[0x77]), "--why", &why]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("reason"), "{}", text(&out.stderr));
    let status = r.ctl(&["status", "--issuer", "int", "--serial", "77"]);
    assert!(text(&status.stdout).contains("unknown") || !status.status.success(), "{}", text(&status.stdout));
    // Listings: 64 in parallel over 1,000 entries, resident memory flat.
    let pid = r.pid().to_string();
    let rss = |pid: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse().unwrap_or(0)))
            .unwrap_or(0)
    };
    let admin_token = std::fs::read_to_string(r.token_file()).unwrap();
    let list = || {
        curl(&[
            "-H",
            &format!("Authorization: Bearer {}", admin_token.trim()),
            &format!("{}/v1/audit?limit=1000", r.admin_url),
        ])
    };
    let one = list();
    assert_eq!(one.status, 200);
    assert!(one.body.len() < 2 << 20, "a listing of 1,000 entries is {} bytes", one.body.len());
    let before = rss(&pid);
    assert!(before > 0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..64).map(|_| s.spawn(list)).collect();
        for h in handles {
            assert_eq!(h.join().unwrap().status, 200);
        }
    });
    let after = rss(&pid);
    assert!(after < before + 256 * 1024, "RSS went from {before} kB to {after} kB under 64 listings");
}

/// Issue 23.5: keys, PINs and configuration are read only from regular files of bounded size:
/// `/dev/zero`, a FIFO and a folder are refused at once with a clear message.
#[test]
fn operator_paths_that_are_not_small_regular_files_are_refused_at_once() {
    let started = std::time::Instant::now();
    let out = Command::new(bin("ocspd")).args(["check-config", "--config", "/dev/zero"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a regular file"), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(5), "check-config took {:?}", started.elapsed());
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    let fifo = pki.dir.path().join("key.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for key in ["/dev/zero", fifo.to_str().unwrap(), pki.dir.path().to_str().unwrap()] {
        let started = std::time::Instant::now();
        let out = pki.add_int(&r, "responder.pem", key, &[]);
        assert!(!out.status.success(), "{key} accepted");
        assert!(text(&out.stderr).contains("not a regular file"), "{key}: {}", text(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(5), "{key} took {:?}", started.elapsed());
    }
    let issuers = r.ctl_ok(&["--json", "issuer", "list"]);
    assert_eq!(json(&issuers).as_array().map(Vec::len), Some(0), "nothing was registered");
    // A purge configuration that is a device, and one naming a FIFO as a peer's token file.
    let purge = pki.dir.path().join("purge.toml");
    std::fs::write(
        &purge,
        format!(
            "[[target]]\nkind = \"peer\"\nname = \"p\"\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n",
            fifo.display()
        ),
    )
    .unwrap();
    for file in ["/dev/zero", purge.to_str().unwrap()] {
        let started = std::time::Instant::now();
        let out = Command::new(bin("ocspd")).args(["check-config", "--purge-config", file]).output().unwrap();
        assert!(!out.status.success(), "{file} accepted");
        assert!(text(&out.stderr).contains("not a regular file"), "{file}: {}", text(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(5), "{file} took {:?}", started.elapsed());
    }
}

/// Issue 23.7: weak If-None-Match gives 304 on GET; a declared body over the bound is 413 at
/// once; the Bearer scheme is case-insensitive.
#[test]
fn weak_etags_large_declared_bodies_and_the_bearer_scheme_are_handled_as_http_says() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let leaf = pki.leaf("leaf", &[0x33]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    let first = get_request(&r.url, &pki.request_der(&leaf));
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_string();
    let path = format!("{}/{}", r.url, base64_of(&pki.request_der(&leaf)));
    for tag in [etag.clone(), format!("W/{etag}")] {
        let h = curl(&["-H", &format!("If-None-Match: {tag}"), &path]);
        assert_eq!(h.status, 304, "If-None-Match: {tag}");
    }
    let started = std::time::Instant::now();
    let h = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/ocsp-request",
        "-H",
        "Content-Length: 1000000000",
        "--max-time",
        "8",
        "--data-binary",
        "x",
        &format!("{}/", r.url),
    ]);
    assert_eq!(h.status, 413);
    assert!(started.elapsed() < Duration::from_secs(3), "413 after {:?}", started.elapsed());
    let token = std::fs::read_to_string(r.token_file()).unwrap();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let h =
            curl(&["-H", &format!("Authorization: {scheme} {}", token.trim()), &format!("{}/v1/issuers", r.admin_url)]);
        assert_eq!(h.status, 200, "{scheme}");
    }
}

/// Issue 23.6: a busy port is found before anything is created in the data folder, and
/// settings past any sane range are refused by `check-config`.
#[test]
fn a_busy_port_leaves_the_data_folder_untouched_and_settings_have_ranges() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new("timeout")
        .arg("30")
        .arg(bin("ocspd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--admin-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0", "--demo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("binding"), "{}", text(&out.stderr));
    assert!(!data.exists() || walk(&data).is_empty(), "created: {:?}", walk(&data));
    for (flag, value) in [
        ("--presign-threads", "100000"),
        ("--db-cache", "18446744073709551615"),
        ("--memory-cache", "18446744073709551615"),
        ("--max-connections", "4000000000"),
        ("--live-concurrency", "10000000"),
    ] {
        let out = Command::new(bin("ocspd")).args(["check-config", flag, value]).output().unwrap();
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(text(&out.stderr).contains(flag), "{flag}: {}", text(&out.stderr));
    }
}

/// Issue 23.1: a full disk never stops ocspd. With the data folder's disk full (a filler file,
/// then an import and a flood of refused writes), then a few megabytes freed (not enough to
/// reopen the database), and across a kill -9 and a start on the still-full disk: the process
/// stays up, answers from what is stored, and says not ready; it takes writes again only once
/// the filler is gone, and an acknowledged revocation is there throughout.
#[test]
fn a_full_disk_never_stops_ocspd_and_writes_return_only_when_space_really_does() {
    let disk = SmallDisk::mount(150);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(disk.path().join("data")).unwrap();
    std::os::unix::fs::symlink(disk.path().join("data"), dir.path().join("data")).unwrap();
    let pki = TestPki::new(KeyAlg::P256);
    let mut r = Responder::start_limited(dir, &["--db-write-buffer", "1MiB"], &[], None);
    pki.register(&r);
    let (a, b) = (pki.leaf("a", &[0x0a]), pki.leaf("b", &[0x0b]));
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    r.ctl_ok(&["cert", "add", "--pem", &b]);
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0b", "--reason", "keyCompromise"]);
    r.ctl_ok(&["presign"]);
    let filler = disk.fill();
    let csv = pki.dir.path().join("many.csv");
    std::fs::write(&csv, (0x10000..0x10000 + 50_000).map(|n| format!("{n:x}\n")).collect::<String>()).unwrap();
    let out = r.ctl(&["import", "--issuer", "int", "--csv", csv.to_str().unwrap()]);
    assert!(!out.status.success(), "an import onto a full disk said it succeeded");
    for _ in 0..30 {
        let out = r.ctl(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "superseded"]);
        assert!(!out.status.success(), "a revocation was acknowledged that could not be written");
    }
    // A few megabytes come back (what RocksDB itself frees looks like this): not enough to
    // reopen; ocspd must not restart itself into a failure.
    let f = std::fs::OpenOptions::new().write(true).open(&filler).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(6 << 20)).unwrap();
    drop(f);
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        assert!(r.alive(), "ocspd exited with the disk full:\n{}", tail(&r.log()));
        assert!(pki.ask(&r.url, &b).contains(": revoked"), "{}", tail(&r.log()));
        std::thread::sleep(Duration::from_millis(500));
    }
    // Killed and started again on the full disk: it comes up and answers.
    let dir = r.kill();
    let f = std::fs::OpenOptions::new().append(true).open(&filler).unwrap();
    {
        use std::io::Write;
        let mut f = f;
        while f.write_all(&[0x5a; 64 << 10]).is_ok() {}
    }
    let mut r = Responder::start_limited(dir, &["--db-write-buffer", "1MiB"], &[], None);
    assert!(pki.ask(&r.url, &b).contains(": revoked"), "after a start on a full disk:\n{}", tail(&r.log()));
    assert!(pki.ask(&r.url, &a).contains(": good"));
    assert_ne!(readyz(&r.url), 200);
    let out = r.ctl(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "superseded"]);
    assert!(!out.status.success());
    assert!(r.alive());
    // Space returns: writes come back by themselves.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::panic::catch_unwind(|| readyz(&r.url)).is_ok_and(|s| s == 200) {
            break;
        }
        assert!(r.alive(), "ocspd exited:\n{}", tail(&r.log()));
        assert!(Instant::now() < deadline, "ocspd did not take writes again:\n{}", tail(&r.log()));
        std::thread::sleep(Duration::from_millis(500));
    }
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "superseded"]);
    assert!(pki.ask(&r.url, &a).contains(": revoked"));
    assert!(pki.ask(&r.url, &b).contains(": revoked"));
}

/// Issue 23.7: a refused admin call (no token, or a role that may not) keeps its keep-alive
/// connection: two calls on one connection need one connect.
#[test]
fn a_refused_admin_call_keeps_its_connection() {
    let r = Responder::start();
    let reader = token(&r, "reader", "read");
    let reader_token = std::fs::read_to_string(&reader).unwrap();
    let url = format!("{}/v1/revoke", r.admin_url);
    for auth in [String::new(), format!("Authorization: Bearer {}", reader_token.trim())] {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}:%{num_connects} ", "-X", "POST"]);
        // A body of 60,000 bytes: small bodies kept their connection before; this one closed
        // it.
        let body = r.dir.path().join("body.json");
        let why = "a".repeat(60_000);
        std::fs::write(&body, format!(r#"{{"issuer":"x","serial":"01","reason":"keyCompromise","why":"{why}"}}"#))
            .unwrap();
        let data = format!("@{}", body.display());
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &data]);
        if !auth.is_empty() {
            cmd.args(["-H", &auth]);
        }
        let out = cmd.args([&url, &url]).output().unwrap();
        let said = text(&out.stdout);
        let codes: Vec<&str> = said.split_whitespace().collect();
        let want = if auth.is_empty() { "401" } else { "403" };
        assert_eq!(codes, vec![format!("{want}:1"), format!("{want}:0")], "{said}");
    }
}
