//! Fleet mode: a real PostgreSQL started here on 127.0.0.1 (as the unprivileged `postgres`
//! user when the tests run as root) and several real ocspd processes, each serving from its
//! own RocksDB replica, checked by `openssl ocsp` and Python `cryptography`.

use crate::util::*;
use ocsp_testpki::KeyAlg;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL cluster in a temporary folder, stopped when dropped.
pub struct Postgres {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
    pub url: String,
    /// Extra server settings (`-c ssl=on ...`).
    extra: String,
}

pub(crate) fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|it| it.filter_map(|e| e.ok()).map(|e| e.path().join("bin").join(name)).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("PostgreSQL's {name} is missing (Debian package postgresql)"))
}

pub(crate) fn is_root() -> bool {
    text(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (it refuses root).
pub(crate) fn as_pg(program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).output().unwrap()
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let out = run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()));
            assert!(out.status.success(), "chown: {}", text(&out.stderr));
        }
        let data = dir.path().join("pg");
        let out =
            as_pg(&pg_bin("initdb"), &["-D", data.to_str().unwrap(), "-U", "ocspd", "-A", "trust", "-N", "-E", "UTF8"]);
        assert!(out.status.success(), "initdb: {}{}", text(&out.stdout), text(&out.stderr));
        let port = free_port();
        let pg =
            Postgres { url: format!("postgresql://ocspd@127.0.0.1:{port}/postgres"), port, dir, extra: String::new() };
        pg.up();
        pg
    }

    /// A cluster that also takes TLS with `cert` and `key` (PEM files), restarted with them.
    pub fn start_tls(cert: &Path, key: &Path) -> Postgres {
        let mut pg = Postgres::start();
        pg.down();
        let (c, k) = (pg.dir.path().join("server.crt"), pg.dir.path().join("server.key"));
        std::fs::copy(cert, &c).unwrap();
        std::fs::copy(key, &k).unwrap();
        run(Command::new("chmod").arg("600").arg(&k));
        if is_root() {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&c).arg(&k));
        }
        pg.extra = format!("-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", c.display(), k.display());
        pg.up();
        pg
    }

    pub(crate) fn data(&self) -> String {
        self.dir.path().join("pg").display().to_string()
    }

    /// Starts (again) the server, waiting until it accepts connections.
    pub fn up(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200 -c fsync=off -c synchronous_commit=on {}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let log = self.dir.path().join("pg.log").display().to_string();
        let out = as_pg(&pg_bin("pg_ctl"), &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "-t", "60", "start"]);
        assert!(out.status.success(), "pg_ctl start: {}{}", text(&out.stdout), text(&out.stderr));
    }

    /// Stops the server at once (`immediate`: as if its machine died; nothing is flushed).
    pub fn down(&self) {
        let out = as_pg(&pg_bin("pg_ctl"), &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}{}", text(&out.stdout), text(&out.stderr));
    }

    /// Runs SQL with psql; its output, unaligned, tuples only.
    pub fn sql(&self, sql: &str) -> String {
        let out = run(Command::new("psql").args([&self.url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]));
        assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
        text(&out.stdout)
    }
}

