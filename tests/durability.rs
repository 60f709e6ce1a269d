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
    let issuer =
        IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&pki.int.der).unwrap()).key();
    let _ = HashAlg::Sha1;
    let csv = pki.dir.path().join("issued.csv");
    let total = PER_ROUND * KILLS as u32;
    std::fs::write(
        &csv,
        (1..=total).map(|n| format!("{n:x}\n")).collect::<String>(),
    )
    .unwrap();
    r.ctl_ok(&["import", "--issuer", "int", "--csv", csv.to_str().unwrap()]);

    let mut killed_mid_run = 0;
    for round in 0..KILLS {
        let first = round as u32 * PER_ROUND + 1;
        let serials: Vec<u32> = (first..first + PER_ROUND).collect();
        let file = pki.dir.path().join(format!("round{round}.txt"));
        std::fs::write(
            &file,
            serials
                .iter()
                .map(|n| format!("{n:x}\n"))
                .collect::<String>(),
        )
        .unwrap();

        let mut ctl = Command::new(bin("ocspctl"))
            .args(["--admin-url", &r.admin_url, "--token-file"])
            .arg(r.token_file())
            .args([
                "--json",
                "bulk-revoke",
                "--issuer",
                "int",
                "--reason",
                "keyCompromise",
                "--batch",
                "50",
                "--file",
            ])
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
        assert!(
            acknowledged > 0,
            "round {round}: nothing was acknowledged before the kill"
        );
        if acknowledged < serials.len() {
            killed_mid_run += 1;
        }

        {
            let store = Store::open(&dir.path().join("data/db"))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
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
                assert!(matches!(
                    store.status(&issuer, &untouched).unwrap().unwrap().state,
                    State::Good
                ));
            }
        }
        r = Responder::start_in(dir, &[]);
    }
    assert!(
        killed_mid_run >= KILLS / 2,
        "only {killed_mid_run} of {KILLS} kills landed mid-run"
    );
    // The server answers after the last restart, from the same database.
    let status = r.ctl_ok(&["--json", "status", "--issuer", "int", "--serial", "1"]);
    assert!(status.contains("revoked"), "{status}");
}
