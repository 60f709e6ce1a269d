//! `ocsp-bench`: benchmarks that drive the real `ocspd` and `ocspctl` binaries on 127.0.0.1,
//! each printing `bench <name>: <value> <unit>` (and, where it compares, a ratio against a
//! reference measured in the same run). Run through `make bench` / `make bench-<name>`.
//!
//! Benchmarks stop by themselves and send traffic to loopback only.

mod crl;
mod fleet;
mod hsm;
mod http;
mod soak;

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A binary next to this one (same cargo profile).
fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no parent")?.join(name);
    if !path.exists() {
        bail!("{} is missing; build with `cargo build --release --bins`", path.display());
    }
    Ok(path)
}

/// The repository (for deploy/ files).
fn repo() -> Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?)
}

/// A running ocspd in a temporary data folder.
struct Server {
    pub(crate) child: Child,
    public_url: String,
    admin_url: String,
    metrics_url: String,
    data: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Result<Server> {
        Server::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Result<Server> {
        Server::start_env(dir, extra, &[])
    }

    fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Server> {
        let data = dir.join("data");
        let mut child = Command::new(bin("ocspd")?)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(extra)
            // OCSP_BENCH_NODE_LOG (a RUST_LOG filter) shows more of the servers' logs.
            .env("RUST_LOG", std::env::var("OCSP_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut public_url, mut admin_url, mut metrics_url) = (None, None, None);
        while admin_url.is_none() || public_url.is_none() || metrics_url.is_none() {
            let line = lines.next().context("ocspd exited before listening")??;
            if let Some(u) = line.strip_prefix("ocspd: admin API listening on ") {
                admin_url = Some(u.to_string());
            } else if let Some(u) = line.strip_prefix("ocspd: OCSP responder listening on ") {
                public_url = Some(u.to_string());
            } else if let Some(u) = line.strip_prefix("ocspd: metrics listening on ") {
                metrics_url = Some(u.to_string());
            }
        }
        // Keep draining stdout so ocspd never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child,
            public_url: public_url.unwrap_or_default(),
            admin_url: admin_url.unwrap_or_default(),
            metrics_url: metrics_url.unwrap_or_default(),
            data,
        })
    }

    fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(bin("ocspctl")?)
            .args(["--admin-url", &self.admin_url, "--token-file"])
            .arg(self.data.join("admin.token"))
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("ocspctl {args:?} failed");
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The pre-signer's counters, from the admin API.
    fn presign_stats(&self) -> Result<ocsp_admin::api::PresignStats> {
        let token = std::fs::read_to_string(self.data.join("admin.token"))?;
        let client = ocsp_admin::AdminClient::new(&self.admin_url, &token)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(rt.block_on(client.call(hyper::Method::GET, "/v1/presign", None::<&()>))?)
    }

    /// Waits for the pass ocspd runs at start to finish; returns the counters.
    fn wait_for_pass(&self) -> Result<ocsp_admin::api::PresignStats> {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let s = self.presign_stats()?;
            if s.passes >= 1 && !s.pass_running && s.urgent == 0 {
                return Ok(s);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_serials(path: &Path, n: u32) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 1..=n {
        writeln!(f, "{}", serial_of(i))?;
    }
    Ok(())
}

/// Registers a self-signed issuer of `alg` in a fresh ocspd and records `n` serials, with no
/// pre-signer running; returns the issuer's hashes and the file of serials. ocspd is stopped
/// again; the database stays in `dir`.
fn load(dir: &Path, alg: ocsp_testpki::KeyAlg, n: u32) -> Result<(ocsp_proto::IssuerHashes, PathBuf)> {
    let server = Server::start_with(dir, &["--no-presign"])?;
    let root = ocsp_testpki::Issued::root("bench root", alg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cert = root.write(dir, "root", true)?.display().to_string();
    let key = dir.join("root.key").display().to_string();
    server.ctl(&["issuer", "add", "--name", "root", "--cert", &cert, "--key", &key])?;
    let serials = dir.join("serials.txt");
    write_serials(&serials, n)?;
    let started = Instant::now();
    let file = serials.display().to_string();
    server.ctl(&["--json", "import", "--issuer", "root", "--csv", &file, "--batch", "50000"])?;
    eprintln!("setup: {n} certificates recorded in {:.1} s", started.elapsed().as_secs_f64());
    Ok((ocsp_proto::IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&root.der)?), serials))
}

/// `ocspctl bulk-revoke` of every serial in `file`; returns the last (summary) line.
fn bulk_revoke(server: &Server, file: &Path) -> Result<String> {
    bulk_revoke_of(server, file, "root")
}

/// [`bulk_revoke`] of the issuer registered as `issuer`.
fn bulk_revoke_of(server: &Server, file: &Path, issuer: &str) -> Result<String> {
    let file = file.display().to_string();
    let args =
        ["--json", "bulk-revoke", "--issuer", issuer, "--file", &file, "--reason", "keyCompromise", "--batch", "50000"];
    Ok(server.ctl(&args)?.lines().last().unwrap_or("").to_string())
}

/// Bulk revocation of 3,000,000 serials from a file: the time until all are acknowledged
/// durable (each batch fsynced before it is acknowledged; ocspctl keeps two in flight).
fn revoke(n: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_, serials) = load(dir.path(), ocsp_testpki::KeyAlg::P256, n)?;
    let server = Server::start_with(dir.path(), &["--no-presign"])?;
    let started = Instant::now();
    let summary = bulk_revoke(&server, &serials)?;
    let secs = started.elapsed().as_secs_f64();
    if !summary.contains(&format!("\"revoked\":{n}")) {
        bail!("not every serial was revoked: {summary}");
    }
    println!("bench revoke_3m: {secs:.1} s");
    eprintln!("({n} serials, {:.0} revocations/s durable; target: at most 60 s)", n as f64 / secs);
    Ok(())
}

/// `openssl speed` signatures per second on one core, measured now.
fn openssl_speed(alg: &str) -> Result<f64> {
    let out = Command::new("openssl").args(["speed", "-seconds", "3", alg]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The result line ends with "sign/s verify/s": the second-to-last number.
    let line = text
        .lines()
        .rev()
        .find(|l| {
            let curve = match alg {
                "rsa2048" => "rsa",
                "ecdsap384" => "nistp384",
                _ => "nistp256",
            };
            l.contains(curve) && l.split_whitespace().count() >= 4
        })
        .with_context(|| format!("no result line in openssl speed {alg}: {text}"))?;
    let nums: Vec<f64> = line.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    nums.get(nums.len().saturating_sub(2)).copied().context("no sign/s figure")
}

/// Pre-signing `n` certificates end to end (read status, build, sign, write back, both CertID
/// forms), against `openssl speed` single-core signing times the cores.
fn presign(n: u32, alg: ocsp_testpki::KeyAlg, name: &str, speed_alg: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let reference = openssl_speed(speed_alg)? * cores as f64;
    load(dir.path(), alg, n)?;
    // The pass at start signs every certificate.
    let stats = Server::start(dir.path())?.wait_for_pass()?;
    if stats.errors > 0 || stats.last_pass_signed < 2 * n as u64 {
        bail!("pre-signing incomplete: {stats:?}");
    }
    let rate = stats.last_pass_signed as f64 / (stats.last_pass_ms.max(1) as f64 / 1000.0);
    println!("bench {name}: {rate:.0} /s ratio {:.2} vs openssl speed x cores", rate / reference);
    eprintln!(
        "({n} certificates, {} responses in {:.1} s on {cores} cores; openssl speed {speed_alg}: {:.0} sign/s per core)",
        stats.last_pass_signed,
        stats.last_pass_ms as f64 / 1000.0,
        reference / cores as f64
    );
    Ok(())
}

/// The `i`-th benchmark serial: 16 random-looking bytes, like a CA's (a counter spread out).
fn serial_of(i: u32) -> String {
    format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// Asks ocspd over HTTP (POST, one keep-alive connection) for each serial; returns how many
/// answers say revoked, and how many were anything but a successful response.
async fn sample_revoked(url: &str, hashes: &ocsp_proto::IssuerHashes, serials: &[String]) -> Result<(usize, usize)> {
    use http_body_util::BodyExt;
    let authority = url.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut revoked, mut failed) = (0, 0);
    for s in serials {
        let id =
            hashes.cert_id(ocsp_proto::HashAlg::Sha1, ocsp_proto::Serial::from_hex(s).map_err(|e| anyhow::anyhow!(e))?);
        let body = ocsp_proto::encode_request(&[id])?;
        let req = hyper::Request::post("/")
            .header(hyper::header::HOST, &authority)
            .header(hyper::header::CONTENT_TYPE, "application/ocsp-request")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let der = resp.into_body().collect().await?.to_bytes();
        match ocsp_proto::decode_response(&der) {
            Ok((_, Some(basic))) => {
                if matches!(basic.tbs_response_data.responses[0].cert_status, rasn_ocsp::CertStatus::Revoked(_)) {
                    revoked += 1;
                }
            }
            _ => failed += 1,
        }
    }
    Ok((revoked, failed))
}

/// 3,000,000 certificates registered and pre-signed, all revoked in bulk: the time from the
/// start of the revocation until every sampled certificate is served revoked over HTTP.
fn mass_revocation(n: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (hashes, serials) = load(dir.path(), ocsp_testpki::KeyAlg::P256, n)?;
    let server = Server::start(dir.path())?;
    let setup = Instant::now();
    let stats = server.wait_for_pass()?;
    eprintln!("setup: {} responses pre-signed in {:.0} s", stats.signed, setup.elapsed().as_secs_f64());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // 1,000 serials spread over the whole range.
    let sample: Vec<String> = (0..1000u32).map(|i| serial_of(1 + i * (n / 1000).max(1))).collect();
    let (before, _) = rt.block_on(sample_revoked(&server.public_url, &hashes, &sample))?;
    if before != 0 {
        bail!("{before} sampled certificates revoked before the revocation");
    }
    let started = Instant::now();
    bulk_revoke(&server, &serials)?;
    let acknowledged = started.elapsed().as_secs_f64();
    loop {
        let (revoked, failed) = rt.block_on(sample_revoked(&server.public_url, &hashes, &sample))?;
        if revoked == sample.len() {
            break;
        }
        if started.elapsed().as_secs() > 600 {
            bail!("after 600 s only {revoked} of {} sampled are served revoked ({failed} failed)", sample.len());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("bench mass_revocation_3m: {secs:.1} s");
    eprintln!(
        "({n} certificates; bulk revocation acknowledged after {acknowledged:.1} s; 1,000 sampled over HTTP all revoked at {secs:.1} s; target: at most 60 s)"
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("revoke") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3_000_000);
            revoke(n)
        }
        Some("presign") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
            let only = args.get(2).map(String::as_str);
            let p256 = || presign(n, ocsp_testpki::KeyAlg::P256, "presign_p256", "ecdsap256");
            let p384 = || presign(n, ocsp_testpki::KeyAlg::P384, "presign_p384", "ecdsap384");
            let rsa = || presign(n, ocsp_testpki::KeyAlg::Rsa2048, "presign_rsa2048", "rsa2048");
            match only {
                Some("p256") => p256(),
                Some("p384") => p384(),
                Some("rsa2048") => rsa(),
                _ => p256().and_then(|_| p384()).and_then(|_| rsa()),
            }
        }
        Some("mass-revocation") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3_000_000);
            mass_revocation(n)
        }
        Some("presign-pkcs11") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
            hsm::presign_pkcs11(n)
        }
        Some("promote-backup") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
            hsm::promote_backup(n)
        }
        Some("get-hot") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
            http::get_hot(n, 5, 3)
        }
        Some("get-cold") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
            let memory = args.get(2).map(String::as_str).unwrap_or("256MiB");
            let db_cache = args.get(3).map(String::as_str).unwrap_or("64MiB");
            http::get_cold(n, 30.0, memory, db_cache)
        }
        Some("purge-p99") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            http::purge_p99(n, args.get(2).map(String::as_str) != Some("no-wait"))
        }
        Some("crl-get-hot") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30_000);
            crl::crl_get_hot(n, 5, 3)
        }
        Some("crl-mass-revocation") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3_000_000);
            let shards = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
            crl::crl_mass_revocation(n, shards)
        }
        Some("fleet-revoke-p99") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            fleet::revoke_p99(n)
        }
        Some("fleet-mass-revocation") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3_000_000);
            fleet::mass_revocation(n)
        }
        Some("fleet-get-hot") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
            fleet::get_hot(n, 5, 3)
        }
        Some("fleet-bootstrap") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
            fleet::bootstrap(n)
        }
        Some("soak") => {
            let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(600);
            let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            soak::soak(n, secs)
        }
        _ => Err(anyhow::anyhow!(
            "usage: ocsp-bench soak [SECONDS [N]] | revoke [N] | presign [N [p256|p384|rsa2048]] | mass-revocation [N] | get-hot [N] | get-cold [N [MEM DBCACHE]] | purge-p99 [N [no-wait]] | presign-pkcs11 [N] | promote-backup [N] | crl-get-hot [ENTRIES] | crl-mass-revocation [N [SHARDS]] | fleet-revoke-p99 [N] | fleet-mass-revocation [N] | fleet-get-hot [N] | fleet-bootstrap [N]"
        )),
    };
    if let Err(e) = result {
        eprintln!("ocsp-bench: {e:#}");
        std::process::exit(1);
    }
}