/// Waits until PostgreSQL holds both responses (SHA-1 and SHA-256 CertIDs) of `certificates`
/// certificates.
fn all_signed(pg: &Postgres, certificates: usize, within: Duration, what: &str) {
    eventually(within, what, || {
        let n = pg.sql("SELECT count(*) FROM responses").trim().parse::<usize>().unwrap_or(0);
        if n == 2 * certificates {
            Ok(())
        } else {
            Err(format!("{n} responses"))
        }
    });
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_pg(&pg_bin("pg_ctl"), &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fleet node named `name` on `pg`.
pub(crate) fn node(pg: &Postgres, name: &str) -> Responder {
    node_in(pg, name, tempfile::tempdir().unwrap())
}

pub(crate) fn node_in(pg: &Postgres, name: &str, dir: tempfile::TempDir) -> Responder {
    node_with(pg, name, dir, &[])
}

pub(crate) fn node_with(pg: &Postgres, name: &str, dir: tempfile::TempDir, extra: &[&str]) -> Responder {
    let mut args = vec!["--fleet-db", pg.url.as_str(), "--node-name", name, "--fleet-lease", "2s"];
    args.extend_from_slice(extra);
    Responder::start_in(dir, &args)
}

/// Waits until `check` holds, at most `within`.
pub(crate) fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What `openssl ocsp` says of `cert` at `node` ("good", "revoked", or the whole output).
fn answer(pki: &TestPki, node: &Responder, cert: &str) -> String {
    let out = pki.ask(&node.url, cert);
    if !out.contains("Response verify OK") {
        return out;
    }
    let line = out.lines().find(|l| l.contains(&format!("{cert}: "))).unwrap_or_default();
    line.rsplit(": ").next().unwrap_or_default().trim().to_string()
}

/// Records `serials` under the intermediate through `node` (`ocspctl import`); returns the
/// file it wrote them to, for the caller's next lists.
pub(crate) fn import(node: &Responder, serials: &[String]) -> PathBuf {
    let file = node.dir.path().join("serials.txt");
    std::fs::write(&file, serials.join("\n")).unwrap();
    node.ctl_ok(&["import", "--issuer", "int", "--csv", file.to_str().unwrap()]);
    file
}

/// Asks `node` about every serial in `serials` with tests/py/ask_many.py.
pub(crate) fn ask_many(
    pki: &TestPki,
    node: &Responder,
    serials: &[String],
    bodies: Option<&Path>,
) -> serde_json::Value {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), serials.join("\n")).unwrap();
    let mut args = vec![
        repo().join("tests/py/ask_many.py").display().to_string(),
        "--url".into(),
        node.url.clone(),
        "--issuer".into(),
        pki.path("int.pem"),
        "--serials".into(),
        list.path().display().to_string(),
    ];
    if let Some(b) = bodies {
        args.push("--bodies".into());
        args.push(b.display().to_string());
    }
    let out = run(Command::new("python3").args(&args));
    assert!(out.status.success(), "ask_many: {}", text(&out.stderr));
    json(&text(&out.stdout))
}

pub(crate) fn fleet_status(node: &Responder) -> serde_json::Value {
    json(&node.ctl_ok(&["--json", "fleet", "status"]))
}

/// The node holding `role` ("signs" or "purges") as the fleet reports it.
pub(crate) fn holder(node: &Responder, role: &str) -> Option<String> {
    fleet_status(node)["nodes"]
        .as_array()?
        .iter()
        .find(|n| n[role] == true)
        .map(|n| n["name"].as_str().unwrap().to_string())
}

#[test]
fn a_revocation_through_one_node_is_answered_revoked_by_every_node() {
    let pg = Postgres::start();
    let (a, b, c) = (node(&pg, "a"), node(&pg, "b"), node(&pg, "c"));
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let leaf = pki.leaf("leaf", &[0x10, 0x01]);
    let other = pki.leaf("other", &[0x10, 0x02]);
    a.ctl_ok(&["cert", "add", "--pem", &leaf, &other]);
    // Every node learns of the issuer and the certificates from the shared feed.
    for n in [&a, &b, &c] {
        eventually(Duration::from_secs(10), "good everywhere", || match answer(&pki, n, &leaf) {
            s if s == "good" => Ok(()),
            s => Err(s),
        });
    }
    // One signer for the fleet: every node serves the same pre-signed bytes.
    eventually(Duration::from_secs(20), "the same pre-signed response on every node", || {
        let req = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pki.request_der(&leaf));
        let bodies: Vec<Http> = [&a, &b, &c].iter().map(|n| curl(&[&format!("{}/{}", n.url, req)])).collect();
        let etags: Vec<Option<&str>> = bodies.iter().map(|h| h.header("etag")).collect();
        if bodies.iter().all(|h| h.body == bodies[0].body) && etags.iter().all(|e| e.is_some() && *e == etags[0]) {
            Ok(())
        } else {
            Err(format!("{etags:?}"))
        }
    });
    let status = fleet_status(&c);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{status}");
    assert_eq!(nodes.iter().filter(|n| n["signs"] == true).count(), 1, "one signer: {status}");
    assert_eq!(nodes.iter().filter(|n| n["purges"] == true).count(), 1, "one purger: {status}");

    let started = Instant::now();
    a.ctl_ok(&["revoke", "--issuer", "int", "--serial", "1001", "--reason", "keyCompromise"]);
    for n in [&b, &c, &a] {
        eventually(Duration::from_secs(5), "revoked everywhere", || match answer(&pki, n, &leaf) {
            s if s == "revoked" => Ok(()),
            s => Err(s),
        });
        assert_eq!(answer(&pki, n, &other), "good", "only the revoked certificate changed");
    }
    eprintln!("revoked on every node {:?} after ocspctl returned", started.elapsed());
    // The audit record is the fleet's: node C shows what was done through node A.
    let audit = c.ctl_ok(&["audit", "--serial", "1001"]);
    assert!(audit.contains("revoke"), "{audit}");
}

