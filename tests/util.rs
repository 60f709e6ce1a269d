//! Helpers shared by every integration test: starting ocspd, running ocspctl, curl, openssl
//! and the Python checker, and building throwaway PKIs.

use ocsp_testpki::{Issued, KeyAlg, ResponderOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A binary built by the same cargo profile as this test (or, with `OCSPD_TEST_BIN_DIR` set,
/// from that folder: to run the tests against another build, such as the one before a fix).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("OCSPD_TEST_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --release --bins` first (make test does)", path.display());
    path
}

/// Repository root (for tests/py).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A running ocspd with its own data folder, stopped when dropped.
pub struct Responder {
    pub dir: tempfile::TempDir,
    child: Child,
    pub url: String,
    pub admin_url: String,
    /// `http://127.0.0.1:PORT/metrics`, on its own listener.
    pub metrics_url: String,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Responder {
    pub fn start() -> Responder {
        Responder::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Responder {
        let dir = tempfile::tempdir().unwrap();
        Responder::start_in(dir, extra)
    }

    /// Starts ocspd on an existing data folder (for restarts).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Responder {
        Responder::start_env(dir, extra, &[])
    }

    /// Starts ocspd with extra environment variables (SOFTHSM2_CONF, say).
    pub fn start_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Responder {
        Responder::start_limited(dir, extra, env, None)
    }

    /// Starts ocspd, with its open-file limit (`ulimit -n`) set to `open_files` when given.
    pub fn start_limited(
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u32>,
    ) -> Responder {
        let log = std::fs::File::create(dir.path().join("ocspd.log")).unwrap();
        let mut cmd = match open_files {
            None => Command::new(bin("ocspd")),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")]).arg(bin("ocspd"));
                c
            }
        };
        let mut child = cmd
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut url, mut admin_url, mut metrics_url) = (None, None, None);
        while url.is_none() || admin_url.is_none() || metrics_url.is_none() {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("ocspd: OCSP responder listening on ") {
                        url = Some(u.to_string());
                    } else if let Some(u) = line.strip_prefix("ocspd: admin API listening on ") {
                        admin_url = Some(u.to_string());
                    } else if let Some(u) = line.strip_prefix("ocspd: metrics listening on ") {
                        metrics_url = Some(u.to_string());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(dir.path().join("ocspd.log")).unwrap_or_default();
                    panic!("ocspd did not start; its log:\n{log}");
                }
            }
        }
        Responder {
            dir,
            child,
            url: url.unwrap(),
            admin_url: admin_url.unwrap(),
            metrics_url: metrics_url.unwrap(),
            stdout: lines,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs ocspctl against this responder.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("ocspctl"))
            .args(["--admin-url", &self.admin_url, "--token-file"])
            .arg(self.data().join("admin.token"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs ocspctl and insists it succeeds.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "ocspctl {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// What ocspd printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ocspd.log")).unwrap_or_default()
    }

    /// Stops the process with SIGKILL (no shutdown of any kind) and hands back the data folder.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let out = run(Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()));
        assert!(out.status.success(), "kill -{signal}: {}", text(&out.stderr));
    }

    /// Stops the process with SIGTERM and waits (at most `within`) for it to exit; its exit
    /// status and its log.
    pub fn terminate(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(std::time::Instant::now() < deadline, "ocspd did not stop within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin token file.
    pub fn token_file(&self) -> PathBuf {
        self.data().join("admin.token")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An HTTP answer as curl saw it.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Runs curl (a client we did not write) with a 10 s limit: a hang fails the test.
pub fn curl(args: &[&str]) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--path-as-is", "-D"])
        .arg(&h)
        .arg("-o")
        .arg(&b)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?} failed: {}", text(&out.stderr));
    let head = std::fs::read_to_string(&h).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    Http { status, headers, body: std::fs::read(&b).unwrap_or_default() }
}

/// POSTs `body` with an optional Content-Type.
pub fn post(url: &str, body: &[u8], content_type: Option<&str>) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("req");
    std::fs::write(&f, body).unwrap();
    let data = format!("@{}", f.display());
    let ct = format!("Content-Type: {}", content_type.unwrap_or(""));
    let mut args = vec!["-X", "POST", "--data-binary", &data, "-H", &ct];
    args.push(url);
    curl(&args)
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// `openssl ocsp` with the given arguments.
pub fn openssl_ocsp(args: &[&str]) -> Output {
    run(Command::new("openssl").arg("ocsp").args(args))
}

/// The Python `cryptography` checker (tests/py/check_ocsp.py).
pub fn python_check(args: &[&str]) -> Output {
    run(Command::new("python3").arg(repo().join("tests/py/check_ocsp.py")).args(args))
}

/// What openssl makes of a response body for `cert` (issued by the test intermediate):
/// "good", "revoked" or "unknown"; the response must verify against the chain.
pub fn status_of(pki: &TestPki, cert: &str, body: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), body).unwrap();
    let out = openssl_ocsp(&[
        "-respin",
        f.path().to_str().unwrap(),
        "-issuer",
        &pki.path("int.pem"),
        "-cert",
        cert,
        "-CAfile",
        &pki.path("chain.pem"),
    ]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("Response verify OK"), "{all}");
    let line = all.lines().find(|l| l.contains(&format!("{cert}: "))).unwrap_or_default().to_string();
    line.rsplit(": ").next().unwrap_or_default().to_string()
}

