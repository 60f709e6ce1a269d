//! `make bench-http`: the HTTP front and its cache hierarchy, on 127.0.0.1 only.
//!
//! - get_hot: GETs of pre-signed answers held in the memory tier, against nginx serving the
//!   same DER bytes as static files under the same paths; load from wrk, runs interleaved.
//! - get_cold / rss_cold: uniformly random serials over a 10,000,000-certificate database
//!   with the memory tier capped at 256 MiB, against hot GETs with the same generator.
//! - purge_p99: from `ocspctl revoke` returning to the first revoked answer through Varnish.

use super::{bin, serial_of, Server};
use anyhow::{bail, Context, Result};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A child process stopped on drop: SIGTERM first (nginx's master then stops its workers),
/// SIGKILL if it lingers.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The GET path of the RFC 5019 request (SHA-1 CertID, no nonce) for one serial.
pub(crate) fn get_path(hashes: &ocsp_proto::IssuerHashes, serial: &str) -> Result<String> {
    let serial = ocsp_proto::Serial::from_hex(serial).map_err(|e| anyhow::anyhow!(e))?;
    let der = ocsp_proto::encode_request(&[hashes.cert_id(ocsp_proto::HashAlg::Sha1, serial)])?;
    Ok(format!("/{}", base64::engine::general_purpose::STANDARD.encode(der)))
}

/// Load from `conns` keep-alive HTTP/1.1 connections for `secs`, each request taking the next
/// path of `paths` (wrapping around); returns (requests per second, non-200 answers).
pub(crate) fn generate(url: &str, paths: Arc<Vec<String>>, conns: usize, secs: f64) -> Result<(f64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let authority = url.trim_start_matches("http://").to_string();
    rt.block_on(async move {
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (authority, paths, next, done, bad, stop) =
                (authority.clone(), paths.clone(), next.clone(), done.clone(), bad.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                use http_body_util::BodyExt;
                let stream = tokio::net::TcpStream::connect(&authority).await?;
                stream.set_nodelay(true)?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize % paths.len();
                    let req = hyper::Request::get(paths[i].as_str())
                        .header(hyper::header::HOST, &authority)
                        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
                    let resp = sender.send_request(req).await?;
                    if resp.status() != 200 {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    resp.into_body().collect().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let count = done.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await??;
        }
        Ok((count as f64 / elapsed, bad.load(Ordering::Relaxed)))
    })
}

/// wrk against `url` with a Lua script cycling through `script`'s paths; requests per second.
pub(crate) fn wrk(url: &str, script: &Path, secs: u32) -> Result<f64> {
    let out = Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{secs}s"), "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk (Debian package wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk saw errors: {text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))
}

/// Registers a self-signed P-256 issuer in a fresh ocspd and records `n` certificates directly
/// in its database (batches of 100,000, each durable). Returns the issuer's hashes.
pub(crate) fn populate(dir: &Path, n: u32) -> Result<ocsp_proto::IssuerHashes> {
    Ok(populate_with(dir, n, &[], |dir| Ok(dir.join("root.key").display().to_string()))?.0)
}

/// Like [`populate`], with the issuer's key given by `key` (a file or a pkcs11: URI, made
/// from the folder where root.key was written) and ocspd started with `env`.
pub(crate) fn populate_with(
    dir: &Path,
    n: u32,
    env: &[(&str, &str)],
    key: impl FnOnce(&Path) -> Result<String>,
) -> Result<(ocsp_proto::IssuerHashes, ocsp_testpki::Issued)> {
    let root =
        ocsp_testpki::Issued::root("bench root", ocsp_testpki::KeyAlg::P256).map_err(|e| anyhow::anyhow!("{e}"))?;
    {
        let cert = root.write(dir, "root", true)?.display().to_string();
        let key = key(dir)?;
        let server = Server::start_env(dir, &["--no-presign"], env)?;
        server.ctl(&["issuer", "add", "--name", "root", "--cert", &cert, "--key", &key])?;
    }
    let hashes = ocsp_proto::IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&root.der)?);
    let started = Instant::now();
    let store = ocsp_store::Store::open(&dir.join("data/db"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let not_after = now + 90 * 86_400;
    let mut i = 1;
    while i <= n {
        let end = (i + 100_000).min(n + 1);
        let batch: Vec<(ocsp_proto::Serial, i64)> = (i..end)
            .map(|k| Ok((ocsp_proto::Serial::from_hex(&serial_of(k)).map_err(|e| anyhow::anyhow!(e))?, not_after)))
            .collect::<Result<_>>()?;
        store.record_issued(&hashes.key(), &batch, now, ocsp_store::AuditEntry::new(now, "bench", "cert.add"))?;
        i = end;
    }
    eprintln!("setup: {n} certificates recorded directly in {:.0} s", started.elapsed().as_secs_f64());
    Ok((hashes, root))
}

fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// get_hot: ocspd's memory tier against nginx serving the same bytes, wrk, interleaved.
pub fn get_hot(n: u32, secs: u32, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hashes = populate(dir.path(), n)?;
    let t = Instant::now();
    let server = Server::start(dir.path())?;
    server.wait_for_pass()?;
    eprintln!("setup: pre-signed in {:.1} s", t.elapsed().as_secs_f64());
    // A path ending in '/' (1 in 64) cannot be a static file; both servers get the same list.
    let paths: Vec<String> = (1..=n)
        .map(|i| get_path(&hashes, &serial_of(i)))
        .filter(|p| p.as_ref().map_or(true, |p| !p.ends_with('/')))
        .collect::<Result<_>>()?;

    // The same bytes as static files, for nginx: fetched from ocspd (which also warms its
    // memory tier with every one of them).
    let root = dir.path().join("www");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bodies = rt.block_on(fetch_all(&server.public_url, &paths))?;
    for (path, body) in paths.iter().zip(&bodies) {
        let file = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().context("parent")?)?;
        std::fs::write(&file, body)?;
    }
    let nginx_port = free_port()?;
    let _nginx = start_nginx(dir.path(), &root, nginx_port)?;
    let nginx_url = format!("http://127.0.0.1:{nginx_port}");
    eprintln!("setup: static files written, nginx started at {:.1} s", t.elapsed().as_secs_f64());
    let check = rt.block_on(fetch_all(&nginx_url, &paths[..10]))?;
    if check[..] != bodies[..10] {
        bail!("nginx does not serve the bytes ocspd serves");
    }

    let script = dir.path().join("paths.lua");
    let mut lua = String::from("local paths = {\n");
    for p in &paths {
        lua.push_str(&format!("  \"{p}\",\n"));
    }
    lua.push_str("}\nlocal i = 0\nsetup = function(thread) end\ninit = function(args) i = math.random(#paths) end\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n");
    std::fs::write(&script, lua)?;

    let (ours, theirs) = interleaved(&server.public_url, &nginx_url, &script, rounds, secs)?;
    let (o, t) = (median(ours.clone()), median(theirs.clone()));
    println!("bench get_hot: {o:.0} /s ratio {:.2} vs nginx static", o / t);
    eprintln!(
        "({n} pre-signed responses in the memory tier, {} B each on average; wrk -t1 -c64, {rounds} interleaved rounds of {secs} s; ocspd {:?}, nginx {:?}; target: ratio >= 1.0)",
        bodies.iter().map(Vec::len).sum::<usize>() / bodies.len().max(1),
        ours.iter().map(|v| v.round()).collect::<Vec<_>>(),
        theirs.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    Ok(())
}

pub(crate) async fn fetch_all_pub(url: &str, paths: &[String]) -> Result<Vec<Vec<u8>>> {
    fetch_all(url, paths).await
}

async fn fetch_all(url: &str, paths: &[String]) -> Result<Vec<Vec<u8>>> {
    use http_body_util::BodyExt;
    let authority = url.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let req = hyper::Request::get(p.as_str())
            .header(hyper::header::HOST, &authority)
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        if resp.status() != 200 {
            bail!("GET {p}: {}", resp.status());
        }
        out.push(resp.into_body().collect().await?.to_bytes().to_vec());
    }
    Ok(out)
}

/// A 2 s warm-up of each, then `rounds` interleaved wrk runs of `secs` against `ours` and
/// `theirs`: the requests per second of each run.
pub(crate) fn interleaved(
    ours: &str,
    theirs: &str,
    script: &Path,
    rounds: usize,
    secs: u32,
) -> Result<(Vec<f64>, Vec<f64>)> {
    wrk(ours, script, 2)?;
    wrk(theirs, script, 2)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(wrk(ours, script, secs)?);
        b.push(wrk(theirs, script, secs)?);
    }
    Ok((a, b))
}