#[test]
fn globalsign_2016_cross_root_holds_across_the_fleet() {
    use ocsp_testpki::Issued;
    let pg = Postgres::start();
    let (a, b) = (node(&pg, "a"), node(&pg, "b"));
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let r1 = Issued::root("GlobalSign-like Root R1", KeyAlg::P256).unwrap();
    let r2 = Issued::root("GlobalSign-like Root R2", KeyAlg::P256).unwrap();
    let shared_serial = [0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0f];
    let cross = r2.cross_sign(&r1, &shared_serial).unwrap();
    let same_serial_leaf = r1.leaf("same-serial.r1.test", &shared_serial).unwrap();
    r1.write(dir.path(), "r1", true).unwrap();
    r2.write(dir.path(), "r2", true).unwrap();
    cross.write(dir.path(), "cross", false).unwrap();
    same_serial_leaf.write(dir.path(), "same-serial", false).unwrap();
    for name in ["r1", "r2"] {
        a.ctl_ok(&[
            "issuer",
            "add",
            "--name",
            name,
            "--cert",
            &p(&format!("{name}.pem")),
            "--key",
            &p(&format!("{name}.key")),
        ]);
    }
    a.ctl_ok(&["cert", "add", "--pem", &p("cross.pem"), &p("same-serial.pem")]);
    a.ctl_ok(&["revoke", "--issuer", "r2", "--serial", "0400000000010f", "--reason", "cACompromise"]);
    let ask = |url: &str, issuer: &str, cert: &str| {
        let out = openssl_ocsp(&[
            "-issuer",
            &p(&format!("{issuer}.pem")),
            "-cert",
            &p(&format!("{cert}.pem")),
            "-url",
            url,
            "-VAfile",
            &p(&format!("{issuer}.pem")),
            "-no_nonce",
        ]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    eventually(Duration::from_secs(10), "node b answers the cross certificate revoked", || {
        let s = ask(&b.url, "r2", "cross");
        if s.contains("Response verify OK") && s.contains("cross.pem: revoked") {
            Ok(())
        } else {
            Err(s)
        }
    });
    for n in [&a, &b] {
        let s = ask(&n.url, "r1", "same-serial");
        assert!(s.contains("Response verify OK") && s.contains("same-serial.pem: good"), "{s}");
    }
}

#[test]
fn with_postgres_down_nodes_serve_for_their_serving_lease_then_never_good_and_everything_catches_up() {
    // A node cut off from PostgreSQL cannot know what was acknowledged since: it answers
    // from its replica for its serving lease, then says nothing an acknowledged revocation
    // could contradict (no good, revoked still), until it is back and caught up.
    let pg = Postgres::start();
    let lease = ["--fleet-serving-lease", "6s"];
    let (a, b) = (
        node_with(&pg, "a", tempfile::tempdir().unwrap(), &lease),
        node_with(&pg, "b", tempfile::tempdir().unwrap(), &lease),
    );
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=200u32).map(|n| format!("2{n:05x}")).collect();
    import(&a, &serials);
    let gone = &serials[199];
    a.ctl_ok(&["revoke", "--issuer", "int", "--serial", gone, "--reason", "keyCompromise"]);
    let sample = &serials[..20];
    // Pre-signed everywhere: every answer on both nodes comes from the replica's responses.
    for n in [&a, &b] {
        eventually(Duration::from_secs(30), "pre-signed on every node", || {
            let m = curl(&[&n.metrics_url]);
            let body = text(&m.body);
            let served = ask_many(&pki, n, sample, None);
            if served["good"] == 20 && body.contains("ocspd_fleet_lag_changes 0") {
                Ok(())
            } else {
                Err(served.to_string())
            }
        });
    }
    pg.down();
    let down = Instant::now();
    // Within the serving lease: zero failed GETs, /readyz degraded but 200.
    for n in [&a, &b] {
        let asked = ask_many(&pki, n, sample, None);
        assert_eq!(asked["good"], sample.len(), "{asked}");
        let r = curl(&[&format!("{}/readyz", n.url)]);
        assert!(r.status == 200 || down.elapsed() > Duration::from_secs(3), "{} {}", r.status, text(&r.body));
    }
    // A revocation fails at once with a clear message, and nothing is half-applied.
    let started = Instant::now();
    let out = a.ctl(&["revoke", "--issuer", "int", "--serial", &serials[0], "--reason", "keyCompromise"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("fleet database is unavailable"), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(10), "failed after {:?}", started.elapsed());
    // Past the lease: not ready, no good (tryLater), revoked still revoked.
    for n in [&a, &b] {
        eventually(Duration::from_secs(15), "out of service", || {
            let r = curl(&[&format!("{}/readyz", n.url)]);
            if r.status == 503 && text(&r.body).contains("out of service") {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, text(&r.body)))
            }
        });
        let (st, http) = status_at(&pki, &n.url, &serials[0]);
        assert_eq!(st, "trylater", "a good answer while out of service");
        assert_eq!(http.header("cache-control"), Some("max-age=0, no-cache"), "tryLater is never cached");
        assert_eq!(status_at(&pki, &n.url, gone).0, "revoked");
    }

    pg.up();
    for n in [&a, &b] {
        eventually(Duration::from_secs(20), "ready again", || {
            let r = curl(&[&format!("{}/readyz", n.url)]);
            if r.status == 200 && text(&r.body).trim() == "ready" {
                Ok(())
            } else {
                Err(text(&r.body))
            }
        });
    }
    a.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serials[0], "--reason", "keyCompromise"]);
    for n in [&a, &b] {
        assert_eq!(answer_serial(&pki, n, &serials[0]), "revoked");
        assert_eq!(answer_serial(&pki, n, &serials[1]), "good");
    }
}

