//! The promise across a fleet's failures (issue 22): real PostgreSQL, real ocspd nodes, the
//! real Varnish with the shipped VCL, clients we did not write. Each test names the fault it
//! guards; each failed on the code before the change-feed runtime work.

use crate::fleet::{eventually, free_port, holder, import, node_with, Postgres};
use crate::util::*;
use ocsp_testpki::KeyAlg;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes a purge configuration with one Varnish target at `port`; its path.
fn varnish_purge(dir: &std::path::Path, port: u16) -> String {
    let purge = dir.join("purge.toml");
    std::fs::write(
        &purge,
        format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{port}/\"\n"),
    )
    .unwrap();
    purge.display().to_string()
}

/// The node named `name` among `nodes`.
fn named<'a>(nodes: &'a [(&str, Responder)], name: &str) -> &'a Responder {
    &nodes.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no node {name}")).1
}

#[test]
fn globalsign_2016_across_nodes_an_acknowledged_revocation_is_revoked_at_every_node_and_edge_at_once() {
    // Issue 22.0: node b answered good for up to 174 ms after the acknowledgement, and the
    // edge in front of b re-cached that good for a day once the purge had beaten b's replica.
    let pg = Postgres::start();
    let varnish_port = free_port();
    let conf = tempfile::tempdir().unwrap();
    let purge = varnish_purge(conf.path(), varnish_port);
    let nodes: Vec<(&str, Responder)> = ["a", "b", "c"]
        .into_iter()
        .map(|n| (n, node_with(&pg, n, tempfile::tempdir().unwrap(), &["--purge-config", &purge])))
        .collect();
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&nodes[0].1);
    const BULK_BATCH: usize = 3_000;
    let serials: Vec<String> = (1..=60u32).map(|n| format!("8{n:04x}")).collect();
    let bulk: Vec<String> = (1..=(3 * BULK_BATCH) as u32).map(|n| format!("81{n:05x}")).collect();
    import(&nodes[0].1, &[serials.clone(), bulk.clone()].concat());
    eventually(Duration::from_secs(15), "one purger and one signer", || {
        match (holder(&nodes[0].1, "purges"), holder(&nodes[0].1, "signs")) {
            (Some(_), Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // Revocations go through the purger (and, normally, signer); the edge sits in front of
    // another node.
    let purger = holder(&nodes[0].1, "purges").unwrap();
    let revoker = named(&nodes, &purger);
    let (edge_name, origin) = nodes.iter().find(|(n, _)| *n != purger).map(|(n, r)| (*n, r)).unwrap();
    let varnish = crate::edge::Varnish::start(crate::edge::port_of(&origin.url), varnish_port);
    let edge = format!("http://127.0.0.1:{varnish_port}");
    for s in &serials {
        eventually(Duration::from_secs(20), "good everywhere, and cached at the edge", || {
            for (n, r) in &nodes {
                let (st, _) = status_at(&pki, &r.url, s);
                if st != "good" {
                    return Err(format!("{n}: {st}"));
                }
            }
            match status_at(&pki, &edge, s).0.as_str() {
                "good" => Ok(()),
                other => Err(format!("edge: {other}")),
            }
        });
    }
    // Clients keep asking the edge (GET, as browsers do) for the certificates being revoked,
    // so it refetches from its origin the moment a purge lands.
    let watched: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = (0..2)
        .map(|_| {
            let (watched, stop, edge) = (watched.clone(), stop.clone(), edge.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let list = watched.lock().unwrap().clone();
                    if list.is_empty() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    for req in &list {
                        let _ = get_request(&edge, req);
                    }
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    // Right after an acknowledgement: every node and the edge, asked at once (bodies read
    // afterwards, so the asking is as quick as it can be).
    let check_now = |batch: &[(String, Vec<u8>)], failures: &mut Vec<String>| {
        let mut answers = Vec::new();
        for (s, req) in batch {
            // The nodes that did not take the revocation first: they are the ones that lag.
            for (n, r) in nodes.iter().filter(|(n, _)| *n != purger).chain(nodes.iter().filter(|(n, _)| *n == purger)) {
                answers.push((s.clone(), format!("node {n}"), get_request(&r.url, req)));
            }
            answers.push((s.clone(), format!("the edge in front of {edge_name}"), get_request(&edge, req)));
        }
        for (s, where_, http) in answers {
            let st = status_in(&pki, &s, &http);
            if st != "revoked" {
                failures.push(format!("{s} at {where_}: {st} ({:?})", http.header("x-cache")));
            }
        }
    };
    let with_requests = |list: &[String]| -> Vec<(String, Vec<u8>)> {
        list.iter().map(|s| (s.clone(), request_for_serial(&pki, s))).collect()
    };
    // Single revocations.
    for one in with_requests(&serials) {
        *watched.lock().unwrap() = vec![one.1.clone()];
        std::thread::sleep(Duration::from_millis(20));
        revoker.ctl_ok(&["revoke", "--issuer", "int", "--serial", &one.0, "--reason", "keyCompromise"]);
        check_now(std::slice::from_ref(&one), &mut failures);
    }
    // Bulk revocations: more for the other nodes to apply after each acknowledgement.
    let file = revoker.dir.path().join("bulk.txt");
    for chunk in bulk.chunks(BULK_BATCH) {
        let sample = with_requests(&[chunk[0].clone(), chunk[chunk.len() / 2].clone(), chunk[chunk.len() - 1].clone()]);
        *watched.lock().unwrap() = sample.iter().map(|(_, r)| r.clone()).collect();
        std::fs::write(&file, chunk.join("\n")).unwrap();
        revoker.ctl_ok(&["bulk-revoke", "--issuer", "int", "--file", file.to_str().unwrap(), "--reason", "superseded"]);
        check_now(&sample, &mut failures);
    }
    watched.lock().unwrap().clear();
    // And the edge has not cached a good answer again since (every purge came after every
    // node applied its change).
    std::thread::sleep(Duration::from_millis(1500));
    for s in &serials {
        let (st, http) = status_at(&pki, &edge, s);
        if st != "revoked" {
            failures.push(format!("{s} at the edge 1.5 s later: {st} ({:?})", http.header("x-cache")));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for a in askers {
        a.join().unwrap();
    }
    drop(varnish);
    assert!(
        failures.is_empty(),
        "{} answers contradicted an acknowledged revocation:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_revocation_through_the_other_node_is_on_its_crl_when_the_signer_dies_after_the_ack() {
    // Issue 22.1: the non-signer's CRL cursor had moved past the change; the survivor that
    // took the signer lease never signed the shard again.
    let pg = Postgres::start();
    let crl = ["--crl-base-url", "http://crl.test", "--crl-within", "4s", "--crl-coalesce", "1s"];
    let mut nodes: Vec<Option<Responder>> =
        ["a", "b"].iter().map(|n| Some(node_with(&pg, n, tempfile::tempdir().unwrap(), &crl))).collect();
    let pki = TestPki::new(KeyAlg::P256);
    let first = nodes[0].as_ref().unwrap();
    pki.register(first);
    first.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key"), "--shards", "4"]);
    let serials: Vec<String> = (1..=40u32).map(|n| format!("9{n:04x}")).collect();
    import(first, &serials);
    eventually(Duration::from_secs(20), "a signer and every shard signed", || {
        let signer = holder(first, "signs").ok_or("no signer")?;
        let status = json(&first.ctl_ok(&["--json", "crl", "status"]));
        let shards = status.as_array().unwrap();
        if shards.len() == 4 && shards.iter().all(|s| s["number"].as_u64().unwrap_or(0) > 0) {
            Ok(())
        } else {
            Err(format!("signer {signer}: {status}"))
        }
    });
    let signer = holder(first, "signs").unwrap();
    let (si, oi) = if signer == "a" { (0, 1) } else { (1, 0) };
    let other = nodes[oi].take().unwrap();
    let serial = &serials[11];
    other.ctl_ok(&["revoke", "--issuer", "int", "--serial", serial, "--reason", "keyCompromise"]);
    // kill -9 the signer right after the acknowledgement, before its coalescing pause ends.
    let _ = nodes[si].take().unwrap().kill();
    let killed = Instant::now();
    let shard = ocsp_proto::shard_of(ocsp_proto::Serial::from_hex(serial).unwrap().as_bytes(), 4);
    let path = format!("/crl/int/{shard}.crl");
    // Within crl.within plus one lease (4 s + 2 s) and a margin for the takeover.
    eventually(Duration::from_secs(15), "the survivor's served shard lists the revocation", || {
        let got = curl(&[&format!("{}{path}", other.url)]);
        if got.status != 200 {
            return Err(format!("HTTP {}", got.status));
        }
        crl_lists(&pki, &got.body, serial, None)
    });
    eprintln!("on the survivor's CRL {:?} after the signer was killed", killed.elapsed());
    let verify = other.ctl_ok(&["crl", "verify"]);
    assert!(verify.contains("they agree"), "{verify}");
}

#[test]
fn staff_calls_work_on_the_first_try_after_postgresql_restarts() {
    // Issue 22.2: the connection a node held across the restart failed the next staff call.
    let pg = Postgres::start();
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &[]);
    let b = node_with(&pg, "b", tempfile::tempdir().unwrap(), &[]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=4u32).map(|n| format!("a{n:04x}")).collect();
    import(&a, &serials);
    // Every kind of connection has been used once: writes, reads.
    a.ctl_ok(&["status", "--issuer", "int", "--serial", &serials[0]]);
    b.ctl_ok(&["status", "--issuer", "int", "--serial", &serials[0]]);
    pg.down();
    std::thread::sleep(Duration::from_millis(500));
    pg.up();
    for n in [&a, &b] {
        eventually(Duration::from_secs(20), "ready again", || {
            let r = curl(&[&format!("{}/readyz", n.url)]);
            if r.status == 200 {
                Ok(())
            } else {
                Err(text(&r.body))
            }
        });
    }
    // No call in between: the first staff call of each node meets the connection that died.
    a.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);
    b.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serials[1], "--reason", "keyCompromise"]);
    a.ctl_ok(&["audit", "--serial", &serials[1]]);
}

#[test]
fn sigterm_stops_a_fleet_node_with_status_0_and_no_panic() {
    // Issue 22.3: the synchronous PostgreSQL client dropped inside the runtime aborted the
    // process: every `systemctl stop` was a crash.
    let (_pg, a, _pki, serials) = one_node_with_a_revocation("b");
    a.ctl_ok(&["status", "--issuer", "int", "--serial", &serials[0]]);
    a.ctl_ok(&["fleet", "status"]);
    let (status, log) = a.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}; log tail:\n{}", tail(&log));
    assert!(!log.contains("panicked"), "a panic at shutdown:\n{}", tail(&log));
}

/// One fleet node on a new PostgreSQL with four certificates (serials `<prefix>0001`..), the
/// first revoked.
fn one_node_with_a_revocation(prefix: &str) -> (Postgres, Responder, TestPki, Vec<String>) {
    let pg = Postgres::start();
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &[]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=4u32).map(|n| format!("{prefix}{n:04x}")).collect();
    import(&a, &serials);
    a.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serials[0], "--reason", "keyCompromise"]);
    (pg, a, pki, serials)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn with_postgresql_down_reads_come_from_the_replica_and_writes_are_refused_clearly() {
    // Issue 22.4: every PostgreSQL error reached staff as HTTP 500 "internal error", reads
    // included.
    let (pg, a, _pki, serials) = one_node_with_a_revocation("c");
    pg.down();
    // A status read: answered from the replica, saying so.
    let out = a.ctl_ok(&["status", "--issuer", "int", "--serial", &serials[0]]);
    assert!(out.contains("revoked") && out.contains("replica"), "{out}");
    // The fleet's state: this node's view, saying so.
    let out = a.ctl_ok(&["fleet", "status"]);
    assert!(out.contains("unreachable") && out.contains("own view"), "{out}");
    // The audit record lives only in PostgreSQL: 503 with a clear message, not 500.
    let audit = curl(&[
        "-H",
        &format!("Authorization: Bearer {}", std::fs::read_to_string(a.token_file()).unwrap().trim()),
        &format!("{}/v1/audit", a.admin_url),
    ]);
    assert_eq!(audit.status, 503, "{}", text(&audit.body));
    assert!(text(&audit.body).contains("fleet database is unavailable"), "{}", text(&audit.body));
    // A write: refused at once, clearly, nothing changed.
    let out = a.ctl(&["revoke", "--issuer", "int", "--serial", &serials[1], "--reason", "keyCompromise"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("fleet database is unavailable") && !said.contains("internal error"), "{said}");
}

#[test]
fn check_config_masks_the_fleet_database_password_and_refuses_it_on_the_command_line() {
    let url = "postgresql://ocspd:s3cret-pw@db.internal:5432/ocspd";
    let out = run(Command::new(bin("ocspd")).arg("check-config").env("OCSPD_FLEET_DB", url));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("postgresql://ocspd:****@db.internal:5432/ocspd"), "{said}");
    assert!(!said.contains("s3cret-pw"), "{said}");
    // On the command line, every user of the machine sees it: refused, naming where it goes.
    let out = run(Command::new(bin("ocspd")).args(["check-config", "--fleet-db", url]));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("fleet.password_file") && !said.contains("s3cret-pw"), "{said}");
}

/// A CA and a server certificate for 127.0.0.1 made by openssl; (ca.pem, server.crt, server.key).
fn tls_material(dir: &std::path::Path, name: &str) -> (String, String, String) {
    let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
    let ok = |args: &[&str]| {
        let out = run(Command::new("openssl").args(args));
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
    };
    ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    ok(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join(format!("{name}-ext")), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .unwrap();
    ok(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("server.crt"),
        "-days",
        "2",
        "-extfile",
        &p("ext"),
    ]);
    (p("ca.pem"), p("server.crt"), p("server.key"))
}

#[test]
fn postgresql_over_tls_verify_full_works_and_a_wrong_ca_is_refused() {
    // Issue 22.5: the client connected with NoTls.
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_material(dir.path(), "right");
    let (wrong_ca, _, _) = tls_material(dir.path(), "wrong");
    let pg = Postgres::start_tls(std::path::Path::new(&cert), std::path::Path::new(&key));
    let tls = ["--fleet-tls", "verify-full", "--fleet-ca-file", &ca];
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &tls);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=2u32).map(|n| format!("d{n:04x}")).collect();
    import(&a, &serials);
    a.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serials[0], "--reason", "keyCompromise"]);
    eventually(Duration::from_secs(10), "revoked", || match status_at(&pki, &a.url, &serials[0]).0.as_str() {
        "revoked" => Ok(()),
        other => Err(other.to_string()),
    });
    // Every connection of the node is encrypted, as PostgreSQL itself reports.
    let plain = pg.sql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'ocspd' AND NOT s.ssl");
    let encrypted = pg.sql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'ocspd' AND s.ssl");
    assert_eq!(plain.trim(), "0", "unencrypted connections of ocspd");
    assert!(encrypted.trim().parse::<u32>().unwrap() >= 3, "{encrypted}");
    // A CA that did not sign the server's certificate: the node refuses to start, saying why.
    let out = run(Command::new(bin("ocspd"))
        .args(["--data-dir"])
        .arg(dir.path().join("wrong-data"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--fleet-db", &pg.url, "--node-name", "w", "--fleet-tls", "verify-full", "--fleet-ca-file", &wrong_ca]));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    // verify-full without a CA file is a configuration problem.
    let out =
        run(Command::new(bin("ocspd")).args(["check-config", "--fleet-db", &pg.url, "--fleet-tls", "verify-full"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("fleet.ca_file"), "{}", text(&out.stderr));
}

#[test]
fn a_node_that_misses_an_acknowledged_change_leaves_service_until_it_has_applied_it() {
    // A node paused (SIGSTOP) cannot apply a revocation: the acknowledgement waits
    // fleet.ack_wait, fences it, and waits for its serving lease to lapse; resumed, the node
    // answers no good until it has caught up.
    let pg = Postgres::start();
    let fast = ["--fleet-serving-lease", "3s", "--fleet-ack-wait", "1s"];
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &fast);
    let b = node_with(&pg, "b", tempfile::tempdir().unwrap(), &fast);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=4u32).map(|n| format!("e{n:04x}")).collect();
    import(&a, &serials);
    eventually(Duration::from_secs(15), "b answers good", || match status_at(&pki, &b.url, &serials[0]).0.as_str() {
        "good" => Ok(()),
        other => Err(other.to_string()),
    });
    b.signal("STOP");
    let started = Instant::now();
    let out = a.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serials[0], "--reason", "keyCompromise"]);
    let took = started.elapsed();
    assert!(out.contains("out of service") && out.contains('b'), "{out}");
    assert!(took < Duration::from_secs(8), "the acknowledgement took {took:?}");
    b.signal("CONT");
    // From the moment it runs again, b never says good for the revoked certificate.
    let until = Instant::now() + Duration::from_secs(6);
    let mut seen = Vec::new();
    while Instant::now() < until {
        let (st, _) = status_at(&pki, &b.url, &serials[0]);
        assert_ne!(st, "good", "b answered good after the acknowledgement; saw {seen:?}");
        seen.push(st);
    }
    assert_eq!(seen.last().map(String::as_str), Some("revoked"), "{seen:?}");
    // And it is back in service for the rest.
    eventually(Duration::from_secs(10), "b serves again", || {
        let r = curl(&[&format!("{}/readyz", b.url)]);
        match (r.status, status_at(&pki, &b.url, &serials[1]).0.as_str()) {
            (200, "good") => Ok(()),
            (s, st) => Err(format!("{s} {st} {}", text(&r.body))),
        }
    });
}

