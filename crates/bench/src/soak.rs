//! `make soak`: ocspd under steady load for a long time, with revocations mixed in.
//!
//! 100,000 pre-signed certificates; the maximum rate of GETs is measured first (64 keep-alive
//! connections, closed loop, 10 s), then the load runs open loop at 80% of it for `secs`
//! seconds while one certificate is revoked through the admin API every 250 ms. A fifth of the
//! requests ask for certificates revoked so far. Reported: the rate held, ocspd's RSS growth
//! from the end of the first minute to the end, errors (anything but a successful OCSP
//! response), and stale answers (good, for a request sent after its revocation was
//! acknowledged).

use super::http::{generate, get_path, populate};
use super::{serial_of, Server};
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters shared by the load tasks.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    errors: AtomicU64,
    stale: AtomicU64,
    revoked_answers: AtomicU64,
    late: AtomicU64,
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}

/// A small xorshift: the load needs spread, not cryptographic randomness.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Runs the soak: `n` certificates, `secs` seconds of load.
pub fn soak(n: u32, secs: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hashes = populate(dir.path(), n)?;
    let server = Server::start(dir.path())?;
    server.wait_for_pass()?;
    let pid = server.child.id();
    let paths: Arc<Vec<String>> = Arc::new((1..=n).map(|i| get_path(&hashes, &serial_of(i))).collect::<Result<_>>()?);
    // Every answer in the memory tier first, so growth is not the cache filling up.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(super::http::fetch_all_pub(&server.public_url, &paths)).context("warming the memory tier")?;
    let (max, bad) = generate(&server.public_url, paths.clone(), 64, 10.0).context("measuring the maximum rate")?;
    if bad > 0 {
        bail!("{bad} failed requests while measuring the maximum rate");
    }
    let target = 0.8 * max;
    eprintln!("soak: maximum {max:.0} /s; holding {target:.0} /s for {secs} s with revocations mixed in");

    // Acknowledgement time of each revoked certificate (ms since `epoch`, 0: not revoked).
    let epoch = Instant::now();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..=n).map(|_| AtomicU64::new(0)).collect());
    let revoked_list: Arc<Mutex<Vec<u32>>> = Arc::default();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let authority = server.public_url.trim_start_matches("http://").to_string();
    const CONNS: usize = 64;
    let per_conn = Duration::from_secs_f64(CONNS as f64 / target);

    let mut tasks = Vec::new();
    for c in 0..CONNS {
        let (authority, paths, acked, revoked_list, tally, stop) =
            (authority.clone(), paths.clone(), acked.clone(), revoked_list.clone(), tally.clone(), stop.clone());
        tasks.push(rt.spawn(async move {
            use http_body_util::BodyExt;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut tick = tokio::time::interval(per_conn);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut sender = None;
            while !stop.load(Ordering::Relaxed) {
                let before = tokio::time::Instant::now();
                tick.tick().await;
                if before.elapsed() > per_conn * 2 {
                    tally.late.fetch_add(1, Ordering::Relaxed);
                }
                if sender.is_none() {
                    let stream = match tokio::net::TcpStream::connect(&authority).await {
                        Ok(s) => s,
                        Err(_) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await {
                        Ok((s, conn)) => {
                            tokio::spawn(conn);
                            sender = Some(s);
                        }
                        Err(_) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                // One request in five for a certificate revoked so far.
                let r = next_random(&mut rng);
                let i = {
                    let list = revoked_list.lock().unwrap_or_else(|p| p.into_inner());
                    if r.is_multiple_of(5) && !list.is_empty() {
                        list[(r as usize / 5) % list.len()]
                    } else {
                        1 + (r % n as u64) as u32
                    }
                };
                let sent_at = epoch.elapsed().as_millis() as u64;
                let req = match hyper::Request::get(paths[i as usize - 1].as_str())
                    .header(hyper::header::HOST, &authority)
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                {
                    Ok(r) => r,
                    Err(_) => continue,
                };
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let answer = async {
                    s.ready().await.ok()?;
                    let resp = s.send_request(req).await.ok()?;
                    if resp.status() != 200 {
                        return None;
                    }
                    let body = resp.into_body().collect().await.ok()?.to_bytes();
                    match ocsp_proto::decode_response(&body) {
                        Ok((_, Some(basic))) => Some(basic.tbs_response_data.responses[0].cert_status.clone()),
                        _ => None,
                    }
                }
                .await;
                match answer {
                    None => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        sender = None;
                    }
                    Some(rasn_ocsp::CertStatus::Good) => {
                        let at = acked[i as usize].load(Ordering::SeqCst);
                        if at != 0 && at < sent_at {
                            tally.stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(rasn_ocsp::CertStatus::Revoked(_)) => {
                        tally.revoked_answers.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Revocations through the admin API, one every 250 ms, while the load runs.
    let token = std::fs::read_to_string(server.data.join("admin.token"))?;
    let client = ocsp_admin::AdminClient::new(&server.admin_url, &token)?;
    let started = Instant::now();
    let mut baseline = None;
    let mut revocations = 0u32;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    while started.elapsed() < Duration::from_secs(secs) {
        if baseline.is_none() && started.elapsed() >= Duration::from_secs(60.min(secs / 2)) {
            baseline = Some((rss_kib(pid)?, tally.sent.load(Ordering::Relaxed), Instant::now()));
        }
        let i = 1 + (next_random(&mut rng) % n as u64) as u32;
        if acked[i as usize].load(Ordering::SeqCst) == 0 {
            let req = ocsp_admin::api::Revoke {
                issuer: "root".into(),
                serial: serial_of(i),
                reason: "keyCompromise".into(),
                time: None,
                why: Some("soak".into()),
            };
            let _: ocsp_admin::api::StatusView =
                rt.block_on(client.call(hyper::Method::POST, "/v1/revoke", Some(&req)))?;
            // Acknowledged: from now on no answer may say good.
            acked[i as usize].store(epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
            revoked_list.lock().unwrap_or_else(|p| p.into_inner()).push(i);
            revocations += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (base_rss, base_sent, base_at) = baseline.ok_or_else(|| anyhow::anyhow!("soak too short"))?;
    let end_sent = tally.sent.load(Ordering::Relaxed);
    let held = (end_sent - base_sent) as f64 / base_at.elapsed().as_secs_f64();
    let end_rss = rss_kib(pid)?;
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    let growth = (end_rss as f64 - base_rss as f64) / base_rss as f64 * 100.0;
    let errors = tally.errors.load(Ordering::Relaxed);
    let stale = tally.stale.load(Ordering::Relaxed);
    println!("bench soak_rate: {held:.0} /s ratio {:.2} vs max", held / max);
    println!("bench soak_rss_growth: {growth:.1} %");
    println!("bench soak_errors: {errors}");
    println!("bench soak_stale: {stale}");
    eprintln!(
        "({n} certificates; {secs} s at a target of {target:.0} /s (80% of {max:.0} /s, same generator); {} requests, {} answered revoked; {revocations} revocations through the admin API; RSS {} MiB after the first minute, {} MiB at the end; {} ticks late; targets: RSS growth < 5%, 0 errors, 0 stale)",
        end_sent,
        tally.revoked_answers.load(Ordering::Relaxed),
        base_rss / 1024,
        end_rss / 1024,
        tally.late.load(Ordering::Relaxed)
    );
    if stale > 0 || errors > 0 {
        bail!("{stale} stale answers, {errors} errors");
    }
    Ok(())
}
