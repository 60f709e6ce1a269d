//! The cache hierarchy with real parts: Varnish (Debian's varnishd, running deploy/varnish's
//! VCL) in front of ocspd on 127.0.0.1, purged by ocspd's outbox; a peer ocspd; `ocspctl
//! export`; the nginx snippet checked by nginx itself.

use crate::util::*;
use base64::Engine;
use ocsp_testpki::KeyAlg;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// varnishd in the foreground with our VCL, its backend pointed at an ocspd.
pub(crate) struct Varnish {
    child: Option<Child>,
    workdir: PathBuf,
    vcl: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Varnish {
    pub(crate) fn start(backend_port: u16, port: u16) -> Varnish {
        let dir = tempfile::tempdir().unwrap();
        let vcl = dir.path().join("ocspd.vcl");
        let text = std::fs::read_to_string(repo().join("deploy/varnish/ocspd.vcl")).unwrap();
        assert!(text.contains(".port = \"8080\";"), "the shipped VCL points at ocspd's default port");
        std::fs::write(&vcl, text.replace(".port = \"8080\";", &format!(".port = \"{backend_port}\";"))).unwrap();
        let mut v = Varnish { child: None, workdir: dir.path().join("n"), vcl, port, _dir: dir };
        v.restart();
        v
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let log = std::fs::File::create(self.workdir.with_extension("log")).unwrap();
        let child = Command::new("varnishd")
            .args(["-F", "-j", "none", "-s", "malloc,32m", "-n"])
            .arg(&self.workdir)
            .arg("-f")
            .arg(&self.vcl)
            .args(["-a", &format!("127.0.0.1:{}", self.port), "-T", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("varnishd (Debian package varnish) runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "varnishd did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "varnishd did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.with_extension("log")).unwrap_or_default()
    }

    /// A counter of `varnishstat` (e.g. `MAIN.bans_added`).
    pub(crate) fn stat(&self, name: &str) -> u64 {
        let out = Command::new("varnishstat").arg("-n").arg(&self.workdir).args(["-1", "-f", name]).output().unwrap();
        text(&out.stdout)
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("varnishstat {name}: {}", text(&out.stdout)))
    }

    pub(crate) fn ban_list(&self) -> String {
        let out = Command::new("varnishadm").arg("-n").arg(&self.workdir).arg("ban.list").output().unwrap();
        text(&out.stdout)
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        self.stop();
    }
}

fn purge_config(dir: &Path, body: &str) -> String {
    let path = dir.join("purge.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

pub(crate) fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// An RFC 5019 request for `cert` (SHA-1 CertID, no nonce), made by openssl.
fn request_der(pki: &TestPki, cert: &str) -> Vec<u8> {
    pki.request_der(cert)
}

fn get(base: &str, der: &[u8]) -> Http {
    curl(&[&format!("{base}/{}", base64::engine::general_purpose::STANDARD.encode(der))])
}

fn get_encoded(base: &str, der: &[u8]) -> Http {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let enc = b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    curl(&[&format!("{base}/{enc}")])
}

fn ocsp_post(base: &str, der: &[u8]) -> Http {
    post(&format!("{base}/"), der, Some("application/ocsp-request"))
}

fn x_cache(h: &Http) -> &str {
    h.header("x-cache").unwrap_or("none")
}

fn setup(purge: impl FnOnce(&Path) -> String) -> (TestPki, Responder, String, String) {
    let pki = TestPki::new(KeyAlg::P256);
    let config = purge(pki.dir.path());
    let r = Responder::start_with(&["--purge-config", &config]);
    pki.register(&r);
    let a = pki.leaf("a", &[0x0a]);
    let b = pki.leaf("b", &[0x0b]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    r.ctl_ok(&["cert", "add", "--pem", &b]);
    (pki, r, a, b)
}

#[test]
fn varnish_caches_our_answers_and_is_purged_on_revocation_even_after_it_was_down() {
    let varnish_port = free_port();
    let (pki, r, a, b) = setup(|dir| {
        purge_config(
            dir,
            &format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"),
        )
    });
    let mut v = Varnish::start(port_of(&r.url), varnish_port);
    let edge = v.url();
    let (req_a, req_b) = (request_der(&pki, &a), request_der(&pki, &b));

    // GET: the second is a hit, and every spelling of the path is the same object.
    let first = get(&edge, &req_a);
    assert_eq!((first.status, x_cache(&first)), (200, "MISS"));
    assert_eq!(status_of(&pki, &a, &first.body), "good");
    let second = get(&edge, &req_a);
    assert_eq!(x_cache(&second), "HIT", "the second GET through Varnish is a hit");
    assert_eq!(second.body, first.body);
    assert_eq!(x_cache(&get_encoded(&edge, &req_a)), "HIT", "the percent-encoded spelling is the same object");
    let tags = second.header("surrogate-key").unwrap().to_string();
    assert!(tags.split(' ').any(|t| t.ends_with("-0a")), "{tags}");
    // POST: cached by body.
    assert_eq!(x_cache(&ocsp_post(&edge, &req_a)), "MISS");
    let posted = ocsp_post(&edge, &req_a);
    assert_eq!(x_cache(&posted), "HIT");
    assert_eq!(status_of(&pki, &a, &posted.body), "good");
    // ocspd's own endpoints are not served at the edge.
    assert_eq!(curl(&[&format!("{edge}/metrics")]).status, 404);

    // Revoke: when ocspctl returns, the next GET through Varnish answers revoked, in every
    // spelling and over POST.
    let out = r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    assert!(!out.contains("warning"), "the purge was accepted before ocspctl returned: {out}");
    let after = get(&edge, &req_a);
    assert_eq!(status_of(&pki, &a, &after.body), "revoked", "X-Cache {}", x_cache(&after));
    assert_eq!(status_of(&pki, &a, &get_encoded(&edge, &req_a).body), "revoked");
    assert_eq!(status_of(&pki, &a, &ocsp_post(&edge, &req_a).body), "revoked");
    assert_eq!(x_cache(&get(&edge, &req_a)), "HIT", "and the revoked answer is cached in turn");

    // Varnish down during a revocation: ocspctl says the purge is pending, purge status names
    // the certificate; after Varnish is back the purge reaches it.
    assert_eq!(x_cache(&get(&edge, &req_b)), "MISS");
    v.stop();
    let out = r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0b", "--reason", "superseded"]);
    assert!(out.contains("caches not yet purged: edge"), "{out}");
    let status: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "purge", "status"])).unwrap();
    let target = &status["targets"][0];
    assert_eq!(target["name"], "edge");
    assert!(
        target["pending"].as_array().unwrap().iter().any(|p| p["serial"] == "0B" && p["issuer"] == "int"),
        "{status}"
    );
    assert!(target["last_error"].as_str().is_some());
    let text_status = r.ctl_ok(&["purge", "status"]);
    assert!(text_status.contains("pending: int serial 0B"), "{text_status}");
    let metrics = text(&curl(&[&r.metrics_url]).body);
    assert!(metrics.contains("ocspd_purge_outbox_depth{target=\"edge\"} 1"), "{metrics}");
    assert!(r.log().contains("serials=0B"), "the failure log names the certificate");

    v.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "purge", "status"])).unwrap();
        if status["targets"][0]["pending_events"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the purge never reached Varnish: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let bans = v.ban_list();
    let tag_b = tags.replace("-0a", "-0b");
    let tag_b = tag_b.split(' ').find(|t| t.ends_with("-0b")).unwrap();
    assert!(bans.contains(tag_b), "the restarted Varnish got the ban for 0b: {bans}");
    assert_eq!(status_of(&pki, &b, &get(&edge, &req_b).body), "revoked");
}

#[test]
fn xkey_purges_reach_post_cached_answers_and_purges_come_only_from_ocspd() {
    let varnish_port = free_port();
    let (pki, r, a, _) = setup(|dir| {
        purge_config(
            dir,
            &format!(
                "[[target]]\nkind = \"varnish\"\nname = \"edge-xkey\"\nmode = \"xkey\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"
            ),
        )
    });
    let v = Varnish::start(port_of(&r.url), varnish_port);
    let edge = v.url();
    let req = request_der(&pki, &a);
    ocsp_post(&edge, &req);
    assert_eq!(x_cache(&ocsp_post(&edge, &req)), "HIT");
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    let after = ocsp_post(&edge, &req);
    assert_eq!(status_of(&pki, &a, &after.body), "revoked", "X-Cache {}", x_cache(&after));

    // Another address (127.0.0.2 is loopback too, but not in the VCL's acl) may not purge.
    let tags = after.header("surrogate-key").unwrap().to_string();
    for method in ["PURGE", "BAN"] {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.2", "-X", method])
            .args(["-H", &format!("xkey-purge: {tags}"), "-H", &format!("Ocsp-Purge-Tags: {tags}")])
            .arg(format!("{edge}/"))
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "403", "{method} from a stranger");
    }
    assert_eq!(x_cache(&ocsp_post(&edge, &req)), "HIT", "nothing was purged by the stranger");
    // Malformed tags are refused even from ocspd's address.
    let bad = curl(&["-X", "BAN", "-H", "Ocsp-Purge-Tags: .*", &format!("{edge}/")]);
    assert_eq!(bad.status, 400);
}