#[test]
fn every_follower_of_the_feed_and_its_lag_is_shown_and_the_crl_role_runs_on_one_node() {
    let pg = Postgres::start();
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &[]);
    let b = node_with(&pg, "b", tempfile::tempdir().unwrap(), &[]);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=30u32).map(|n| format!("c1{n:04x}")).collect();
    import(&a, &serials);
    let feed = |n: &Responder| json(&n.ctl_ok(&["--json", "feed", "status"]));
    eventually(Duration::from_secs(20), "every follower caught up; the CRL role on one node", || {
        let (fa, fb) = (feed(&a), feed(&b));
        let mut crl_runs = 0;
        for list in [&fa, &fb] {
            for c in list.as_array().unwrap() {
                if c["name"] == "crl" {
                    crl_runs += usize::from(!c["next"].is_null());
                    continue;
                }
                if c["lag"] != 0 || c["next"].is_null() {
                    return Err(format!("{c}"));
                }
            }
            let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
            if names != ["followers", "purge/outbox", "replica", "crl"] {
                return Err(format!("{names:?}"));
            }
        }
        if crl_runs == 1 {
            Ok(())
        } else {
            Err(format!("CRL regeneration runs on {crl_runs} nodes: {fa} {fb}"))
        }
    });
    eventually(Duration::from_secs(10), "the lag metric", || {
        let metrics = text(&curl(&[&b.metrics_url]).body);
        if metrics.contains("ocspd_feed_consumer_lag_changes{consumer=\"replica\",kind=\"replica\"} 0") {
            Ok(())
        } else {
            Err(metrics.lines().filter(|l| l.contains("feed_consumer")).collect::<Vec<_>>().join("\n"))
        }
    });
}