/// The RFC 5019 request (SHA-1 CertID, no nonce) openssl makes for `serial` (hex) of the test
/// intermediate.
pub fn request_for_serial(pki: &TestPki, serial: &str) -> Vec<u8> {
    let req = tempfile::NamedTempFile::new().unwrap();
    let out = openssl_ocsp(&[
        "-issuer",
        &pki.path("int.pem"),
        "-serial",
        &format!("0x{serial}"),
        "-no_nonce",
        "-reqout",
        req.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::read(req.path()).unwrap()
}

/// A GET of `request` at `base`, the way an edge cache asks (and caches).
pub fn get_request(base: &str, request: &[u8]) -> Http {
    use base64::Engine;
    curl(&[&format!("{base}/{}", base64::engine::general_purpose::STANDARD.encode(request))])
}

/// What openssl reads in `http` as the answer for `serial` (hex) of the test intermediate:
/// "good", "revoked", "unknown", the OCSP error ("trylater"), or the HTTP status; a signed
/// answer must verify against the chain.
pub fn status_in(pki: &TestPki, serial: &str, http: &Http) -> String {
    if http.status != 200 {
        return format!("HTTP {}", http.status);
    }
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &http.body).unwrap();
    let out = openssl_ocsp(&[
        "-respin",
        f.path().to_str().unwrap(),
        "-issuer",
        &pki.path("int.pem"),
        "-serial",
        &format!("0x{serial}"),
        "-CAfile",
        &pki.path("chain.pem"),
    ]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if let Some(status) = all.lines().find_map(|l| l.strip_prefix("Responder Error: ")) {
        return status.split_whitespace().next().unwrap_or(status).to_string();
    }
    assert!(all.contains("Response verify OK"), "{all}");
    let prefix = format!("0x{}: ", serial.to_lowercase());
    let line = all.lines().find(|l| l.to_lowercase().starts_with(&prefix)).unwrap_or_default();
    line.rsplit(": ").next().unwrap_or_default().trim().to_string()
}

/// What `base` answers for `serial` (hex) of the test intermediate over GET, read by openssl
/// ([`status_in`]); with the HTTP answer.
pub fn status_at(pki: &TestPki, base: &str, serial: &str) -> (String, Http) {
    let http = get_request(base, &request_for_serial(pki, serial));
    (status_in(pki, serial, &http), http)
}

/// Whether the CRL `der` verifies against the test chain with openssl and lists `serial`
/// (hex), and names `url` in it when given; else what openssl said.
pub fn crl_lists(pki: &TestPki, der: &[u8], serial: &str, url: Option<&str>) -> Result<(), String> {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), der).unwrap();
    let out = run(Command::new("openssl").args([
        "crl",
        "-inform",
        "DER",
        "-in",
        f.path().to_str().unwrap(),
        "-CAfile",
        &pki.path("chain.pem"),
        "-noout",
        "-text",
    ]));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let hex: String =
        ocsp_proto::Serial::from_hex(serial).unwrap().as_bytes().iter().map(|b| format!("{b:02X}")).collect();
    let listed = said.to_uppercase().contains(&format!("SERIAL NUMBER: {hex}"));
    if said.contains("verify OK") && listed && url.is_none_or(|u| said.contains(u)) {
        Ok(())
    } else {
        Err(said.lines().take(12).collect::<Vec<_>>().join("\n"))
    }
}