/// What the node answers for one serial (via ask_many).
pub(crate) fn answer_serial(pki: &TestPki, node: &Responder, serial: &str) -> String {
    let v = ask_many(pki, node, &[serial.to_string()], None);
    for k in ["good", "revoked", "unknown"] {
        if v[k] == 1 {
            return k.to_string();
        }
    }
    v.to_string()
}

#[test]
fn a_node_stopped_during_revocations_answers_them_all_revoked_after_restart() {
    let pg = Postgres::start();
    let (a, c) = (node(&pg, "a"), node(&pg, "c"));
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=10_000u32).map(|n| format!("3{n:06x}")).collect();
    let file = import(&a, &serials);
    eventually(Duration::from_secs(30), "c has the certificates", || {
        let s = answer_serial(&pki, &c, &serials[9_999]);
        if s == "good" {
            Ok(())
        } else {
            Err(s)
        }
    });
    // Node c dies (kill -9) while the 10,000 revocations are made through a, in batches.
    let dir = c.kill();
    for chunk in serials.chunks(2_500) {
        std::fs::write(&file, chunk.join("\n")).unwrap();
        a.ctl_ok(&["bulk-revoke", "--issuer", "int", "--file", file.to_str().unwrap(), "--reason", "keyCompromise"]);
    }
    // Changes carry the records they wrote; rows from before schema version 2 carry none and
    // are brought from the tables. Once a has re-signed the revoked certificates, strip every
    // other change of each kind that c has not applied, so c follows the feed both ways.
    all_signed(&pg, serials.len(), Duration::from_secs(60), "a re-signed every revoked certificate");
    let stripped = pg.sql(
        "WITH s AS (UPDATE changes SET records = NULL WHERE seq IN ( \
           SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY kind ORDER BY seq) AS n FROM changes \
             WHERE records IS NOT NULL AND seq >= (SELECT applied FROM nodes WHERE name = 'c')) x \
           WHERE n % 2 = 1) RETURNING kind) \
         SELECT count(*) FILTER (WHERE kind = 1) || ' ' || count(*) FILTER (WHERE kind = 4) FROM s",
    );
    // Kind 1 is a status change, 4 a signed one (ChangeKind::code).
    let (status_changes, signed_changes): (usize, usize) = match stripped.trim().split_once(' ') {
        Some((s, a)) => (s.parse().unwrap(), a.parse().unwrap()),
        None => panic!("{stripped}"),
    };
    assert!(status_changes >= 2 && signed_changes >= 1, "stripped {stripped}");
    let c = node_in(&pg, "c", dir);
    eventually(Duration::from_secs(30), "c caught up", || {
        let r = curl(&[&format!("{}/readyz", c.url)]);
        if r.status == 200 {
            Ok(())
        } else {
            Err(text(&r.body))
        }
    });
    let dc = tempfile::tempdir().unwrap();
    let asked = ask_many(&pki, &c, &serials, Some(dc.path()));
    assert_eq!(asked["revoked"], serials.len(), "{asked}");
    // And c serves the responses a's signer stored, byte for byte (whichever way each change
    // reached c), not answers it signed itself.
    let sample: Vec<String> = serials.iter().step_by(100).cloned().collect();
    let da = tempfile::tempdir().unwrap();
    ask_many(&pki, &a, &sample, Some(da.path()));
    for s in &sample {
        let name = format!("{}.der", s.to_lowercase());
        assert_eq!(std::fs::read(da.path().join(&name)).unwrap(), std::fs::read(dc.path().join(&name)).unwrap(), "{s}");
    }
}

