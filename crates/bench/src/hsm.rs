//! `make bench-hsm`: pre-signing through a SoftHSM2 token against the software signer, and the
//! backup-promotion drill on 1,000,000 certificates.

use super::{serial_of, Server};
use crate::http::{get_path, populate, populate_with};

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token store in `dir` with one token, "bench", PIN 1234 (a throwaway test token).
fn softhsm(dir: &Path) -> Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )?;
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .context("softhsm2-util (Debian package softhsm2)")?;
        if !out.status.success() {
            bail!("softhsm2-util {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(&["--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin", "87654321"])?;
    std::fs::write(dir.join("pin"), "1234\n")?;
    Ok(conf)
}

fn rate(server: &Server) -> Result<(f64, ocsp_admin::api::PresignStats)> {
    let stats = server.wait_for_pass()?;
    if stats.errors > 0 {
        bail!("pre-signing errors: {stats:?}");
    }
    Ok((stats.last_pass_signed as f64 / (stats.last_pass_ms.max(1) as f64 / 1000.0), stats))
}

/// presign_pkcs11_p256: a pass over `n` certificates signing through SoftHSM2 (a pool of one
/// session per core), against the software signer, same machine, same run.
pub fn presign_pkcs11(n: u32) -> Result<()> {
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let soft_dir = tempfile::tempdir()?;
    populate(soft_dir.path(), n)?;
    let (soft, _) = rate(&Server::start(soft_dir.path())?)?;

    let dir = tempfile::tempdir()?;
    let conf = softhsm(dir.path())?;
    let conf_s = conf.display().to_string();
    let env = [("SOFTHSM2_CONF", conf_s.as_str()), ("OCSPD_PKCS11_MODULES", MODULE)];
    let uri = format!(
        "pkcs11:token=bench;object=root?module-path={MODULE}&pin-source=file:{}&sessions={cores}",
        dir.path().join("pin").display()
    );
    populate_with(dir.path(), n, &env, |d| {
        let key = d.join("root.key");
        let out = Command::new("softhsm2-util")
            .args(["--import"])
            .arg(&key)
            .args(["--token", "bench", "--label", "root", "--id", "01", "--pin", "1234"])
            .env("SOFTHSM2_CONF", &conf)
            .output()?;
        if !out.status.success() {
            bail!("importing the key: {}", String::from_utf8_lossy(&out.stderr));
        }
        // From here on the key is only on the token.
        std::fs::remove_file(&key)?;
        Ok(uri.clone())
    })?;
    let server = Server::start_env(dir.path(), &[], &env)?;
    let (hsm, stats) = rate(&server)?;
    println!("bench presign_pkcs11_p256: {hsm:.0} /s ratio {:.2} vs software", hsm / soft);
    eprintln!(
        "({n} certificates, {} responses; SoftHSM2 with {cores} sessions: {hsm:.0} /s; the software signer (aws-lc-rs) in the same run: {soft:.0} /s)",
        stats.last_pass_signed
    );
    Ok(())
}

/// promote_backup_1m: `n` certificates pre-signed by the primary; `ocspctl issuer promote`;
/// the time until every stored response is signed by the backup's key (checked by reading
/// every response from the database afterwards).
pub fn promote_backup(n: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (hashes, root) = populate_with(dir.path(), n, &[], |d| Ok(d.join("root.key").display().to_string()))?;
    // The backup: a delegated responder issued in advance by the issuer, with its own key.
    let backup = root
        .responder("bench backup responder", &ocsp_testpki::ResponderOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    backup.write(dir.path(), "backup", true)?;
    let backup_hash = {
        let info = ocsp_proto::x509::CertInfo::from_der(&backup.der)?;
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &info.public_key).as_ref().to_vec()
    };
    let server = Server::start(dir.path())?;
    let setup = Instant::now();
    server.wait_for_pass()?;
    eprintln!("setup: {} responses pre-signed by the primary in {:.0} s", 2 * n as u64, setup.elapsed().as_secs_f64());
    // As in real life: some certificates revoked (1 %), some asked often (in the memory tier).
    let revoked = dir.path().join("revoked.txt");
    let list: String = (0..n / 100).map(|i| format!("{}\n", serial_of(1 + i * 100))).collect();
    std::fs::write(&revoked, list)?;
    let file = revoked.to_str().context("path")?;
    server.ctl(&["--json", "bulk-revoke", "--issuer", "root", "--file", file, "--reason", "keyCompromise"])?;
    server.wait_for_pass()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hot: Vec<String> = (0..5000u32).map(|i| get_path(&hashes, &serial_of(1 + i * 7))).collect::<Result<_>>()?;
    rt.block_on(crate::http::fetch_all_pub(&server.public_url, &hot))?;
    let (cert, key) = (dir.path().join("backup.pem"), dir.path().join("backup.key"));
    server.ctl(&[
        "issuer",
        "backup",
        "--name",
        "root",
        "--responder-cert",
        cert.to_str().context("path")?,
        "--key",
        key.to_str().context("path")?,
    ])?;
    let started = Instant::now();
    let out = server.ctl(&["--json", "issuer", "promote", "--name", "root", "--why", "drill"])?;
    let secs = started.elapsed().as_secs_f64();
    let done: serde_json::Value = serde_json::from_str(out.trim())?;
    // Sample over HTTP while ocspd runs, then every stored response from the database.
    let sample: Vec<String> =
        (0..1000u32).map(|i| get_path(&hashes, &serial_of(1 + i * (n / 1000).max(1)))).collect::<Result<_>>()?;
    let bodies = rt.block_on(crate::http::fetch_all_pub(&server.public_url, &sample))?;
    let by_backup = |der: &[u8]| -> bool {
        matches!(ocsp_proto::decode_response(der), Ok((_, Some(basic)))
            if matches!(&basic.tbs_response_data.responder_id, rasn_ocsp::ResponderId::ByKey(h) if h.as_ref() == backup_hash.as_slice()))
    };
    let sampled_ok = bodies.iter().filter(|b| by_backup(b)).count();
    drop(server);
    let store = ocsp_store::Store::open(&dir.path().join("data/db"))?;
    let (mut total, mut new_key) = (0u64, 0u64);
    let mut after: Option<ocsp_proto::AnswerKey> = None;
    loop {
        let page = store.scan_responses(after.as_ref(), 50_000)?;
        if page.is_empty() {
            break;
        }
        for (_, resp) in &page {
            total += 1;
            if by_backup(&resp.der) {
                new_key += 1;
            }
        }
        after = page.last().map(|r| r.0.clone());
    }
    if total != 2 * n as u64 || new_key != total || sampled_ok != sample.len() {
        bail!("after promotion: {new_key} of {total} stored responses signed by the backup (want {}), {sampled_ok} of {} sampled", 2 * n, sample.len());
    }
    println!("bench promote_backup_1m: {secs:.1} s");
    eprintln!(
        "({n} certificates: from `ocspctl issuer promote` to every one of the {total} stored responses signed by the backup key; {} revoked and {} most-asked re-signed first; all 1,000 sampled HTTP answers signed by the backup)",
        done["revoked_first"], done["hot_next"]
    );
    Ok(())
}