#[test]
fn a_peer_responder_is_told_to_evict_its_memory_tier() {
    let peer = Responder::start();
    let pki = TestPki::new(KeyAlg::P256);
    pki.register(&peer);
    let a = pki.leaf("a", &[0x0a]);
    peer.ctl_ok(&["cert", "add", "--pem", &a]);
    // The peer caches the good answer in memory.
    let req = request_der(&pki, &a);
    get(&peer.url, &req);
    assert_eq!(status_of(&pki, &a, &get(&peer.url, &req).body), "good");

    let config = purge_config(
        pki.dir.path(),
        &format!(
            "[[target]]\nkind = \"peer\"\nname = \"peer-b\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            peer.admin_url,
            peer.token_file().display()
        ),
    );
    let r = Responder::start_with(&["--purge-config", &config]);
    pki.register(&r);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    let evictions = |resp: &Responder| -> u64 {
        let m = text(&curl(&[&resp.metrics_url]).body);
        m.lines().find_map(|l| l.strip_prefix("ocspd_memory_tier_evictions_total ")).unwrap().parse().unwrap()
    };
    let before = evictions(&peer);
    let out = r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    assert!(!out.contains("warning"), "{out}");
    assert_eq!(evictions(&peer), before + 1, "the peer evicted the certificate");
    assert!(peer.log().contains("peer purge applied"));
    // A peer purge with a wrong token is refused.
    let bad = curl(&[
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer wrong",
        "--data",
        "{\"issuer\":\"00\",\"serials\":[]}",
        &format!("{}/v1/purge", peer.admin_url),
    ]);
    assert_eq!(bad.status, 401);
}

