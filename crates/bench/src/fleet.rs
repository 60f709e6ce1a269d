//! `make bench-fleet`: fleet mode on 127.0.0.1: a real PostgreSQL (as the `postgres` user
//! when run as root) and three ocspd nodes.
//!
//! - fleet_revoke_p99: from `ocspctl revoke` returning on node A to revoked answers from all
//!   three nodes, p99 over 1,000 revocations.
//! - fleet_mass_revocation_3m: 3,000,000 pre-signed certificates revoked in bulk through one
//!   node, until 1,000 sampled serials answer revoked on every node.
//! - fleet_get_hot: hot GETs on one fleet node against a single-node ocspd serving the same
//!   responses, interleaved.
//! - fleet_bootstrap_1m: a new node, from an empty folder to ready, on a 1,000,000-certificate
//!   fleet.

use crate::http::{fetch_all_pub, get_path, interleaved, median};
use crate::{sample_revoked, serial_of, write_serials, Server};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL cluster in a temporary folder, stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    url: String,
}

fn pg_bin(name: &str) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().with_context(|| format!("PostgreSQL's {name} is missing (Debian package postgresql)"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn as_pg(program: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd.args(args).output()?;
    if !out.status.success() {
        bail!("{}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A quarter of this machine's memory, in MiB (at least 128).
fn quarter_of_memory_mb() -> u64 {
    let kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string())))
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(4 << 20);
    (kib / 1024 / 4).max(128)
}

impl Postgres {
    fn start() -> Result<Postgres> {
        let dir = tempfile::tempdir()?;
        if is_root() {
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status()?;
        }
        let data = dir.path().join("pg").display().to_string();
        as_pg(&pg_bin("initdb")?, &["-D", &data, "-U", "ocspd", "-A", "trust", "-E", "UTF8"])?;
        let port = crate::http::free_port()?;
        // Durable as in production: fsync and synchronous commit on (no standby here), with
        // deploy/postgresql/ocspd.conf's WAL settings and its rule for shared_buffers (a
        // quarter of the host's memory). OCSP_BENCH_PG_OPTS adds settings (e.g.
        // `-c log_min_duration_statement=100`, or `-c shared_buffers=1GB`) and
        // OCSP_BENCH_PG_LOG keeps PostgreSQL's log at that path, for profiling.
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200 -c shared_buffers={}MB \
             -c max_wal_size=16GB -c checkpoint_timeout=15min -c checkpoint_completion_target=0.9 -c wal_compression=lz4 {}",
            dir.path().display(),
            quarter_of_memory_mb(),
            std::env::var("OCSP_BENCH_PG_OPTS").unwrap_or_default()
        );
        let log =
            std::env::var("OCSP_BENCH_PG_LOG").unwrap_or_else(|_| dir.path().join("pg.log").display().to_string());
        as_pg(&pg_bin("pg_ctl")?, &["-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "60", "start"])?;
        Ok(Postgres { url: format!("postgresql://ocspd@127.0.0.1:{port}/postgres"), dir })
    }

    fn sql(&self, sql: &str) -> Result<String> {
        let out = Command::new("psql").args([&self.url, "-X", "-A", "-t", "-c", sql]).output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(pg_ctl) = pg_bin("pg_ctl") {
            let data = self.dir.path().join("pg").display().to_string();
            let _ = as_pg(&pg_ctl, &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn node(pg: &Postgres, dir: &Path, name: &str, extra: &[&str]) -> Result<Server> {
    let mut args = vec!["--fleet-db", pg.url.as_str(), "--node-name", name];
    args.extend_from_slice(extra);
    Server::start_with(dir, &args)
}

/// Waits until `/readyz` answers 200 ("ready", or "degraded" if `degraded_ok`).
fn wait_ready(server: &Server, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let out =
            Command::new("curl").args(["-s", "--max-time", "5", &format!("{}/readyz", server.public_url)]).output()?;
        if String::from_utf8_lossy(&out.stdout).trim() == "ready" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not ready within {within:?}: {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fleet of three nodes with one self-signed issuer and `n` certificates recorded through
/// the first, every response pre-signed and on every node.
struct Fleet {
    pg: Postgres,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Server>,
    hashes: ocsp_proto::IssuerHashes,
    serials: PathBuf,
}

fn fleet(n: u32) -> Result<Fleet> {
    let pg = Postgres::start()?;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir()).collect::<std::io::Result<_>>()?;
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(node(&pg, d.path(), &format!("node{}", i + 1), &[])?);
    }
    let root =
        ocsp_testpki::Issued::root("bench root", ocsp_testpki::KeyAlg::P256).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cert = root.write(dirs[0].path(), "root", true)?.display().to_string();
    let key = dirs[0].path().join("root.key").display().to_string();
    nodes[0].ctl(&["issuer", "add", "--name", "root", "--cert", &cert, "--key", &key])?;
    let serials = dirs[0].path().join("serials.txt");
    write_serials(&serials, n)?;
    let started = Instant::now();
    let file = serials.display().to_string();
    nodes[0].ctl(&["--json", "import", "--issuer", "root", "--csv", &file, "--batch", "50000"])?;
    eprintln!("setup: {n} certificates recorded through node1 in {:.1} s", started.elapsed().as_secs_f64());
    let want = 2 * n as u64;
    loop {
        let stored: u64 = pg.sql("SELECT count(*) FROM responses")?.parse().unwrap_or(0);
        let lag: u64 = pg
            .sql("SELECT coalesce(max(f.next - n.applied), 0) FROM nodes n, feed_head f")?
            .parse()
            .unwrap_or(u64::MAX);
        if stored >= want && lag == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("pre-signing not done after an hour: {stored} of {want} responses, lag {lag}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("setup: {want} responses pre-signed and on every node at {:.0} s", started.elapsed().as_secs_f64());
    let hashes = ocsp_proto::IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&root.der)?);
    Ok(Fleet { pg, dirs, nodes, hashes, serials })
}

/// fleet_revoke_p99.
pub fn revoke_p99(n: u32) -> Result<()> {
    let f = fleet(n)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut delays = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let serial = serial_of(i);
        f.nodes[0].ctl(&["revoke", "--issuer", "root", "--serial", &serial, "--reason", "keyCompromise"])?;
        let returned = Instant::now();
        for node in &f.nodes {
            loop {
                let (revoked, _) =
                    rt.block_on(sample_revoked(&node.public_url, &f.hashes, std::slice::from_ref(&serial)))?;
                if revoked == 1 {
                    break;
                }
                if returned.elapsed() > Duration::from_secs(30) {
                    bail!("{serial} not revoked on {} after 30 s", node.public_url);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        delays.push(returned.elapsed().as_secs_f64() * 1000.0);
    }
    delays.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    println!("bench fleet_revoke_p99: {:.0} ms", p(0.99));
    eprintln!(
        "({n} revocations through node1, each until node1, node2 and node3 answer revoked over HTTP: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; target: p99 at most 1000 ms)",
        p(0.5),
        p(0.9),
        delays[delays.len() - 1]
    );
    Ok(())
}

/// fleet_mass_revocation_3m.
pub fn mass_revocation(n: u32) -> Result<()> {
    let f = fleet(n)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sample: Vec<String> = (0..1000u32).map(|i| serial_of(1 + i * (n / 1000).max(1))).collect();
    for node in &f.nodes {
        let (before, failed) = rt.block_on(sample_revoked(&node.public_url, &f.hashes, &sample))?;
        if before != 0 || failed != 0 {
            bail!("before the revocation: {before} revoked, {failed} failed on {}", node.public_url);
        }
    }
    let started = Instant::now();
    crate::bulk_revoke(&f.nodes[0], &f.serials)?;
    let acknowledged = started.elapsed().as_secs_f64();
    let mut at = Vec::new();
    for node in &f.nodes {
        loop {
            let (revoked, failed) = rt.block_on(sample_revoked(&node.public_url, &f.hashes, &sample))?;
            if revoked == sample.len() {
                at.push(started.elapsed().as_secs_f64());
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                bail!("after 1800 s only {revoked} of 1000 sampled revoked on {} ({failed} failed)", node.public_url);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("bench fleet_mass_revocation_3m: {secs:.1} s");
    // Not part of the figure: until the signer has stored both responses of every revoked
    // certificate again (until then they are answered revoked by live signing). Skipped with
    // OCSP_BENCH_NO_RESIGN_WAIT=1 (it takes minutes).
    let mut resigned = String::new();
    while std::env::var_os("OCSP_BENCH_NO_RESIGN_WAIT").is_none() {
        let stored: u64 = f.pg.sql("SELECT count(*) FROM responses")?.parse().unwrap_or(0);
        if stored >= 2 * n as u64 {
            resigned =
                format!("; every revoked certificate pre-signed again at {:.0} s", started.elapsed().as_secs_f64());
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("after an hour only {stored} of {} responses signed again", 2 * n);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "({n} pre-signed certificates revoked in bulk through node1, acknowledged after {acknowledged:.1} s; 1,000 sampled all revoked on node1, node2, node3 at {:.1} / {:.1} / {:.1} s{resigned}; target: at most 120 s)",
        at[0], at[1], at[2]
    );
    Ok(())
}

/// fleet_get_hot.
pub fn get_hot(n: u32, secs: u32, rounds: usize) -> Result<()> {
    let f = fleet(n)?;
    // The single node: the same issuer and certificates, its own RocksDB.
    let single_dir = tempfile::tempdir()?;
    let single = Server::start(single_dir.path())?;
    let cert = f.dirs[0].path().join("root.pem").display().to_string();
    let key = f.dirs[0].path().join("root.key").display().to_string();
    single.ctl(&["issuer", "add", "--name", "root", "--cert", &cert, "--key", &key])?;
    let file = f.serials.display().to_string();
    single.ctl(&["--json", "import", "--issuer", "root", "--csv", &file, "--batch", "50000"])?;
    single.wait_for_pass()?;
    let paths: Vec<String> = (1..=n).map(|i| get_path(&f.hashes, &serial_of(i))).collect::<Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Warm both memory tiers with every path.
    let on_fleet = rt.block_on(fetch_all_pub(&f.nodes[1].public_url, &paths))?;
    let on_single = rt.block_on(fetch_all_pub(&single.public_url, &paths))?;
    let avg = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() / v.len().max(1);
    let script = f.dirs[1].path().join("paths.lua");
    let mut lua = String::from("local paths = {\n");
    for p in &paths {
        lua.push_str(&format!("  \"{p}\",\n"));
    }
    lua.push_str("}\nlocal i = 0\ninit = function(args) i = math.random(#paths) end\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n");
    std::fs::write(&script, lua)?;
    let (fleet_rates, single_rates) = interleaved(&f.nodes[1].public_url, &single.public_url, &script, rounds, secs)?;
    let (a, b) = (median(fleet_rates.clone()), median(single_rates.clone()));
    println!("bench fleet_get_hot: {a:.0} /s ratio {:.2} vs single node", a / b);
    eprintln!(
        "({n} certificates, responses {} B (fleet) / {} B (single) on average, in each memory tier; wrk -t1 -c64, {rounds} interleaved rounds of {secs} s; fleet node2 {:?}, single {:?}; target: ratio >= 0.95)",
        avg(&on_fleet),
        avg(&on_single),
        fleet_rates.iter().map(|v| v.round()).collect::<Vec<_>>(),
        single_rates.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    Ok(())
}

/// fleet_bootstrap_1m.
pub fn bootstrap(n: u32) -> Result<()> {
    let f = fleet(n)?;
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let fourth = node(&f.pg, dir.path(), "node4", &[])?;
    wait_ready(&fourth, Duration::from_secs(1800))?;
    let secs = started.elapsed().as_secs_f64();
    // It serves what the others serve.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let paths: Vec<String> =
        (0..100u32).map(|i| get_path(&f.hashes, &serial_of(1 + i * (n / 100).max(1)))).collect::<Result<_>>()?;
    let theirs = rt.block_on(fetch_all_pub(&f.nodes[0].public_url, &paths))?;
    let ours = rt.block_on(fetch_all_pub(&fourth.public_url, &paths))?;
    if theirs != ours {
        bail!("the new node does not serve the bytes node1 serves");
    }
    println!("bench fleet_bootstrap_1m: {secs:.1} s");
    eprintln!(
        "({n} certificates, {} responses in PostgreSQL; node4 from an empty folder to /readyz ready, including the process start; 100 sampled answers byte-identical to node1's; target: at most 60 s)",
        2 * n
    );
    Ok(())
}