/// The summary `ocspctl --json bulk-revoke` prints last.
fn bulk_revoke_json(node: &Responder, file: &Path) -> serde_json::Value {
    let out = node.ctl_ok(&[
        "--json",
        "bulk-revoke",
        "--issuer",
        "int",
        "--reason",
        "keyCompromise",
        "--file",
        file.to_str().unwrap(),
    ]);
    let last = out.lines().rfind(|l| l.contains("already_revoked")).unwrap_or_default();
    json(last)
}

#[test]
fn the_same_bulk_revocation_through_two_nodes_at_once_revokes_each_certificate_once() {
    // A bulk batch reads its statuses before taking the feed lock and checks under the lock
    // that no change since touched them. Two nodes revoking the same certificates at the same
    // moment: whichever commits second must find them revoked already (counted once), never
    // act on what it read before the other's commit.
    let pg = Postgres::start();
    let (a, b) = (node(&pg, "a"), node(&pg, "b"));
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 3_000;
    let serials: Vec<String> = (1..=(ROUNDS * PER_ROUND) as u32).map(|n| format!("6{n:06x}")).collect();
    import(&a, &serials);
    eventually(Duration::from_secs(30), "b has the certificates", || {
        match answer_serial(&pki, &b, &serials[serials.len() - 1]) {
            s if s == "good" => Ok(()),
            s => Err(s),
        }
    });
    for (round, chunk) in serials.chunks(PER_ROUND).enumerate() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), chunk.join("\n")).unwrap();
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| bulk_revoke_json(&a, file.path()));
            let tb = s.spawn(|| bulk_revoke_json(&b, file.path()));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
        assert_eq!(count(&ra, "revoked") + count(&rb, "revoked"), PER_ROUND as u64, "round {round}: a {ra}, b {rb}");
        assert_eq!(
            count(&ra, "already_revoked") + count(&rb, "already_revoked"),
            PER_ROUND as u64,
            "round {round}: a {ra}, b {rb}"
        );
    }
    let asked = ask_many(&pki, &b, &serials, None);
    assert_eq!(asked["revoked"], serials.len(), "{asked}");
}

#[test]
fn a_new_node_copies_the_fleet_and_serves_byte_identical_responses() {
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=100_000u32).map(|n| format!("4{n:06x}")).collect();
    let file = import(&a, &serials);
    std::fs::write(&file, serials[..500].join("\n")).unwrap();
    a.ctl_ok(&["bulk-revoke", "--issuer", "int", "--file", file.to_str().unwrap(), "--reason", "superseded"]);
    // Wait until the signer has stored both responses of every certificate.
    all_signed(&pg, serials.len(), Duration::from_secs(120), "every response signed");
    let started = Instant::now();
    let d = node(&pg, "d");
    eventually(Duration::from_secs(60), "the new node is ready", || {
        let r = curl(&[&format!("{}/readyz", d.url)]);
        if r.status == 200 {
            Ok(())
        } else {
            Err(text(&r.body))
        }
    });
    eprintln!("node d ready {:?} after it started", started.elapsed());
    // A sample of answers, byte for byte the same as the first node's.
    let sample: Vec<String> = serials.iter().step_by(500).cloned().chain(serials[..5].iter().cloned()).collect();
    let (da, dd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_a = ask_many(&pki, &a, &sample, Some(da.path()));
    let on_d = ask_many(&pki, &d, &sample, Some(dd.path()));
    assert_eq!(on_a, on_d);
    assert_eq!(on_d["failed"], 0, "{on_d}");
    let revoked = sample.iter().filter(|s| serials[..500].contains(s)).count();
    assert_eq!(on_d["revoked"], revoked, "{on_d}");
    for s in &sample {
        let name = format!("{}.der", s.to_lowercase());
        assert_eq!(std::fs::read(da.path().join(&name)).unwrap(), std::fs::read(dd.path().join(&name)).unwrap(), "{s}");
    }
}

