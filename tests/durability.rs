//! An acknowledged revocation survives `kill -9`: ocspd is killed twenty times in the middle of
//! bulk revocations; every revocation acknowledged before each kill is on disk afterwards, and
//! the database opens cleanly every time.

use crate::util::*;
use ocsp_proto::{HashAlg, IssuerHashes, Serial};
use ocsp_store::{State, Store};
use ocsp_testpki::KeyAlg;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const KILLS: usize = 20;
const PER_ROUND: u32 = 1_500;

#[test]
fn acknowledged_revocations_survive_kill_9() {
    let pki = TestPki::new(KeyAlg::P256);
    let mut r = Responder::start();
    pki.register(&r);
    let issuer = IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&pki.int.der).unwrap()).key();
    let _ = HashAlg::Sha1;
    let csv = pki.dir.path().join("issued.csv");
    let total = PER_ROUND * KILLS as u32;
    std::fs::write(&csv, (1..=total).map(|n| format!("{n:x}\n")).collect::<String>()).unwrap();
    r.ctl_ok(&["import", "--issuer", "int", "--csv", csv.to_str().unwrap()]);

    let mut killed_mid_run = 0;
    for round in 0..KILLS {
        let first = round as u32 * PER_ROUND + 1;
        let serials: Vec<u32> = (first..first + PER_ROUND).collect();
        let file = pki.dir.path().join(format!("round{round}.txt"));
        std::fs::write(&file, serials.iter().map(|n| format!("{n:x}\n")).collect::<String>()).unwrap();

        let mut ctl = Command::new(bin("ocspctl"))
            .args(["--admin-url", &r.admin_url, "--token-file"])
            .arg(r.token_file())
            .args(["--json", "bulk-revoke", "--issuer", "int", "--reason", "keyCompromise", "--batch", "50", "--file"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = ctl.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            let mut acked = 0;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(n) = v["acknowledged"].as_u64() {
                        acked = n;
                        let _ = tx.send(n);
                    }
                }
            }
            acked
        });
        // Kill once a few batches are through, at a point that moves from round to round.
        let want = 1 + (round as u64 * 7) % 20;
        while let Ok(n) = rx.recv_timeout(Duration::from_secs(30)) {
            if n >= want * 50 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis((round as u64 * 3) % 11));
        let dir = r.kill();
        let _ = ctl.wait();
        let acknowledged = reader.join().unwrap() as usize;
        assert!(acknowledged > 0, "round {round}: nothing was acknowledged before the kill");
        if acknowledged < serials.len() {
            killed_mid_run += 1;
        }

        {
            let store = Store::open(&dir.path().join("data/db")).unwrap_or_else(|e| panic!("round {round}: {e}"));
            for n in &serials[..acknowledged] {
                let serial = Serial::from_hex(&format!("{n:x}")).unwrap();
                let rec = store.status(&issuer, &serial).unwrap().unwrap();
                assert!(
                    matches!(rec.state, State::Revoked { .. }),
                    "round {round}: serial {n:x} was acknowledged ({acknowledged} acknowledged) but is not revoked after kill -9"
                );
            }
            // Earlier rounds stay revoked; later ones are untouched.
            let untouched = Serial::from_hex(&format!("{:x}", first + PER_ROUND)).unwrap();
            if round + 1 < KILLS {
                assert!(matches!(store.status(&issuer, &untouched).unwrap().unwrap().state, State::Good));
            }
        }
        r = Responder::start_in(dir, &[]);
    }
    assert!(killed_mid_run >= KILLS / 2, "only {killed_mid_run} of {KILLS} kills landed mid-run");
    // The server answers after the last restart, from the same database.
    let status = r.ctl_ok(&["--json", "status", "--issuer", "int", "--serial", "1"]);
    assert!(status.contains("revoked"), "{status}");
}

fn presign_signed(r: &Responder) -> u64 {
    let m = text(&curl(&[&r.metrics_url]).body);
    m.lines()
        .find(|l| l.starts_with("ocspd_presign_signed_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// kill -9 in the middle of a pre-signing pass: the database opens cleanly, every stored
/// response is whole and current, and after a restart the pass finishes the rest.
#[test]
fn a_presign_pass_resumes_after_kill_9() {
    const N: u32 = 20_000;
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_with(&["--no-presign"]);
    pki.register(&r);
    let issuer = IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&pki.int.der).unwrap()).key();
    let csv = pki.dir.path().join("issued.csv");
    std::fs::write(&csv, (1..=N).map(|n| format!("{n:x}\n")).collect::<String>()).unwrap();
    r.ctl_ok(&["import", "--issuer", "int", "--csv", csv.to_str().unwrap()]);
    let dir = r.kill();

    // The pass at start; killed once part of it is stored.
    let r = Responder::start_in(dir, &[]);
    let started = std::time::Instant::now();
    while presign_signed(&r) < 2_000 {
        assert!(started.elapsed() < Duration::from_secs(60), "the pass at start does not sign");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = r.kill();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let count_stored = |dir: &tempfile::TempDir| {
        let store = Store::open(&dir.path().join("data/db")).expect("the database opens cleanly after kill -9");
        let mut stored = 0;
        for n in 1..=N {
            let serial = Serial::from_hex(&format!("{n:x}")).unwrap();
            for alg in HashAlg::ALL {
                if let Some(resp) = store.response(&issuer, &serial, alg).unwrap() {
                    let (status, basic) = ocsp_proto::decode_response(&resp.der).expect("a stored response is whole");
                    assert_eq!(status, rasn_ocsp_status_successful());
                    assert!(basic.is_some());
                    assert!(resp.next_update > now && resp.this_update <= now, "serial {n:x}: not current");
                    stored += 1;
                }
            }
        }
        stored
    };
    let partial = count_stored(&dir);
    assert!(partial > 0 && partial < 2 * N as usize, "killed mid-pass: {partial} of {} stored", 2 * N);

    let r = Responder::start_in(dir, &[]);
    r.ctl_ok(&["presign"]);
    let out = openssl_ocsp(&[
        "-issuer",
        &pki.path("int.pem"),
        "-serial",
        "0x4e20",
        "-url",
        &r.url,
        "-CAfile",
        &pki.path("chain.pem"),
        "-no_nonce",
    ]);
    assert!(text(&out.stdout).contains(": good"), "{}{}", text(&out.stdout), text(&out.stderr));
    let dir = r.kill();
    assert_eq!(count_stored(&dir), 2 * N as usize, "after the restart every response is signed");
}

fn rasn_ocsp_status_successful() -> rasn_ocsp::OcspResponseStatus {
    rasn_ocsp::OcspResponseStatus::Successful
}
