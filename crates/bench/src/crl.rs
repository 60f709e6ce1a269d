//! `make bench-crl`:
//! - crl_get_hot: GET of a CRL shard of about 1 MB, ocspd against nginx serving the same
//!   file, interleaved rounds of wrk.
//! - crl_mass_revocation_3m: 3,000,000 certificates of an issuing CA with 64 CRL shards,
//!   revoked in bulk: from the acknowledgement of the bulk revocation until every shard is
//!   signed again and served (fetched over HTTP) with all 3,000,000 entries.

use crate::http::{fetch_all_pub, free_port, interleaved, median, start_nginx};
use crate::{serial_of, write_serials, Server};
use anyhow::{bail, Context, Result};
use der::Decode;
use std::path::Path;
use std::time::{Duration, Instant};

/// An issuing CA under a throwaway root, registered with its own key for OCSP and CRLs, and
/// `n` serials recorded; returns the file of serials.
fn load_ca(server: &Server, dir: &Path, n: u32) -> Result<std::path::PathBuf> {
    let root =
        ocsp_testpki::Issued::root("bench root", ocsp_testpki::KeyAlg::P256).map_err(|e| anyhow::anyhow!("{e}"))?;
    let int =
        root.intermediate("bench issuing CA", 2, ocsp_testpki::KeyAlg::P256).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cert = int.write(dir, "int", true)?.display().to_string();
    let key = dir.join("int.key").display().to_string();
    server.ctl(&["issuer", "add", "--name", "int", "--cert", &cert, "--key", &key])?;
    server.ctl(&["issuer", "crl-key", "--name", "int", "--key", &key])?;
    let serials = dir.join("serials.txt");
    write_serials(&serials, n)?;
    let started = Instant::now();
    let file = serials.display().to_string();
    server.ctl(&["--json", "import", "--issuer", "int", "--csv", &file, "--batch", "50000"])?;
    eprintln!("setup: {n} certificates recorded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(serials)
}

/// The shards' state.
fn shards(server: &Server) -> Result<Vec<serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_str(server.ctl(&["--json", "crl", "status"])?.trim())?;
    Ok(v.as_array().context("crl status")?.clone())
}

/// Waits until every shard is signed with nothing pending and `entries` entries in all.
fn wait_settled(server: &Server, entries: u64, limit: Duration) -> Result<Vec<serde_json::Value>> {
    let started = Instant::now();
    loop {
        let list = shards(server)?;
        let total: u64 = list.iter().map(|s| s["entries"].as_u64().unwrap_or(0)).sum();
        let signed =
            list.iter().all(|s| s["number"].as_u64().unwrap_or(0) > 0 && !s["dirty"].as_bool().unwrap_or(true));
        if !list.is_empty() && signed && total == entries {
            return Ok(list);
        }
        if started.elapsed() > limit {
            bail!("CRLs not settled after {limit:?}: {total} of {entries} entries");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn path_of(url: &str) -> Result<String> {
    let rest = url.split_once("://").context("url")?.1;
    Ok(rest[rest.find('/').context("path")?..].to_string())
}

/// GET of one shard of about 1 MB: ocspd against nginx serving the same bytes.
pub fn crl_get_hot(entries: u32, secs: u32, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start_with(dir.path(), &["--no-presign", "--crl-coalesce", "1s"])?;
    let serials = load_ca(&server, dir.path(), entries)?;
    crate::bulk_revoke_of(&server, &serials, "int")?;
    let list = wait_settled(&server, u64::from(entries), Duration::from_secs(120))?;
    let url = list[0]["url"].as_str().context("url")?.to_string();
    let path = path_of(&url)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = rt.block_on(fetch_all_pub(&server.public_url, std::slice::from_ref(&path)))?.remove(0);
    let root = dir.path().join("www");
    let file = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().context("parent")?)?;
    std::fs::write(&file, &body)?;
    let nginx_port = free_port()?;
    let _nginx = start_nginx(dir.path(), &root, nginx_port)?;
    let nginx_url = format!("http://127.0.0.1:{nginx_port}");
    if rt.block_on(fetch_all_pub(&nginx_url, std::slice::from_ref(&path)))?[0] != body {
        bail!("nginx does not serve the bytes ocspd serves");
    }
    let script = dir.path().join("crl.lua");
    std::fs::write(&script, format!("request = function()\n  return wrk.format(\"GET\", \"{path}\")\nend\n"))?;
    let (ours, theirs) = interleaved(&server.public_url, &nginx_url, &script, rounds, secs)?;
    let (o, t) = (median(ours.clone()), median(theirs.clone()));
    println!("bench crl_get_hot: {o:.0} /s ratio {:.2} vs nginx static", o / t);
    eprintln!(
        "(one CRL shard of {} bytes, {entries} entries; wrk -t1 -c64, {rounds} interleaved rounds of {secs} s; ocspd {:?}, nginx {:?}; target: ratio >= 1.0)",
        body.len(),
        ours.iter().map(|v| v.round()).collect::<Vec<_>>(),
        theirs.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    Ok(())
}

/// 3,000,000 certificates in 64 shards revoked in bulk: from the acknowledgement until every
/// shard is signed again and served with all of them.
pub fn crl_mass_revocation(n: u32, shards_n: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let shards_arg = shards_n.to_string();
    let server = Server::start_with(
        dir.path(),
        &["--no-presign", "--crl-shards", &shards_arg, "--crl-within", "60s", "--crl-coalesce", "2s"],
    )?;
    let serials = load_ca(&server, dir.path(), n)?;
    let before = wait_settled(&server, 0, Duration::from_secs(60))?;
    let numbers: Vec<u64> = before.iter().map(|s| s["number"].as_u64().unwrap_or(0)).collect();
    let started = Instant::now();
    crate::bulk_revoke_of(&server, &serials, "int")?;
    let acknowledged = Instant::now();
    let revoke_secs = started.elapsed().as_secs_f64();
    let list = wait_settled(&server, u64::from(n), Duration::from_secs(600))?;
    for (s, old) in list.iter().zip(&numbers) {
        if s["number"].as_u64().unwrap_or(0) <= *old {
            bail!("shard {} was not signed again", s["shard"]);
        }
    }
    // Served: every shard fetched over HTTP, its entries counted.
    let paths: Vec<String> = list.iter().map(|s| path_of(s["url"].as_str().unwrap_or(""))).collect::<Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bodies = rt.block_on(fetch_all_pub(&server.public_url, &paths))?;
    let mut served = 0usize;
    for b in &bodies {
        let crl = x509_cert::crl::CertificateList::from_der(b).map_err(|e| anyhow::anyhow!("served CRL: {e}"))?;
        served += crl.tbs_cert_list.revoked_certificates.map_or(0, |r| r.len());
    }
    let secs = acknowledged.elapsed().as_secs_f64();
    if served != n as usize {
        bail!("{served} entries served, {n} revoked");
    }
    println!("bench crl_mass_revocation_3m: {secs:.1} s");
    eprintln!(
        "({n} certificates of one issuing CA in {shards_n} shards ({} MB served in all); bulk revocation acknowledged after {revoke_secs:.1} s; every shard signed again and fetched with all entries {secs:.1} s after the acknowledgement; target: at most 60 s)",
        bodies.iter().map(Vec::len).sum::<usize>() / 1_000_000
    );
    let _ = serial_of(1);
    Ok(())
}