#[test]
fn when_the_signing_node_dies_another_signs_and_nothing_superseded_is_served() {
    let pg = Postgres::start();
    let (a, b) = (node(&pg, "a"), node(&pg, "b"));
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    eventually(Duration::from_secs(10), "a signer", || holder(&a, "signs").map(|_| ()).ok_or_else(|| "none".into()));
    let serials: Vec<String> = (1..=40_000u32).map(|n| format!("5{n:06x}")).collect();
    let file = import(&a, &serials);
    let (mut a, mut b) = (Some(a), Some(b));
    // Revocations while the pass runs, then the signer dies in the middle of it.
    std::fs::write(&file, serials.iter().step_by(7).cloned().collect::<Vec<_>>().join("\n")).unwrap();
    a.as_ref().unwrap().ctl_ok(&[
        "bulk-revoke",
        "--issuer",
        "int",
        "--file",
        file.to_str().unwrap(),
        "--reason",
        "superseded",
    ]);
    let signer = holder(a.as_ref().unwrap(), "signs").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let survivor = if signer == "a" {
        let _ = a.take().unwrap().kill();
        b.take().unwrap()
    } else {
        let _ = b.take().unwrap().kill();
        a.take().unwrap()
    };
    let killed = Instant::now();
    eventually(Duration::from_secs(10), "another node signs", || match holder(&survivor, "signs") {
        Some(h) if h != signer => Ok(()),
        other => Err(format!("{other:?}")),
    });
    eprintln!("the signer lease moved {:?} after kill -9", killed.elapsed());
    // Every stored response was signed from the status that is current now.
    all_signed(&pg, serials.len(), Duration::from_secs(120), "every response signed again");
    // The response's source status (bytes 25..52 of the stored form) equals the status row.
    let stale = pg.sql(
        "SELECT count(*) FROM responses r JOIN statuses s USING (issuer_key, serial) \
         WHERE substring(r.response from 26 for 27) <> s.record",
    );
    assert_eq!(stale.trim(), "0", "responses signed from a superseded status are stored");
    // And what the surviving node serves says what the status says.
    let revoked: Vec<String> = serials.iter().step_by(7).cloned().collect();
    let asked = ask_many(&pki, &survivor, &revoked, None);
    assert_eq!(asked["revoked"], revoked.len(), "{asked}");
    let good: Vec<String> = serials.iter().skip(1).step_by(7).cloned().collect();
    let asked = ask_many(&pki, &survivor, &good, None);
    assert_eq!(asked["good"], good.len(), "{asked}");
}

#[test]
fn the_shipped_postgresql_settings_are_accepted_by_postgresql() {
    let pg = Postgres::start();
    let data = PathBuf::from(pg.data());
    let ours = data.join("ocspd.conf");
    std::fs::copy(repo().join("deploy/postgresql/ocspd.conf"), &ours).unwrap();
    let check = data.join("check.conf");
    std::fs::write(&check, format!("include '{}/postgresql.conf'\ninclude '{}'\n", data.display(), ours.display()))
        .unwrap();
    if is_root() {
        run(Command::new("chown").args(["postgres:postgres"]).arg(&ours).arg(&check));
    }
    // `postgres -C` reads the whole configuration, as a start would, and prints one setting.
    for (name, want) in [("synchronous_commit", "on"), ("synchronous_standby_names", "FIRST 1"), ("fsync", "on")] {
        let out = as_pg(
            &pg_bin("postgres"),
            &["-D", &pg.data(), "-c", &format!("config_file={}", check.display()), "-C", name],
        );
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success() && said.contains(want), "{name}: {said}");
    }
}