/// A throwaway PKI on disk: a root, an intermediate with a delegated responder, and leaves.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub int: Issued,
}

impl TestPki {
    pub fn new(alg: KeyAlg) -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let root = Issued::root("test root", alg).unwrap();
        let int = root.intermediate("test intermediate", 7, alg).unwrap();
        let responder = int.responder("test responder", &ResponderOptions { alg, ..Default::default() }).unwrap();
        root.write(dir.path(), "root", true).unwrap();
        int.write(dir.path(), "int", true).unwrap();
        responder.write(dir.path(), "responder", true).unwrap();
        std::fs::write(dir.path().join("chain.pem"), format!("{}{}", int.pem, root.pem)).unwrap();
        TestPki { dir, int }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Issues a leaf under the intermediate, written as `name.pem`.
    pub fn leaf(&self, name: &str, serial: &[u8]) -> String {
        let leaf = self.int.leaf(&format!("{name}.test"), serial).unwrap();
        leaf.write(self.dir.path(), name, false).unwrap();
        self.path(&format!("{name}.pem"))
    }

    /// Asks `url` about `cert` (issued by the intermediate) with `openssl ocsp`, verifying
    /// against the chain; returns what openssl printed, stdout then stderr.
    pub fn ask(&self, url: &str, cert: &str) -> String {
        let (int, chain) = (self.path("int.pem"), self.path("chain.pem"));
        let out = openssl_ocsp(&["-issuer", &int, "-cert", cert, "-url", url, "-CAfile", &chain, "-no_nonce"]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// The RFC 5019 request (SHA-1 CertID, no nonce) openssl makes for `cert`.
    pub fn request_der(&self, cert: &str) -> Vec<u8> {
        let req = tempfile::NamedTempFile::new().unwrap();
        let path = req.path().to_str().unwrap();
        let out = openssl_ocsp(&["-issuer", &self.path("int.pem"), "-cert", cert, "-no_nonce", "-reqout", path]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read(req.path()).unwrap()
    }

    /// `ocspctl issuer add` of the intermediate as "int" with `responder` (a file name in the
    /// PKI folder) and `key`, plus `extra` arguments; returns what ocspctl did.
    pub fn add_int(&self, r: &Responder, responder: &str, key: &str, extra: &[&str]) -> Output {
        let (int, cert) = (self.path("int.pem"), self.path(responder));
        let mut args = vec!["issuer", "add", "--name", "int", "--cert", &int, "--responder-cert", &cert, "--key", key];
        args.extend_from_slice(extra);
        r.ctl(&args)
    }

    /// Registers the intermediate with its delegated responder.
    pub fn register(&self, r: &Responder) {
        self.register_as(r, "int");
    }

    /// Registers the intermediate with its delegated responder under `name`.
    pub fn register_as(&self, r: &Responder, name: &str) {
        r.ctl_ok(&[
            "issuer",
            "add",
            "--name",
            name,
            "--cert",
            &self.path("int.pem"),
            "--responder-cert",
            &self.path("responder.pem"),
            "--key",
            &self.path("responder.key"),
        ]);
    }
}

/// The JSON document on the last line of a command's output (`ocspctl --json`, the Python
/// helpers).
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out}"))
}