#[test]
fn export_writes_every_current_response_under_its_get_path_and_mirrors() {
    let pki = TestPki::new(KeyAlg::P256);
    let r = Responder::start();
    pki.register(&r);
    let a = pki.leaf("a", &[0x0a]);
    let b = pki.leaf("b", &[0x0b]);
    r.ctl_ok(&["cert", "add", "--pem", &a]);
    r.ctl_ok(&["cert", "add", "--pem", &b]);
    r.ctl_ok(&["presign"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("origin");
    let summary: serde_json::Value =
        serde_json::from_str(&r.ctl_ok(&["--json", "export", "--out", dir.to_str().unwrap()])).unwrap();
    assert_eq!(summary["written"], 4, "two certificates, SHA-1 and SHA-256 CertIDs: {summary}");
    // The file named by openssl's GET path holds a response openssl verifies.
    let path_a = base64::engine::general_purpose::STANDARD.encode(request_der(&pki, &a));
    let file_a = dir.join(&path_a);
    assert!(file_a.is_file(), "{} missing", file_a.display());
    assert_eq!(status_of(&pki, &a, &std::fs::read(&file_a).unwrap()), "good");
    // The same bytes ocspd serves for that path.
    assert_eq!(get(&r.url, &request_der(&pki, &a)).body, std::fs::read(&file_a).unwrap());

    // After a revocation and a pass, a second export replaces the file.
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    r.ctl_ok(&["presign"]);
    r.ctl_ok(&["export", "--out", dir.to_str().unwrap()]);
    assert_eq!(status_of(&pki, &a, &std::fs::read(&file_a).unwrap()), "revoked");

    // A file an earlier export wrote for this issuer that is no longer current is removed
    // (an export removes only what it wrote itself, listed in its manifest for the issuer).
    let stale = dir.join("MEQwQjBAMD4wPDAJBgUrDgMCGgUABBRzdGFsZQ");
    std::fs::write(&stale, b"old").unwrap();
    let manifests: Vec<_> =
        std::fs::read_dir(dir.join(".ocspd-export.d")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(manifests.len(), 1, "one issuer, one manifest: {manifests:?}");
    let mut listed = std::fs::read_to_string(&manifests[0]).unwrap();
    listed.push_str("MEQwQjBAMD4wPDAJBgUrDgMCGgUABBRzdGFsZQ\n");
    std::fs::write(&manifests[0], listed).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&r.ctl_ok(&["--json", "export", "--out", dir.to_str().unwrap(), "--issuer", "int"]))
            .unwrap();
    assert_eq!((summary["written"].as_u64(), summary["removed"].as_u64()), (Some(4), Some(1)), "{summary}");
    assert!(!stale.exists());

    // A folder that is not an export is never mirrored into.
    let other = out.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let refused = r.ctl(&["export", "--out", other.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("neither empty nor a previous export"));
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1, "nothing written or removed");
}

#[test]
fn the_nginx_snippet_is_valid_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let snippet = std::fs::read_to_string(repo().join("deploy/nginx/ocspd-cache.conf")).unwrap();
    let cache = dir.path().join("cache");
    let snippet = snippet
        .replace("/var/cache/nginx/ocsp", cache.to_str().unwrap())
        .replace("listen 80;", &format!("listen 127.0.0.1:{};", free_port()));
    std::fs::write(dir.path().join("ocspd-cache.conf"), snippet).unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {0}/nginx.pid;\nerror_log {0}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  include {0}/ocspd-cache.conf;\n}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let nginx = ["/usr/sbin/nginx", "nginx"].into_iter().find(|n| Command::new(n).arg("-v").output().is_ok()).unwrap();
    let out = Command::new(nginx).args(["-t", "-q", "-c"]).arg(&conf).args(["-p"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "nginx -t: {}", text(&out.stderr));
}

/// Issue 10.1: a bulk revocation of 300 certificates with 20-byte serials, all cached at the
/// edge, reaches Varnish whole (its header limit is 8 KiB; 300 tags are about 24 KB), every one
/// answers revoked through Varnish, and a single revocation after it is not held up.
#[test]
fn a_bulk_revocation_of_300_long_serials_reaches_varnish_whole() {
    let varnish_port = free_port();
    let pki = TestPki::new(KeyAlg::P256);
    let config = purge_config(
        pki.dir.path(),
        &format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"),
    );
    let r = Responder::start_with(&["--purge-config", &config]);
    pki.register(&r);
    let leaves = pki.dir.path().join("leaves");
    std::fs::create_dir(&leaves).unwrap();
    let mut certs = Vec::new();
    for n in 0..301u32 {
        // 20 octets, the most RFC 5280 allows, high bit clear.
        let mut serial = vec![0x4c; 20];
        serial[16..].copy_from_slice(&n.to_be_bytes());
        let pem = pki.leaf(&format!("leaf{n}"), &serial);
        std::fs::copy(&pem, leaves.join(format!("leaf{n}.pem"))).unwrap();
        certs.push((pem, hex_upper(&serial)));
    }
    r.ctl_ok(&["import", "--issuer", "int", "--dir", leaves.to_str().unwrap()]);
    r.ctl_ok(&["presign"]);
    let v = Varnish::start(port_of(&r.url), varnish_port);
    let edge = v.url();
    let requests: Vec<Vec<u8>> = certs.iter().map(|(pem, _)| request_der(&pki, pem)).collect();
    for req in &requests {
        get(&edge, req);
        assert_eq!(x_cache(&get(&edge, req)), "HIT", "cached at the edge before the revocation");
    }
    let file = pki.dir.path().join("bulk.txt");
    std::fs::write(&file, certs[..300].iter().map(|(_, s)| format!("{s}\n")).collect::<String>()).unwrap();
    r.ctl_ok(&["bulk-revoke", "--issuer", "int", "--reason", "keyCompromise", "--file", file.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = serde_json::from_str(&r.ctl_ok(&["--json", "purge", "status"])).unwrap();
        let t = &status["targets"][0];
        assert!(t["undeliverable"].as_array().is_none_or(|u| u.is_empty()), "{status}");
        if t["pending_events"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the purge never reached Varnish: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for ((pem, serial), req) in certs[..300].iter().zip(&requests) {
        let h = get(&edge, req);
        assert_eq!(
            status_of(&pki, pem, &h.body),
            "revoked",
            "serial {serial} through Varnish, X-Cache {}",
            x_cache(&h)
        );
    }
    // A single revocation afterwards is purged before ocspctl returns.
    let (last_pem, last_serial) = &certs[300];
    let out = r.ctl_ok(&["revoke", "--issuer", "int", "--serial", last_serial, "--reason", "superseded"]);
    assert!(!out.contains("caches not yet purged"), "{out}");
    assert_eq!(status_of(&pki, last_pem, &get(&edge, &requests[300]).body), "revoked");
    assert!(!v.log().contains("Bad Request"), "{}", v.log());
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn a_crl_cached_by_varnish_is_purged_when_its_shard_is_signed_again() {
    let varnish_port = free_port();
    let (pki, r, _a, _b) = setup(|dir| {
        purge_config(
            dir,
            &format!("[[target]]\nkind = \"varnish\"\nname = \"edge\"\nurl = \"http://127.0.0.1:{varnish_port}/\"\n"),
        )
    });
    r.ctl_ok(&["issuer", "crl-key", "--name", "int", "--key", &pki.path("int.key")]);
    let v = Varnish::start(port_of(&r.url), varnish_port);
    let path = "/crl/int/0.crl";
    let origin = |r: &Responder| curl(&[&format!("{}{path}", r.url)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while origin(&r).status != 200 {
        assert!(Instant::now() < deadline, "no CRL served");
        std::thread::sleep(Duration::from_millis(100));
    }
    let edge = format!("{}{path}", v.url());
    let first = curl(&[&edge]);
    assert_eq!(first.status, 200);
    let second = curl(&[&edge]);
    assert_eq!(x_cache(&second), "HIT", "Varnish caches the CRL");
    assert!(second.header("surrogate-key").is_some_and(|k| k.contains("-crl-0")));

    // A revocation: the shard is signed again, its purge reaches Varnish, and the edge serves
    // the new CRL (the one the origin serves), not the cached one.
    r.ctl_ok(&["revoke", "--issuer", "int", "--serial", "0a", "--reason", "keyCompromise"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now_origin = origin(&r).body;
        let at_edge = curl(&[&edge]);
        if now_origin != first.body && at_edge.body == now_origin {
            break;
        }
        assert!(Instant::now() < deadline, "the edge still serves the old CRL (X-Cache {})", x_cache(&at_edge));
        std::thread::sleep(Duration::from_millis(200));
    }
}
