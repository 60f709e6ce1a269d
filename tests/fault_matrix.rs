//! The fleet fault matrix (issue 22): the node holding the signer and purger leases is cut at
//! each step of its work, by `kill -9` (a failpoint that aborts exactly there) or by a
//! PostgreSQL restart while it stands there (a failpoint that pauses). Real PostgreSQL, two
//! real nodes, the real Varnish with the shipped VCL in front of the other node, clients we
//! did not write. After each: no node and no edge answers good from the acknowledgement on,
//! the certificate is on its own CRL shard within `crl.within` plus a lease, the edge got its
//! purge (it had the good answer cached), and `ocspctl crl verify` agrees on every live node.

use crate::fleet::{eventually, free_port, holder, import, Postgres};
use crate::util::*;
use ocsp_testpki::KeyAlg;
use std::process::Command;
use std::time::{Duration, Instant};

const SHARDS: u32 = 4;
/// crl.within of these nodes.
const CRL_WITHIN: Duration = Duration::from_secs(4);
/// fleet.lease of these nodes.
const LEASE: Duration = Duration::from_secs(2);

/// How the role holder is cut at the point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// kill -9 there.
    Kill,
    /// PostgreSQL stopped and started again while it stands there.
    RestartPostgres,
}

/// A fleet node with the common settings, `env` added to its environment.
fn node(pg: &Postgres, name: &str, purge: &str, env: &[(&str, &str)]) -> Responder {
    let args = [
        "--fleet-db",
        &pg.url,
        "--node-name",
        name,
        "--fleet-lease",
        "2s",
        "--fleet-serving-lease",
        "3s",
        "--fleet-ack-wait",
        "1s",
        "--crl-base-url",
        "http://crl.test",
        "--crl-within",
        "4s",
        "--crl-coalesce",
        "1s",
        "--purge-config",
        purge,
        "--purge-wait",
        "10s",
    ];
    Responder::start_env(tempfile::tempdir().unwrap(), &args, env)
}

