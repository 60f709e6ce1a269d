use crate::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ocsp_proto::{IssuerKey, RevocationReason, Serial};
use ocsp_records::AuditEntry;
use ocsp_store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A purge API on 127.0.0.1 that refuses the first `fail` requests with 503 and records the rest.
struct Api {
    url: String,
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
    calls: Arc<AtomicUsize>,
}

async fn api(fail: usize) -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), calls.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (s, c) = (s.clone(), c.clone());
                    async move {
                        let n = c.fetch_add(1, Ordering::SeqCst);
                        let auth =
                            req.headers().get("x-api-key").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = if n < fail {
                            503
                        } else {
                            s.lock().unwrap().push((path, auth, String::from_utf8_lossy(&body).into_owned()));
                            200
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder().status(status).body(Full::new(Bytes::new())).unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Api { url, seen, calls }
}

fn serial(n: u32) -> Serial {
    Serial::from_hex(&format!("{n:x}")).unwrap()
}

fn http_target(url: &str) -> PurgeConfig {
    std::env::set_var("OCSP_PURGE_TEST_KEY", "s3cret");
    toml::from_str(&format!(
        r#"
        [[target]]
        kind = "http"
        name = "cdn"
        url = "{url}/purge/{{count}}"
        headers = {{ "x-api-key" = "{{env:OCSP_PURGE_TEST_KEY}}", "content-type" = "application/json" }}
        body = '{{"tags":{{tags_json}}}}'
        max_tags = 2
        "#
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_to_a_failing_target_are_retried_until_accepted_and_none_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let issuer = IssuerKey([7; 64]);
    let certs: Vec<(Serial, i64)> = (1..=3).map(|n| (serial(n), 0)).collect();
    store.record_issued(&issuer, &certs, 1, AuditEntry::new(1, "t", "cert.add")).unwrap();
    let api = api(3).await;
    let config = http_target(&api.url);
    config.check().unwrap();
    let purger = Purger::new(store.clone(), &config).unwrap();
    let _feed = ocsp_domain::Followers::start(store.clone(), vec![purger.clone()]).unwrap();
    purger.spawn();
    let revoke = |n: u32| {
        store
            .revoke(&issuer, &serial(n), 2, RevocationReason::KeyCompromise, 2, AuditEntry::new(2, "t", "revoke"))
            .unwrap()
    };
    revoke(1);
    revoke(2);
    revoke(3);
    store.purge_issuer(&issuer, 3, AuditEntry::new(3, "t", "issuer.promote")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while purger.status()[0].pending_events > 0 {
        assert!(std::time::Instant::now() < deadline, "still pending: {:?}", purger.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = &purger.status()[0];
    assert_eq!(st.failures, 3, "three refusals, each retried");
    assert!(st.last_error.is_none());
    let seen = api.seen.lock().unwrap().clone();
    let mut tags = Vec::new();
    for (path, key, body) in &seen {
        assert_eq!(key, "s3cret", "the key comes from the environment");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let these: Vec<String> =
            v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        assert!(these.len() <= 2, "max_tags is honoured");
        assert_eq!(path, &format!("/purge/{}", these.len()));
        tags.extend(these);
    }
    let mut want: Vec<String> = (1..=3).map(|n| issuer.cert_cache_tag(&serial(n))).collect();
    want.push(issuer.cache_tag());
    assert_eq!(tags, want, "every tag, in order, once");
    assert_eq!(api.calls.load(Ordering::SeqCst), 3 + seen.len());
    assert!(store.changes(0, 10).unwrap().is_empty(), "delivered events are trimmed");
    assert!(purger.render_metrics().contains("ocspd_purge_failures_total{target=\"cdn\"} 3"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn a_restarted_purger_sends_what_was_pending_when_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = IssuerKey([9; 64]);
    // The target is down (connection refused) while a revocation is acknowledged.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let first = runtime();
    first.block_on(async {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        store.record_issued(&issuer, &[(serial(5), 0)], 1, AuditEntry::new(1, "t", "cert.add")).unwrap();
        let config = http_target(&format!("http://{closed}"));
        let purger = Purger::new(store.clone(), &config).unwrap();
        let _feed = ocsp_domain::Followers::start(store.clone(), vec![purger.clone()]).unwrap();
        purger.spawn();
        store.revoke(&issuer, &serial(5), 2, RevocationReason::Superseded, 2, AuditEntry::new(2, "t", "r")).unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let st = &purger.status()[0];
        assert!(st.failures >= 1 && st.last_error.is_some(), "{st:?}");
        assert_eq!(st.pending, vec![PendingCert { issuer: issuer.to_hex(), serial: Some("05".into()), since: 2 }]);
        _feed.stop();
    });
    // ocspd stops (its tasks and the database close) and restarts; the target is back.
    drop(first);
    let second = runtime();
    second.block_on(async {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let api = api(0).await;
        let purger = Purger::new(store.clone(), &http_target(&api.url)).unwrap();
        let _feed = ocsp_domain::Followers::start(store.clone(), vec![purger.clone()]).unwrap();
        purger.spawn();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while api.seen.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = api.seen.lock().unwrap()[0].2.clone();
        assert!(body.contains(&issuer.cert_cache_tag(&serial(5))), "{body}");
    });
}

#[test]
fn bad_configurations_are_reported_whole() {
    let config: PurgeConfig = toml::from_str(
        r#"
        [[target]]
        kind = "varnish"
        name = "edge"
        url = "not a url"
        [[target]]
        kind = "http"
        name = "edge"
        method = "GET X"
        url = "https://api.example/{nope}"
        [[target]]
        kind = "peer"
        name = "b"
        url = "http://10.0.0.2:8081"
        token_file = "/nonexistent/token"
        "#,
    )
    .unwrap();
    let problems = config.check().unwrap_err();
    let all = problems.join("\n");
    for want in ["\"not a url\"", "used twice", "unknown placeholder {nope}", "/nonexistent/token"] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(toml::from_str::<PurgeConfig>("[[target]]\nkind = \"memcache\"\nname = \"x\"\n").is_err());
    assert_eq!(fill("{tags_comma}|{tags}|{count}", &["a".into(), "b".into()]).unwrap(), "a,b|a b|2");
}

/// A purge API on 127.0.0.1 whose answers `respond` decides: given the request number and the
/// tags it carried (from `Ocsp-Purge-Tags`), it returns a status and a body plan.
enum Body {
    Empty,
    /// One byte per second, for ever.
    Trickle,
    /// This many bytes, as fast as the socket takes them.
    Flood(usize),
}

struct Edge {
    url: String,
    accepted: Arc<Mutex<Vec<String>>>,
}

async fn edge(respond: impl Fn(usize, &[String]) -> (u16, Body) + Send + Sync + 'static) -> Edge {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let respond = Arc::new(respond);
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (acc, calls, respond) = (acc.clone(), calls.clone(), respond.clone());
            tokio::spawn(async move {
                // One request per connection: read the head, answer, close.
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let tags: Vec<String> = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("ocsp-purge-tags:").map(str::to_string))
                    .map(|v| v.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default();
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let (status, body) = respond(n, &tags);
                if status == 200 {
                    acc.lock().unwrap().extend(tags);
                }
                let len = match body {
                    Body::Empty => 0,
                    Body::Trickle => 1_000_000,
                    Body::Flood(n) => n,
                };
                let head = format!("HTTP/1.1 {status} X\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                match body {
                    Body::Empty => {}
                    Body::Trickle => loop {
                        if stream.write_all(b"x").await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    },
                    Body::Flood(mut left) => {
                        let chunk = vec![b'x'; 64 * 1024];
                        while left > 0 {
                            let n = left.min(chunk.len());
                            if stream.write_all(&chunk[..n]).await.is_err() {
                                return;
                            }
                            left -= n;
                        }
                    }
                }
            });
        }
    });
    Edge { url, accepted }
}

fn varnish_target(url: &str, extra: &str) -> PurgeConfig {
    PurgeConfig::parse(
        "test",
        &format!("timeout_seconds = 1.0\n[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"{url}\"\n{extra}\n"),
    )
    .unwrap()
}

/// 20-byte serials, as the Baseline Requirements' 64 bits of entropy and CAs' habits give.
fn long_serial(n: u32) -> Serial {
    Serial::from_hex(&format!("7f{:036x}", n)).unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn wait_until_delivered(purger: &Purger, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while purger.status()[0].pending_events > 0 {
        assert!(std::time::Instant::now() < deadline, "still pending: {:?}", purger.status()[0].last_error);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn purges_are_sized_by_bytes_and_split_when_refused_as_too_large() {
    // The default bound keeps 300 tags of 20-byte serials in requests under Varnish's 8 KiB
    // header limit; the refusal below plays Varnish's 400 for an over-long header.
    let issuer = IssuerKey([3; 64]);
    let serials: Vec<Serial> = (0..300).map(long_serial).collect();
    let event = ocsp_records::Change {
        seq: 0,
        issuer,
        kind: ocsp_records::ChangeKind::Status,
        serials: serials.clone(),
        time: 1,
    };
    let config = varnish_target("http://127.0.0.1:1/", "");
    for batch in crate::deliver::plan(&config.targets[0], std::slice::from_ref(&event)) {
        assert!(batch.bytes() <= DEFAULT_MAX_BYTES, "{} bytes", batch.bytes());
    }
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let certs: Vec<(Serial, i64)> = serials.iter().map(|s| (s.clone(), 0)).collect();
        store.record_issued(&issuer, &certs, 1, AuditEntry::new(1, "t", "cert.add")).unwrap();
        // This edge takes at most 1,000 bytes of tags; the target is configured for 8,000.
        let edge = edge(|_, tags| (if tags.join(" ").len() > 1000 { 400 } else { 200 }, Body::Empty)).await;
        let purger = Purger::new(store.clone(), &varnish_target(&edge.url, "max_bytes = 8000")).unwrap();
        let _feed = ocsp_domain::Followers::start(store.clone(), vec![purger.clone()]).unwrap();
        purger.spawn();
        store
            .revoke_many(&issuer, &serials, 2, RevocationReason::Superseded, 2, false, AuditEntry::new(2, "t", "r"))
            .unwrap();
        wait_until_delivered(&purger, 20).await;
        let mut got = edge.accepted.lock().unwrap().clone();
        let mut want: Vec<String> = serials.iter().map(|s| issuer.cert_cache_tag(s)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "every tag reached the edge once");
        assert!(purger.status()[0].undeliverable.is_empty());
    });
}

#[test]
fn an_undeliverable_tag_is_reported_and_does_not_block_the_purges_behind_it() {
    let issuer = IssuerKey([4; 64]);
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let certs: Vec<(Serial, i64)> = (1..=3).map(|n| (serial(n), 0)).collect();
        store.record_issued(&issuer, &certs, 1, AuditEntry::new(1, "t", "cert.add")).unwrap();
        let poison = issuer.cert_cache_tag(&serial(1));
        let p = poison.clone();
        let edge = edge(move |_, tags| (if tags.contains(&p) { 400 } else { 200 }, Body::Empty)).await;
        let purger = Purger::new(store.clone(), &varnish_target(&edge.url, "")).unwrap();
        let _feed = ocsp_domain::Followers::start(store.clone(), vec![purger.clone()]).unwrap();
        purger.spawn();
        for n in 1..=3 {
            store
                .revoke(&issuer, &serial(n), 2, RevocationReason::Superseded, 2, AuditEntry::new(2, "t", "r"))
                .unwrap();
        }
        wait_until_delivered(&purger, 20).await;
        let got = edge.accepted.lock().unwrap().clone();
        assert_eq!(got, vec![issuer.cert_cache_tag(&serial(2)), issuer.cert_cache_tag(&serial(3))]);
        let st = &purger.status()[0];
        assert_eq!(st.undeliverable.len(), 1, "{st:?}");
        assert_eq!(st.undeliverable[0].serial.as_deref(), Some("01"));
        assert!(purger.render_metrics().contains("ocspd_purge_undeliverable_total{target=\"edge\"} 1"));
    });
}

#[test]
fn a_target_that_trickles_or_floods_its_answer_neither_stalls_delivery_nor_bloats_memory() {
    let issuer = IssuerKey([5; 64]);
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let certs: Vec<(Serial, i64)> = (1..=2).map(|n| (serial(n), 0)).collect();
        store.record_issued(&issuer, &certs, 1, AuditEntry::new(1, "t", "cert.add")).unwrap();
        // First answer: 200 with a body at one byte a second; then 200 with 400 MB; then normal.
        let edge = edge(|n, _| match n {
            0 => (200, Body::Trickle),
            1 => (200, Body::Flood(400 << 20)),
            _ => (200, Body::Empty),
        })
        .await;
        let purger = Purger::new(store.clone(), &varnish_target(&edge.url, "")).unwrap();
        let _feed = ocsp_domain::Followers::start(store.clone(), vec![purger.clone()]).unwrap();
        purger.spawn();
        let before = rss_kib();
        let started = std::time::Instant::now();
        store.revoke(&issuer, &serial(1), 2, RevocationReason::Superseded, 2, AuditEntry::new(2, "t", "r")).unwrap();
        wait_until_delivered(&purger, 15).await;
        store.revoke(&issuer, &serial(2), 2, RevocationReason::Superseded, 2, AuditEntry::new(2, "t", "r")).unwrap();
        wait_until_delivered(&purger, 15).await;
        let took = started.elapsed();
        let grown = rss_kib().saturating_sub(before);
        assert!(took < Duration::from_secs(10), "a trickling answer held delivery for {took:?} (deadline 1 s)");
        assert!(grown < 64 * 1024, "memory grew by {grown} KiB reading a 400 MB answer");
        let got = edge.accepted.lock().unwrap().clone();
        assert!(got.contains(&issuer.cert_cache_tag(&serial(1))) && got.contains(&issuer.cert_cache_tag(&serial(2))));
    });
}
