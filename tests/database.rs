//! The revocation database through ocspctl: imports, bulk revocation, holds, backdating rules,
//! issuer lifecycle and the audit record.

use crate::util::*;
use ocsp_testpki::KeyAlg;
use serde_json::Value;

fn status_of(r: &Responder, serial: &str) -> Value {
    json(&r.ctl_ok(&["--json", "status", "--issuer", "int", "--serial", serial]))
}

fn setup() -> (TestPki, Responder) {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    (pki, r)
}

#[test]
fn imports_from_folder_index_and_csv_are_idempotent() {
    let (pki, r) = setup();
    // A folder: two PEM leaves, one DER leaf, and a file that is not a certificate type.
    let folder = pki.dir.path().join("issued");
    std::fs::create_dir(&folder).unwrap();
    for (i, serial) in [[0x51u8], [0x52], [0x53]].iter().enumerate() {
        let leaf = pki.int.leaf(&format!("f{i}.test"), serial).unwrap();
        if i == 2 {
            std::fs::write(folder.join("f2.der"), &leaf.der).unwrap();
        } else {
            leaf.write(&folder, &format!("f{i}"), false).unwrap();
        }
    }
    std::fs::write(folder.join("notes.txt"), "not a certificate").unwrap();
    let dir = folder.to_str().unwrap();
    let first = json(&r.ctl_ok(&["--json", "import", "--dir", dir]));
    assert_eq!(first["added"], 3, "{first}");
    let again = json(&r.ctl_ok(&["--json", "import", "--dir", dir]));
    assert_eq!((again["added"].as_u64(), again["already"].as_u64()), (Some(0), Some(3)), "{again}");
    assert_eq!(status_of(&r, "53")["status"], "good");

    // OpenSSL's index.txt: valid, revoked with reasons (including keyTime), expired.
    let index = pki.dir.path().join("index.txt");
    std::fs::write(
        &index,
        "V\t301231235959Z\t\t61\tunknown\t/CN=v\n\
         R\t301231235959Z\t250102030405Z,keyCompromise\t62\tunknown\t/CN=r\n\
         R\t301231235959Z\t250102030405Z,superseded\t63\tunknown\t/CN=s\n\
         R\t301231235959Z\t250301000000Z,keyTime,250101000000Z\t64\tunknown\t/CN=k\n\
         E\t200101000000Z\t\t65\tunknown\t/CN=e\n",
    )
    .unwrap();
    let idx = index.to_str().unwrap();
    let imported = json(&r.ctl_ok(&["--json", "import", "--issuer", "int", "--index", idx]));
    assert_eq!((imported["added"].as_u64(), imported["revoked"].as_u64()), (Some(5), Some(3)), "{imported}");
    let twice = json(&r.ctl_ok(&["--json", "import", "--issuer", "int", "--index", idx]));
    assert_eq!((twice["added"].as_u64(), twice["revoked"].as_u64()), (Some(0), Some(0)), "{twice}");
    assert_eq!(status_of(&r, "61")["status"], "good");
    let k = status_of(&r, "62");
    assert_eq!((k["status"].as_str(), k["reason"].as_str()), (Some("revoked"), Some("keyCompromise")));
    assert!(k["revocation_time"].as_str().unwrap().starts_with("2025-01-02T03:04:05"), "{k}");
    let kt = status_of(&r, "64");
    assert!(
        kt["revocation_time"].as_str().unwrap().starts_with("2025-01-01T00:00:00"),
        "keyTime is the compromise time: {kt}"
    );
    assert_eq!(status_of(&r, "63")["reason"], "superseded");
    assert_eq!(status_of(&r, "65")["status"], "good");

    // CSV with a header; a bad line stops the import before anything is sent.
    let csv = pki.dir.path().join("serials.csv");
    std::fs::write(&csv, "serial,not_after\n71,2030-01-01T00:00:00Z\n72\n").unwrap();
    let c = csv.to_str().unwrap();
    assert_eq!(json(&r.ctl_ok(&["--json", "import", "--issuer", "int", "--csv", c]))["added"], 2);
    assert_eq!(json(&r.ctl_ok(&["--json", "import", "--issuer", "int", "--csv", c]))["added"], 0);
    std::fs::write(&csv, "73\nnot-a-serial\n").unwrap();
    let out = r.ctl(&["import", "--issuer", "int", "--csv", c]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("serials.csv:2"), "{}", text(&out.stderr));
    assert_eq!(status_of(&r, "73")["status"], "unknown", "nothing of a bad file is sent");
}