fn run_case(point: &str, cut: Cut) {
    let pg = Postgres::start();
    let varnish_port = free_port();
    let conf = tempfile::tempdir().unwrap();
    let purge = conf.path().join("purge.toml");
    std::fs::write(
        &purge,
        format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"),
    )
    .unwrap();
    let purge = purge.display().to_string();
    let (arm, hits) = (conf.path().join("arm"), conf.path().join("hits"));
    std::fs::create_dir_all(&hits).unwrap();
    let action = match cut {
        Cut::Kill => "abort".to_string(),
        Cut::RestartPostgres => format!("pause:{}", hits.display()),
    };
    let failpoints = format!("{point}={action}");
    let arm_s = arm.display().to_string();
    // Node a starts first and takes both leases; b sits behind the edge.
    let a = node(&pg, "a", &purge, &[("OCSPD_FAILPOINTS", &failpoints), ("OCSPD_FAILPOINTS_ARM", &arm_s)]);
    eventually(Duration::from_secs(15), "a holds both leases", || {
        match (holder(&a, "signs").as_deref(), holder(&a, "purges").as_deref()) {
            (Some("a"), Some("a")) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let b = node(&pg, "b", &purge, &[]);
    let varnish = crate::edge::Varnish::start(crate::edge::port_of(&b.url), varnish_port);
    let edge = format!("http://127.0.0.1:{varnish_port}");
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    a.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key"), "--shards", &SHARDS.to_string()]);
    let serials: Vec<String> = (1..=16u32).map(|n| format!("f{n:04x}")).collect();
    import(&a, &serials);
    let serial = serials[5].clone();
    let shard = ocsp_proto::shard_of(ocsp_proto::Serial::from_hex(&serial).unwrap().as_bytes(), SHARDS);
    // Steady state: every shard signed, the answer good everywhere and cached at the edge.
    eventually(Duration::from_secs(30), "steady state", || {
        let shards = json(&b.ctl_ok(&["--json", "crl", "status"]));
        if !shards.as_array().unwrap().iter().all(|s| s["number"].as_u64().unwrap_or(0) > 0) {
            return Err(format!("CRLs {shards}"));
        }
        for (n, url) in [("a", &a.url), ("b", &b.url), ("edge", &edge)] {
            let (st, _) = status_at(&pki, url, &serial);
            if st != "good" {
                return Err(format!("{n}: {st}"));
            }
        }
        match status_at(&pki, &edge, &serial).1.header("x-cache") {
            Some("HIT") => Ok(()),
            other => Err(format!("edge not caching yet: {other:?}")),
        }
    });

    // Arm, and revoke: through the role holder when the point is its own staff call, else
    // through the other node.
    std::fs::write(&arm, b"").unwrap();
    let through = if point == "admin.after_commit" { &a } else { &b };
    let (admin_url, token) = (through.admin_url.clone(), through.token_file());
    let args = ["revoke", "--issuer", "int", "--serial", serial.as_str(), "--reason", "keyCompromise"];
    let started = Instant::now();
    let mut a = Some(a);
    let said = std::thread::scope(|s| {
        let call = s.spawn(|| {
            Command::new(bin("ocspctl"))
                .args(["--admin-url", &admin_url, "--token-file"])
                .arg(&token)
                .args(args)
                .output()
                .unwrap()
        });
        match cut {
            Cut::Kill => {
                // The point is reached when the process is gone, by its failpoint.
                let mut alive = a.take().unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                while alive.alive() {
                    assert!(Instant::now() < deadline, "{point} was never reached");
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(alive.log().contains(&format!("failpoint {point}: aborting")), "{point}: died otherwise");
                drop(alive);
            }
            Cut::RestartPostgres => {
                let hit = hits.join(format!("{point}.hit"));
                let deadline = Instant::now() + Duration::from_secs(30);
                while !hit.exists() {
                    assert!(Instant::now() < deadline, "{point} was never reached");
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Down long enough that every node's polls and reports meet the outage.
                pg.down();
                std::thread::sleep(Duration::from_secs(2));
                pg.up();
                std::fs::write(hits.join(format!("{point}.go")), b"").unwrap();
            }
        }
        call.join().unwrap()
    });
    let acknowledged = said.status.success();
    let output = format!("{}{}", text(&said.stdout), text(&said.stderr));
    let live: Vec<(&str, &Responder)> = match &a {
        Some(a) => vec![("a", a), ("b", &b)],
        None => vec![("b", &b)],
    };
    if acknowledged {
        // From the acknowledgement on: every live node and the edge answer revoked.
        assert!(!output.contains("not yet purged") && !output.contains("not confirmed"), "{point}/{cut:?}: {output}");
        for (n, r) in &live {
            assert_eq!(status_at(&pki, &r.url, &serial).0, "revoked", "{point}/{cut:?}: node {n} after the ack");
        }
        let (st, http) = status_at(&pki, &edge, &serial);
        if st != "revoked" {
            let purge = |r: &Responder| r.ctl(&["--json", "purge", "status"]);
            let logs: Vec<String> = live
                .iter()
                .map(|(n, r)| {
                    let p = purge(r);
                    let lines: Vec<String> = r
                        .log()
                        .lines()
                        .filter(|l| {
                            l.contains("purge") || l.contains("WARN") || l.contains("ERROR") || l.contains("lease")
                        })
                        .map(|l| l.chars().take(300).collect())
                        .collect();
                    format!("== {n}: purge status {}{}\n{}", text(&p.stdout), text(&p.stderr), lines.join("\n"))
                })
                .collect();
            panic!(
                "{point}/{cut:?}: the edge after the ack said {st} ({:?}); ack said: {output}\nbans: {}\n{}",
                http.header("x-cache"),
                varnish.ban_list(),
                logs.join("\n")
            );
        }
    } else {
        // Only the revoking node itself died after its commit: the change is durable, and
        // everything converges without an acknowledgement.
        assert!(point == "admin.after_commit" && cut == Cut::Kill, "{point}/{cut:?}: not acknowledged: {output}");
        eventually(Duration::from_secs(20), "revoked on the survivor and the edge", || {
            match (status_at(&pki, &b.url, &serial).0.as_str(), status_at(&pki, &edge, &serial).0.as_str()) {
                ("revoked", "revoked") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    // The shard lists it within crl.within plus a lease (and the takeover's own lease).
    let bound = CRL_WITHIN + LEASE * 2 + Duration::from_secs(3);
    eventually(bound.saturating_sub(started.elapsed()).max(Duration::from_secs(1)), "the shard lists it", || {
        for (n, r) in &live {
            let got = curl(&[&format!("{}/crl/int/{shard}.crl", r.url)]);
            if got.status != 200 {
                return Err(format!("{n}: HTTP {}", got.status));
            }
            crl_lists(&pki, &got.body, &serial, None).map_err(|e| format!("{n}: {e}"))?;
        }
        Ok(())
    });
    eprintln!("{point}/{cut:?}: on its shard {:?} after the revocation began", started.elapsed());
    for (n, r) in &live {
        eventually(Duration::from_secs(10), "crl verify agrees", || {
            let out = r.ctl(&["crl", "verify"]);
            let said = text(&out.stdout);
            if out.status.success() && said.contains("they agree") {
                Ok(())
            } else {
                Err(format!("{n}: {said}{}", text(&out.stderr)))
            }
        });
    }
    // Still revoked at the edge a moment later: no good answer was cached again.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status_at(&pki, &edge, &serial).0, "revoked", "{point}/{cut:?}: the edge later");
    drop(varnish);
}

macro_rules! cases {
    ($($name:ident: $point:literal, $cut:expr;)*) => {$(
        #[test]
        fn $name() {
            run_case($point, $cut);
        }
    )*};
}

cases! {
    role_holder_killed_after_its_staff_commit: "admin.after_commit", Cut::Kill;
    postgres_restarted_after_a_staff_commit: "admin.after_commit", Cut::RestartPostgres;
    signer_killed_between_signing_and_storing_responses: "presign.before_store", Cut::Kill;
    postgres_restarted_between_signing_and_storing_responses: "presign.before_store", Cut::RestartPostgres;
    signer_killed_between_signing_and_storing_a_crl: "crl.after_sign", Cut::Kill;
    postgres_restarted_between_signing_and_storing_a_crl: "crl.after_sign", Cut::RestartPostgres;
    signer_killed_after_storing_a_crl_before_its_cursor_moved: "crl.after_store", Cut::Kill;
    postgres_restarted_after_storing_a_crl_before_its_cursor_moved: "crl.after_store", Cut::RestartPostgres;
    purger_killed_after_a_purge_was_accepted: "purge.after_send", Cut::Kill;
    postgres_restarted_after_a_purge_was_accepted: "purge.after_send", Cut::RestartPostgres;
    role_holder_killed_before_applying_the_change: "replica.before_apply", Cut::Kill;
    postgres_restarted_before_a_node_applies_the_change: "replica.before_apply", Cut::RestartPostgres;
}

#[test]
fn an_acknowledgement_that_cannot_be_confirmed_on_every_node_says_so_and_exits_3() {
    // PostgreSQL goes away right after the commit and stays away: the revocation is durable,
    // but whether the other node applied it cannot be known. ocspctl must not say "done".
    let pg = Postgres::start();
    let conf = tempfile::tempdir().unwrap();
    let purge = conf.path().join("purge.toml");
    std::fs::write(&purge, "").unwrap();
    let purge = purge.display().to_string();
    let hits = conf.path().join("hits");
    std::fs::create_dir_all(&hits).unwrap();
    let (arm, arm_s) = (conf.path().join("arm"), conf.path().join("arm").display().to_string());
    let failpoints = format!("admin.after_commit=pause:{}", hits.display());
    let a = node(&pg, "a", &purge, &[("OCSPD_FAILPOINTS", &failpoints), ("OCSPD_FAILPOINTS_ARM", &arm_s)]);
    let b = node(&pg, "b", &purge, &[]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=2u32).map(|n| format!("fa{n:04x}")).collect();
    import(&a, &serials);
    eventually(Duration::from_secs(15), "b answers good", || match status_at(&pki, &b.url, &serials[0]).0.as_str() {
        "good" => Ok(()),
        other => Err(other.to_string()),
    });
    std::fs::write(&arm, b"").unwrap();
    let out = std::thread::scope(|s| {
        let call =
            s.spawn(|| a.ctl(&["revoke", "--issuer", "int", "--serial", &serials[0], "--reason", "keyCompromise"]));
        let hit = hits.join("admin.after_commit.hit");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !hit.exists() {
            assert!(Instant::now() < deadline, "the failpoint was never reached");
            std::thread::sleep(Duration::from_millis(20));
        }
        pg.down();
        std::fs::write(hits.join("admin.after_commit.go"), b"").unwrap();
        call.join().unwrap()
    });
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("not confirmed on every node") && said.contains("revoked"), "{said}");
    // And the node that could not be confirmed does not answer good for long: its serving
    // lease lapses without the database.
    eventually(Duration::from_secs(10), "b out of service", || match status_at(&pki, &b.url, &serials[0]).0.as_str() {
        "good" => Err("good".into()),
        _ => Ok(()),
    });
    pg.up();
    eventually(Duration::from_secs(20), "b answers revoked once back", || {
        match status_at(&pki, &b.url, &serials[0]).0.as_str() {
            "revoked" => Ok(()),
            other => Err(other.to_string()),
        }
    });
}
