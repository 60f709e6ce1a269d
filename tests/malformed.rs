//! Bad input gets an OCSP error status or a 4xx: never a 5xx, a panic or a hang, and the
//! server goes on answering.

use crate::util::*;
use base64::Engine;
use ocsp_testpki::KeyAlg;
use std::io::{Read, Write};

const MALFORMED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];

fn valid_request(pki: &TestPki, cert: &str, dir: &std::path::Path) -> Vec<u8> {
    let req = dir.join("req.der");
    let out =
        openssl_ocsp(&["-issuer", &pki.path("int.pem"), "-cert", cert, "-no_nonce", "-reqout", req.to_str().unwrap()]);
    assert!(out.status.success());
    std::fs::read(req).unwrap()
}

#[test]
fn malformed_requests_get_errors_and_the_server_goes_on() {
    let pki = TestPki::new(KeyAlg::P256);
    let mut r = Responder::start();
    pki.register(&r);
    let leaf = pki.leaf("leaf", &[0x42]);
    r.ctl_ok(&["cert", "add", "--pem", &leaf]);
    let tmp = tempfile::tempdir().unwrap();
    let good = valid_request(&pki, &leaf, tmp.path());

    let mut unknown_hash = good.clone();
    // id-sha1 1.3.14.3.2.26 -> 1.3.14.3.2.27 (not a hash algorithm).
    let sha1 = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
    let at = unknown_hash.windows(sha1.len()).position(|w| w == sha1).unwrap();
    unknown_hash[at + 6] = 0x1b;
    let random: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();

    let ct = Some("application/ocsp-request");
    let cases: Vec<(&str, Http)> = vec![
        ("empty body", post(&r.url, &[], ct)),
        ("random bytes", post(&r.url, &random, ct)),
        ("truncated DER", post(&r.url, &good[..good.len() - 7], ct)),
        ("trailing bytes", post(&r.url, &[good.as_slice(), &[0, 0]].concat(), ct)),
        ("wrong Content-Type", post(&r.url, &good, Some("text/plain"))),
        ("no Content-Type", post(&r.url, &good, None)),
        ("oversized body", post(&r.url, &vec![0x30; 64 * 1024], ct)),
        ("unknown hash algorithm", post(&r.url, &unknown_hash, ct)),
        ("invalid base64 GET", curl(&[&format!("{}/M!!!not-base64***", r.url)])),
        (
            "GET of random bytes",
            curl(&[&format!("{}/{}", r.url, base64::engine::general_purpose::STANDARD.encode(&random))]),
        ),
        ("empty GET", curl(&[&format!("{}/", r.url)])),
        ("PUT", curl(&["-X", "PUT", "--data-binary", "x", &r.url])),
    ];
    for (what, http) in &cases {
        assert!(http.status < 500, "{what}: HTTP {}", http.status);
        if http.status == 200 {
            assert_eq!(http.body, MALFORMED, "{what}: expected malformedRequest");
        } else {
            assert!((400..500).contains(&http.status), "{what}: {}", http.status);
        }
        if http.header("content-type") == Some("application/ocsp-response") {
            assert_eq!(http.header("cache-control"), Some("max-age=0, no-cache"), "{what}");
        }
    }
    let status_of = |what: &str| cases.iter().find(|(w, _)| *w == what).unwrap().1.status;
    assert_eq!(status_of("wrong Content-Type"), 415);
    assert_eq!(status_of("oversized body"), 413);
    assert_eq!(status_of("invalid base64 GET"), 400);
    assert_eq!(status_of("PUT"), 405);

    // A client that stops half-way through its body is cut off, not waited on forever.
    let addr = r.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n0123",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "stalled body held the connection");
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 408") || buf.is_empty(), "{head}");

    // Still alive, still answering.
    assert!(r.alive());
    let http = post(&r.url, &good, ct);
    assert_eq!(http.status, 200);
    assert_ne!(http.body, MALFORMED);
    assert!(!r.log().contains("panicked"), "{}", r.log());
    let metrics = curl(&[&r.metrics_url]);
    let m = text(&metrics.body);
    let counted: u64 = m
        .lines()
        .find_map(|l| {
            l.strip_prefix("ocspd_requests_total{method=\"POST\",result=\"malformedRequest\",tier=\"none\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(counted > 0, "malformed POSTs are counted: {m}");
}