pub(crate) fn start_nginx(dir: &Path, root: &Path, port: u16) -> Result<Proc> {
    // nginx workers may run as another user: make the files readable.
    Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status()?;
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes auto;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nodelay on;\n  keepalive_requests 10000000;\n\
             open_file_cache max=200000 inactive=300s;\n  open_file_cache_valid 300s;\n\
             types {{ }}\n  default_type application/ocsp-response;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    location / {{ }}\n  }}\n}}\n",
            p = prefix.display(),
            root = root.display()
        ),
    )?;
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|n| Command::new(n).arg("-v").output().is_ok())
        .context("nginx is not installed (Debian package nginx-light)")?;
    let child = Command::new(nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_for_port(port, "nginx")?;
    Ok(Proc(child))
}

/// Where the 10M-certificate database is kept between runs (it takes minutes to build).
fn cold_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe.parent().and_then(Path::parent).context("target folder")?;
    Ok(target.join("bench-data").join("cold"))
}

/// get_cold and rss_cold.
pub fn get_cold(n: u32, secs: f64, memory: &str, db_cache: &str) -> Result<()> {
    let dir = cold_dir()?;
    let marker = dir.join("ready");
    // Pre-signed responses are valid 24 h; a database older than 12 h is rebuilt.
    let fresh = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(12 * 3600))
        .unwrap_or(false);
    let count_ok = std::fs::read_to_string(&marker).map(|s| s.trim() == n.to_string()).unwrap_or(false);
    let hashes = if fresh && count_ok {
        eprintln!("setup: reusing the {n}-certificate database in {}", dir.display());
        let root = std::fs::read(dir.join("root.der"))?;
        ocsp_proto::IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&root)?)
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let hashes = populate(&dir, n)?;
        let root_pem = std::fs::read_to_string(dir.join("root.pem"))?;
        let der = ocsp_proto::x509::pem_block(&root_pem, "CERTIFICATE").context("root.pem")?;
        std::fs::write(dir.join("root.der"), der)?;
        let started = Instant::now();
        let stats = Server::start(&dir)?.wait_for_pass()?;
        eprintln!("setup: {} responses pre-signed in {:.0} s", stats.last_pass_signed, started.elapsed().as_secs_f64());
        std::fs::write(&marker, n.to_string())?;
        hashes
    };
    // Serve only: no pre-signer pass competes with the measurement.
    let server = Server::start_with(&dir, &["--no-presign", "--memory-cache", memory, "--db-cache", db_cache])?;
    let pid = server.child.id();
    let conns = 64;
    // Hot: 10,000 serials, fetched once to sit in the memory tier.
    let hot: Vec<String> =
        (1..=10_000).map(|i| get_path(&hashes, &serial_of(1 + i * (n / 10_000)))).collect::<Result<_>>()?;
    let hot = Arc::new(hot);
    generate(&server.public_url, hot.clone(), 8, 2.0)?;
    // Cold: uniformly random serials (xorshift), each asked once.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let cold_n = 3_000_000usize;
    let mut cold = Vec::with_capacity(cold_n);
    for _ in 0..cold_n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cold.push(get_path(&hashes, &serial_of(1 + (x % n as u64) as u32))?);
    }
    let cold = Arc::new(cold);
    let (mut hots, mut colds) = (Vec::new(), Vec::new());
    let mut bad_total = 0;
    for round in 0..3 {
        let (h, bad_h) = generate(&server.public_url, hot.clone(), conns, secs / 3.0)?;
        // Each cold round starts where the last stopped: no serial is asked twice.
        let offset = round * cold_n / 3;
        let slice = Arc::new(cold[offset..offset + cold_n / 3].to_vec());
        let (c, bad_c) = generate(&server.public_url, slice, conns, secs / 3.0)?;
        bad_total += bad_h + bad_c;
        hots.push(h);
        colds.push(c);
    }
    if bad_total > 0 {
        bail!("{bad_total} answers were not 200");
    }
    let (h, c) = (median(hots.clone()), median(colds.clone()));
    let (rss, hwm) = rss_mib(pid)?;
    let metrics = rt_get(&server.metrics_url)?;
    let metric = |name: &str| -> String {
        metrics.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default()
    };
    println!("bench get_cold: {c:.0} /s ratio {:.2} vs hot", c / h);
    println!("bench rss_cold: {hwm:.0} MiB");
    eprintln!(
        "({n} certificates, {} B of responses on disk; {conns} connections, same generator; hot {:?}, cold {:?}; memory tier {} B in {} entries, RSS now {rss:.0} MiB, peak {hwm:.0} MiB with --memory-cache {memory} --db-cache {db_cache}; targets: ratio >= 0.5, peak <= 512 MiB)",
        dir_size(&dir.join("data/db")),
        hots.iter().map(|v| v.round()).collect::<Vec<_>>(),
        colds.iter().map(|v| v.round()).collect::<Vec<_>>(),
        metric("ocspd_memory_tier_bytes"),
        metric("ocspd_memory_tier_entries"),
    );
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn rt_get(url: &str) -> Result<String> {
    let out = Command::new("curl").args(["-s", "--max-time", "10", url]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// purge_p99: `ocspctl revoke` returning, to the first revoked answer through Varnish.
pub fn purge_p99(n: u32, wait: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let varnish_port = free_port()?;
    let purge = dir.path().join("purge.toml");
    std::fs::write(
        &purge,
        format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"),
    )?;
    let hashes = populate(dir.path(), n)?;
    let mut args = vec!["--purge-config", purge.to_str().context("path")?];
    if !wait {
        // ocspctl returns as soon as the revocation is durable; the purge follows on its own.
        args.extend(["--purge-wait", "0"]);
    }
    let server = Server::start_with(dir.path(), &args)?;
    server.wait_for_pass()?;
    let backend_port: u16 = server.public_url.rsplit(':').next().context("port")?.parse()?;
    let vcl = std::fs::read_to_string(super::repo()?.join("deploy/varnish/ocspd.vcl"))?
        .replace(".port = \"8080\";", &format!(".port = \"{backend_port}\";"));
    let vcl_path = dir.path().join("ocspd.vcl");
    std::fs::write(&vcl_path, vcl)?;
    let workdir = dir.path().join("varnish");
    let _varnish = Proc(
        Command::new("varnishd")
            .args(["-F", "-j", "none", "-s", "malloc,256m", "-n"])
            .arg(&workdir)
            .arg("-f")
            .arg(&vcl_path)
            .args(["-a", &format!("127.0.0.1:{varnish_port}"), "-T", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("varnishd (Debian package varnish)")?,
    );
    wait_for_port(varnish_port, "varnishd")?;
    let edge = format!("http://127.0.0.1:{varnish_port}");
    let paths: Vec<String> = (1..=n).map(|i| get_path(&hashes, &serial_of(i))).collect::<Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Every answer cached at the edge (the second fetch is a hit).
    rt.block_on(fetch_all(&edge, &paths))?;
    let (mut lag, mut ctl) = (Vec::new(), Vec::new());
    let (mut polls, mut hits_before) = (0u64, 0u64);
    rt.block_on(async {
        use http_body_util::BodyExt;
        let authority = edge.trim_start_matches("http://").to_string();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        for (i, path) in paths.iter().enumerate() {
            let serial = serial_of(i as u32 + 1);
            let started = Instant::now();
            let out = tokio::process::Command::new(bin("ocspctl")?)
                .args(["--admin-url", &server.admin_url, "--token-file"])
                .arg(server.data.join("admin.token"))
                .args(["revoke", "--issuer", "root", "--serial", &serial, "--reason", "keyCompromise"])
                .output()
                .await?;
            let returned = Instant::now();
            if !out.status.success() {
                bail!("ocspctl revoke failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            ctl.push(returned.duration_since(started).as_secs_f64() * 1000.0);
            loop {
                let req = hyper::Request::get(path.as_str())
                    .header(hyper::header::HOST, &authority)
                    .body(http_body_util::Empty::<bytes::Bytes>::new())?;
                let resp = sender.send_request(req).await?;
                let hit = resp.headers().get("x-cache").is_some_and(|v| v == "HIT");
                let der = resp.into_body().collect().await?.to_bytes();
                polls += 1;
                let revoked = match ocsp_proto::decode_response(&der) {
                    Ok((_, Some(basic))) => {
                        matches!(basic.tbs_response_data.responses[0].cert_status, rasn_ocsp::CertStatus::Revoked(_))
                    }
                    _ => false,
                };
                if revoked {
                    lag.push(returned.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                if hit {
                    hits_before += 1;
                }
                if returned.elapsed() > Duration::from_secs(60) {
                    bail!("serial {serial} still not revoked through Varnish after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        anyhow::Ok(())
    })?;
    let pct = |v: &mut Vec<f64>, p: f64| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let p99 = pct(&mut lag, 0.99);
    let name = if wait { "purge_p99" } else { "purge_p99_no_wait" };
    println!("bench {name}: {p99:.1} ms");
    eprintln!(
        "({n} revocations; revoke-to-revoked-through-Varnish p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms; {polls} polls, {hits_before} stale hits seen after ocspctl returned; ocspctl revoke itself (process start, durable write, purge accepted) p50 {:.0} ms, p99 {:.0} ms; target: p99 <= 1000 ms)",
        pct(&mut lag, 0.5),
        pct(&mut lag, 1.0),
        pct(&mut ctl, 0.5),
        pct(&mut ctl, 0.99)
    );
    Ok(())
}