#[test]
fn a_promotion_through_one_node_is_signed_by_the_backup_on_every_node_from_the_acknowledgement_on() {
    // The other node learns of the promotion from its feed (the issuer loader) and answers
    // with the backup's signature from the moment `ocspctl issuer promote` returns.
    let pg = Postgres::start();
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &[]);
    let b = node_with(&pg, "b", tempfile::tempdir().unwrap(), &[]);
    let pki = TestPki::new(KeyAlg::P256);
    let backup = pki.int.responder("backup responder", &ocsp_testpki::ResponderOptions::default()).unwrap();
    backup.write(pki.dir.path(), "backup", true).unwrap();
    let extra = ["--backup-responder-cert", &pki.path("backup.pem"), "--backup-key", &pki.path("backup.key")];
    let added = pki.add_int(&a, "responder.pem", &pki.path("responder.key"), &extra);
    assert!(added.status.success(), "{}", text(&added.stderr));
    let serials: Vec<String> = (1..=3u32).map(|n| format!("d1{n:04x}")).collect();
    import(&a, &serials);
    let signed_by = |n: &Responder, serial: &str, responder: &str| {
        let out = openssl_ocsp(&[
            "-issuer",
            &pki.path("int.pem"),
            "-serial",
            &format!("0x{serial}"),
            "-url",
            &n.url,
            "-VAfile",
            &pki.path(responder),
            "-no_nonce",
        ]);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        said.contains("Response verify OK") && said.contains(": good")
    };
    eventually(Duration::from_secs(15), "b answers, signed by the primary", || {
        if signed_by(&b, &serials[0], "responder.pem") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    a.ctl_ok(&["issuer", "promote", "--name", "int", "--why", "drill"]);
    for n in [&a, &b] {
        for s in &serials {
            assert!(
                signed_by(n, s, "backup.pem"),
                "{} answers {s} with the backup's signature right after the ack",
                n.url
            );
            assert!(!signed_by(n, s, "responder.pem"), "{} still signs {s} with the old key", n.url);
        }
    }
}