#[test]
fn one_node_signs_the_crls_and_every_node_serves_the_same_bytes() {
    let pg = Postgres::start();
    // The CRLs' URLs name the public CRL origin, the same whichever node signs.
    let crl = ["--crl-base-url", "http://crl.test", "--crl-within", "4s", "--crl-coalesce", "1s"];
    let (a, b) = (
        node_with(&pg, "a", tempfile::tempdir().unwrap(), &crl),
        node_with(&pg, "b", tempfile::tempdir().unwrap(), &crl),
    );
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    a.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key"), "--shards", "2"]);
    let serials: Vec<String> = (1..=50u32).map(|n| format!("6{n:04x}")).collect();
    import(&a, &serials);
    b.ctl_ok(&["revoke", "--issuer", "int", "--serial", &serials[7], "--reason", "keyCompromise"]);
    let shard = ocsp_proto::shard_of(ocsp_proto::Serial::from_hex(&serials[7]).unwrap().as_bytes(), 2);
    let path = format!("/crl/int/{shard}.crl");
    eventually(Duration::from_secs(20), "both nodes serve the same CRL with the revocation", || {
        let (on_a, on_b) = (curl(&[&format!("{}{path}", a.url)]), curl(&[&format!("{}{path}", b.url)]));
        if on_a.status != 200 || on_a.body != on_b.body {
            return Err(format!("{} / {}, same bytes: {}", on_a.status, on_b.status, on_a.body == on_b.body));
        }
        crl_lists(&pki, &on_a.body, &serials[7], Some("http://crl.test/crl/int/"))
    });
    // One signer: both nodes report the same numbers, and the fleet's database holds them.
    let numbers = |n: &Responder| -> Vec<u64> {
        json(&n.ctl_ok(&["--json", "crl", "status"]))
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["number"].as_u64().unwrap())
            .collect()
    };
    eventually(Duration::from_secs(10), "the same CRL numbers on both nodes", || {
        let (x, y) = (numbers(&a), numbers(&b));
        if x == y && x.iter().all(|n| *n > 0) {
            Ok(())
        } else {
            Err(format!("{x:?} {y:?}"))
        }
    });
    assert_eq!(pg.sql("SELECT count(*) FROM crls").trim(), "2");
    for n in [&a, &b] {
        let out = n.ctl_ok(&["crl", "verify"]);
        assert!(out.contains("they agree"), "{out}");
    }
}

#[test]
fn purges_are_delivered_once_per_fleet_whichever_node_revokes() {
    let pg = Postgres::start();
    let varnish_port = free_port();
    let conf = tempfile::tempdir().unwrap();
    let purge = conf.path().join("purge.toml");
    std::fs::write(
        &purge,
        format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"),
    )
    .unwrap();
    let with_purge = ["--purge-config", purge.to_str().unwrap()];
    let a = node_with(&pg, "a", tempfile::tempdir().unwrap(), &with_purge);
    let b = node_with(&pg, "b", tempfile::tempdir().unwrap(), &with_purge);
    let varnish = crate::edge::Varnish::start(crate::edge::port_of(&a.url), varnish_port);
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&a);
    let serials: Vec<String> = (1..=20u32).map(|n| format!("7{n:04x}")).collect();
    import(&a, &serials);
    eventually(Duration::from_secs(10), "one purger", || holder(&a, "purges").map(|_| ()).ok_or_else(|| "none".into()));
    let before = varnish.stat("MAIN.bans_added");
    // Six revocations, alternately through each node: whichever node revokes, the purge is
    // delivered once, by the purger, and the revoking node hears it was (no warning).
    for (i, serial) in serials[..6].iter().enumerate() {
        let n = if i % 2 == 0 { &a } else { &b };
        let out = n.ctl(&["revoke", "--issuer", "int", "--serial", serial, "--reason", "keyCompromise"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!said.contains("not yet purged"), "{said}");
    }
    eventually(Duration::from_secs(10), "six bans at Varnish", || match varnish.stat("MAIN.bans_added") - before {
        6 => Ok(()),
        n => Err(format!("{n} bans")),
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(varnish.stat("MAIN.bans_added") - before, 6, "each purge was delivered once for the fleet");
}