#[test]
fn letsencrypt_2020_bulk_revocation_with_dry_run_and_summary() {
    let (pki, r) = setup();
    let csv = pki.dir.path().join("issued.csv");
    let issued: String = (1..=20_000u32).map(|n| format!("{n:x}\n")).collect();
    std::fs::write(&csv, issued).unwrap();
    let imported = json(&r.ctl_ok(&["--json", "import", "--issuer", "int", "--csv", csv.to_str().unwrap()]));
    assert_eq!(imported["added"], 20_000);

    // Revoke 19,000 of them, plus 50 serials never issued.
    let list = pki.dir.path().join("revoke.txt");
    let serials: String = (1..=19_000u32).chain(900_000..900_050).map(|n| format!("{n:x}\n")).collect();
    std::fs::write(&list, serials).unwrap();
    let file = list.to_str().unwrap();
    let dry = json(&r.ctl_ok(&[
        "--json",
        "bulk-revoke",
        "--issuer",
        "int",
        "--file",
        file,
        "--reason",
        "superseded",
        "--dry-run",
    ]));
    assert_eq!(
        (dry["revoked"].as_u64(), dry["unknown_serial"].as_array().map(Vec::len)),
        (Some(19_000), Some(50)),
        "{dry}"
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(status_of(&r, "1")["status"], "good", "a dry run changes nothing");

    let done = json(&r.ctl_ok(&[
        "--json",
        "bulk-revoke",
        "--issuer",
        "int",
        "--file",
        file,
        "--reason",
        "superseded",
        "--batch",
        "3000",
    ]));
    assert_eq!((done["revoked"].as_u64(), done["already_revoked"].as_u64()), (Some(19_000), Some(0)), "{done}");
    assert_eq!(done["unknown_serial"].as_array().unwrap().len(), 50);
    assert_eq!(status_of(&r, "4a38")["status"], "revoked"); // 19000
    assert_eq!(status_of(&r, "4a39")["status"], "good"); // 19001

    let text_summary = r.ctl_ok(&["bulk-revoke", "--issuer", "int", "--file", file, "--reason", "superseded"]);
    assert!(
        text_summary.contains("revoked 0")
            && text_summary.contains("already revoked 19000")
            && text_summary.contains("unknown serial 50"),
        "{text_summary}"
    );

    // Served as revoked to a real client.
    let leaf = pki.leaf("bulk", &[0x01, 0x00]); // serial 0x100 = 256, revoked above
    let answer = pki.ask(&r.url, &leaf);
    assert!(answer.contains("bulk.pem: revoked"), "{answer}");

    let show = json(&r.ctl_ok(&["--json", "issuer", "show", "int"]));
    assert_eq!((show["good"].as_u64(), show["revoked"].as_u64()), (Some(1_000), Some(19_000)), "{show}");
}

#[test]
fn holds_lift_and_other_revocations_are_final() {
    // Holds exist only under the private reason profile (BR 4.9.13 forbids them for TLS).
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start_with(&["--reason-profile", "private"]);
    pki.register(&r);
    r.ctl_ok(&["cert", "add", "--issuer", "int", "--serial", "a1"]);
    r.ctl_ok(&["cert", "add", "--issuer", "int", "--serial", "a2"]);
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "a1", "--reason", "certificateHold"]);
    assert_eq!(status_of(&r, "a1")["reason"], "certificateHold");
    let lifted = json(&r.ctl_ok(&["--json", "unhold", "--issuer", "int", "--serial", "a1"]));
    assert_eq!(lifted["status"], "good");
    // A hold may also become a final revocation.
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "a1", "--reason", "certificateHold"]);
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "a1", "--reason", "superseded"]);
    let out = r.ctl(&["unhold", "--issuer", "int", "--serial", "a1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not on hold"), "{}", text(&out.stderr));
    assert_eq!(status_of(&r, "a1")["reason"], "superseded");

    // Only keyCompromise may be dated back.
    let out = r.ctl(&[
        "revoke",
        "--issuer",
        "int",
        "--serial",
        "a2",
        "--reason",
        "superseded",
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("only keyCompromise"), "{}", text(&out.stderr));
    assert_eq!(status_of(&r, "a2")["status"], "good");
    r.ctl_ok(&[
        "revoke",
        "--issuer",
        "int",
        "--serial",
        "a2",
        "--reason",
        "keyCompromise",
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    assert!(status_of(&r, "a2")["revocation_time"].as_str().unwrap().starts_with("2024-01-01"));
}

#[test]
fn audit_names_the_credential_and_the_reason() {
    let (_pki, r) = setup();
    let out = std::process::Command::new(bin("ocspd"))
        .args(["--data-dir"])
        .arg(r.data())
        .args(["token", "add", "--name", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alice = r.dir.path().join("alice.token");
    std::fs::write(&alice, text(&out.stdout)).unwrap();
    let as_alice = |args: &[&str]| {
        std::process::Command::new(bin("ocspctl"))
            .args(["--admin-url", &r.admin_url, "--token-file", alice.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    r.ctl_ok(&["cert", "add", "--issuer", "int", "--serial", "b1", "--why", "issued by hand"]);
    let out =
        as_alice(&["revoke", "--issuer", "int", "--serial", "b1", "--reason", "keyCompromise", "--why", "ticket 4711"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let entries: Value = serde_json::from_str(&r.ctl_ok(&["--json", "audit", "--serial", "b1"])).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!((entries[0]["admin"].as_str(), entries[0]["action"].as_str()), (Some("alice"), Some("revoke")));
    assert_eq!(entries[0]["reason"], "keyCompromise");
    assert_eq!(entries[0]["detail"], "ticket 4711");
    assert_eq!((entries[1]["admin"].as_str(), entries[1]["action"].as_str()), (Some("admin"), Some("cert.add")));
    let by_alice: Value = serde_json::from_str(&r.ctl_ok(&["--json", "audit", "--admin", "alice"])).unwrap();
    assert_eq!(by_alice.as_array().unwrap().len(), 1);
    let text_view = r.ctl_ok(&["audit", "--action", "issuer.add"]);
    assert!(text_view.contains("issuer.add issuer int"), "{text_view}");
    // A refused call leaves no audit entry.
    let _ = r.ctl(&["revoke", "--issuer", "int", "--serial", "b1", "--reason", "superseded"]);
    let after: Value = serde_json::from_str(&r.ctl_ok(&["--json", "audit", "--serial", "b1"])).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 2);
}

#[test]
fn retired_issuers_answer_unauthorized_and_stay_retired() {
    let (pki, r) = setup();
    let leaf = pki.leaf("leaf", &[0x11]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    let ask = |r: &Responder| pki.ask(&r.url, &leaf);
    assert!(ask(&r).contains("leaf.pem: good"));
    r.ctl_ok(&["issuer", "retire", "int", "--why", "CA decommissioned"]);
    assert!(ask(&r).contains("unauthorized"), "{}", ask(&r));
    let list = json(&r.ctl_ok(&["--json", "issuer", "list"]));
    assert!(list[0]["retired"].is_string(), "{list}");
    let dir = r.kill();
    let r = Responder::start_in(dir, &[]);
    assert!(ask(&r).contains("unauthorized"), "retirement survives a restart");
    assert_eq!(r.ctl(&["issuer", "retire", "int"]).status.code(), Some(1));
}
