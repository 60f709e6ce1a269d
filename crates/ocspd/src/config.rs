//! Command-line settings, checked as a whole before anything is opened or bound.

use clap::Parser;
use ocsp_http::{LiveConfig, ServiceConfig};
use ocsp_presign::Cadence;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The OCSP responder.
#[derive(Debug, Parser)]
#[command(name = "ocspd", version, about = "OCSP responder (RFC 6960, RFC 5019/9919)")]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Folder for the database, admin tokens and (with --demo) the demo PKI.
    #[arg(long, env = "OCSPD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Public OCSP listener.
    #[arg(long, env = "OCSPD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Admin API listener; keep it on loopback or a private interface.
    #[arg(long, env = "OCSPD_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: String,
    /// Prometheus metrics listener (`GET /metrics`), never the public one: loopback or a
    /// monitoring network.
    #[arg(long, env = "OCSPD_METRICS_LISTEN", default_value = "127.0.0.1:9180")]
    pub metrics_listen: String,
    /// On first start with an empty database, create and serve a demo PKI.
    #[arg(long)]
    pub demo: bool,
    /// Validity of responses (nextUpdate - thisUpdate), e.g. 24h, 3d; 8h to 10d (CA/B Forum BR 4.9.9).
    #[arg(long, default_value = "24h")]
    pub validity: String,
    /// How far thisUpdate is set before the signing time, against client clock skew (0 to 1h).
    #[arg(long, default_value = "1h")]
    pub backdate: String,
    /// The largest Cache-Control max-age sent.
    #[arg(long, default_value = "24h")]
    pub max_age: String,
    /// Live signings in flight at once; beyond it clients get tryLater.
    #[arg(long, default_value_t = 64)]
    pub live_concurrency: usize,
    /// Warn at start when a responder certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub expiry_warning_days: i64,
    /// Threads that pre-sign responses (default: one per core).
    #[arg(long)]
    pub presign_threads: Option<usize>,
    /// How often the pre-signer passes over every certificate to refresh what is due (changed
    /// certificates are signed at once, whatever this is).
    #[arg(long, default_value = "10m")]
    pub presign_interval: String,
    /// Memory for the in-memory answer tier, e.g. 256MiB, 1GiB (0 turns it off).
    #[arg(long, default_value = "256MiB")]
    pub memory_cache: String,
    /// Memory for RocksDB's block cache (statuses and pre-signed responses).
    #[arg(long, default_value = "512MiB")]
    pub db_cache: String,
    /// RocksDB memtable size of the status and response column families; the write-ahead log
    /// preallocates about as much on disk. Smaller suits small disks, larger bulk imports.
    #[arg(long, default_value = "128MiB")]
    pub db_write_buffer: String,
    /// Purge targets (peer responders, Varnish, CDN purge APIs): a TOML file, see
    /// deploy/purge.example.toml.
    #[arg(long, env = "OCSPD_PURGE_CONFIG")]
    pub purge_config: Option<PathBuf>,
    /// How long `ocspctl revoke` and `unhold` wait for the purge to reach every target that
    /// is up before returning (it is queued durably either way), e.g. 2s, 0.
    #[arg(long, default_value = "2s")]
    pub purge_wait: String,
    /// Run no pre-signer in this process: every answer is signed live (for bulk loading, or
    /// to measure live signing).
    #[arg(long)]
    pub no_presign: bool,
    /// Connections the public listener holds open at once (default: 10,000, or less to fit
    /// three quarters of the open-file limit after a reserve for the database and admin API).
    #[arg(long, env = "OCSPD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections the admin listener holds open at once.
    #[arg(long, default_value_t = 64)]
    pub admin_max_connections: usize,
    /// A public connection with no request in flight for this long is closed (any protocol:
    /// HTTP/1.1, h2c, a silent or partial preface).
    #[arg(long, default_value = "15s")]
    pub idle_timeout: String,
    /// PKCS#11 modules (shared libraries) that issuers' `pkcs11:` keys may load; repeat the
    /// flag, or separate paths with ':' in OCSPD_PKCS11_MODULES. A key naming any other
    /// module is refused before the library is opened.
    #[arg(long = "pkcs11-module", env = "OCSPD_PKCS11_MODULES", value_delimiter = ':')]
    pub pkcs11_modules: Vec<PathBuf>,
    /// Live signings per second for answers that no pre-signed response can serve without
    /// a known certificate behind them: unknown serials and requests with several CertIDs
    /// (beyond it: tryLater), so that such requests cannot spend the live-signing budget.
    #[arg(long, default_value_t = 50)]
    pub untrusted_signing_rate: u32,
}

/// Maintenance commands that run instead of the server.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manage admin API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

/// Admin token commands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Add a named admin token and print it (only its SHA-256 is kept, in <data-dir>/admin-tokens).
    Add {
        /// The credential's name, as the audit record will show it.
        #[arg(long)]
        name: String,
        /// What it may do: staff (everything), revoke (revoke and read), purge (only a peer's
        /// purge, for other ocspd nodes), read.
        #[arg(long, default_value = "staff", value_parser = ["staff", "revoke", "purge", "read"])]
        role: String,
    },
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub demo: bool,
    pub live: LiveConfig,
    pub service: ServiceConfig,
    pub expiry_warning_days: i64,
    pub cadence: Cadence,
    pub presign_threads: usize,
    pub presign_interval: std::time::Duration,
    pub presign: bool,
    pub memory_cache_bytes: u64,
    pub db_cache_bytes: u64,
    pub db_write_buffer_bytes: u64,
    pub purge_wait: std::time::Duration,
    pub purge: ocsp_purge::PurgeConfig,
    pub public_limits: ocsp_http::ListenerLimits,
    pub admin_limits: ocsp_http::ListenerLimits,
    pub pkcs11_modules: Vec<PathBuf>,
}

/// Parses `256MiB`, `1GiB`, `512M`, `64k` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a size like 256MiB or 1GiB"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?} has unknown unit {unit:?}; use KiB, MiB or GiB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `90s`, `15m`, `8h`, `3d` (or plain seconds).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 8h or 3d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has unknown unit {unit:?}; use s, m, h or d")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too large"))
}

impl Args {
    /// Checks every setting and reports every problem, not just the first.
    pub fn validate(&self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let mut addr = |name: &str, v: &str| match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!("--{name} {v:?} is not an address like 127.0.0.1:8080"));
                None
            }
        };
        let listen = addr("listen", &self.listen);
        let admin_listen = addr("admin-listen", &self.admin_listen);
        let metrics_listen = addr("metrics-listen", &self.metrics_listen);
        let mut dur = |name: &str, v: &str| match parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(format!("--{name}: {e}"));
                None
            }
        };
        let validity = dur("validity", &self.validity);
        let backdate = dur("backdate", &self.backdate);
        let max_age = dur("max-age", &self.max_age);
        let presign_interval = dur("presign-interval", &self.presign_interval);
        let purge_wait = dur("purge-wait", &self.purge_wait);
        let idle_timeout = dur("idle-timeout", &self.idle_timeout);
        if idle_timeout.is_some_and(|t| !(1..=3600).contains(&t)) {
            problems.push("--idle-timeout must be from 1s to 1h".into());
        }
        if self.max_connections == Some(0) || self.admin_max_connections == 0 {
            problems.push("--max-connections and --admin-max-connections must be at least 1".into());
        }
        for m in &self.pkcs11_modules {
            if !m.is_absolute() {
                problems.push(format!("--pkcs11-module {}: give an absolute path", m.display()));
            }
        }
        let cadence = match (validity, backdate) {
            (Some(v), Some(b)) => match Cadence::new(v, b) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("--validity {} / --backdate {}: {e}", self.validity, self.backdate));
                    None
                }
            },
            _ => None,
        };
        if self.presign_threads == Some(0) {
            problems.push("--presign-threads must be at least 1".into());
        }
        if let (Some(l), Some(a)) = (listen, admin_listen) {
            if l == a && l.port() != 0 {
                problems.push(format!(
                    "--listen and --admin-listen are both {l}: the admin API must never share the public listener"
                ));
            }
        }
        if let (Some(l), Some(m)) = (listen, metrics_listen) {
            if l == m && l.port() != 0 {
                problems.push(format!(
                    "--listen and --metrics-listen are both {l}: metrics name the issuers and must not be public"
                ));
            }
        }
        if let (Some(a), Some(m)) = (admin_listen, metrics_listen) {
            if a == m && a.port() != 0 {
                problems.push(format!("--admin-listen and --metrics-listen are both {a}: give each its own port"));
            }
        }
        let mut size = |name: &str, v: &str| match parse_size(v) {
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(format!("--{name}: {e}"));
                None
            }
        };
        let memory_cache_bytes = size("memory-cache", &self.memory_cache);
        let db_cache_bytes = size("db-cache", &self.db_cache);
        let db_write_buffer_bytes = size("db-write-buffer", &self.db_write_buffer);
        if db_write_buffer_bytes.is_some_and(|n| !((256 << 10)..=(1 << 30)).contains(&n)) {
            problems.push("--db-write-buffer must be from 256KiB to 1GiB".into());
        }
        if db_cache_bytes.is_some_and(|n| n < 8 << 20) {
            problems.push("--db-cache must be at least 8MiB".into());
        }
        let purge = match &self.purge_config {
            None => Some(ocsp_purge::PurgeConfig::default()),
            Some(path) => match ocsp_purge::PurgeConfig::load(path) {
                Ok(c) => Some(c),
                Err(mut e) => {
                    problems.append(&mut e);
                    None
                }
            },
        };
        if self.live_concurrency == 0 {
            problems.push("--live-concurrency must be at least 1".into());
        }
        match (
            listen,
            admin_listen,
            cadence,
            max_age,
            presign_interval,
            memory_cache_bytes,
            db_cache_bytes,
            purge,
            purge_wait,
        ) {
            (
                Some(listen),
                Some(admin_listen),
                Some(cadence),
                Some(max_age),
                Some(interval),
                Some(memory_cache_bytes),
                Some(db_cache_bytes),
                Some(purge),
                Some(purge_wait),
            ) if problems.is_empty() => {
                let (validity, backdate) = (cadence.validity, cadence.backdate);
                Ok(Config {
                    data_dir: self.data_dir.clone(),
                    listen,
                    admin_listen,
                    metrics_listen: metrics_listen.unwrap_or(admin_listen),
                    demo: self.demo,
                    live: LiveConfig {
                        validity,
                        backdate,
                        max_concurrent: self.live_concurrency,
                        untrusted_per_second: self.untrusted_signing_rate,
                    },
                    service: ServiceConfig { max_age_cap: max_age },
                    expiry_warning_days: self.expiry_warning_days,
                    cadence,
                    presign_threads: self
                        .presign_threads
                        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
                    presign_interval: std::time::Duration::from_secs(interval.max(1) as u64),
                    presign: !self.no_presign,
                    memory_cache_bytes,
                    db_cache_bytes,
                    db_write_buffer_bytes: db_write_buffer_bytes.unwrap_or(128 << 20),
                    purge,
                    purge_wait: std::time::Duration::from_secs(purge_wait.max(0) as u64),
                    public_limits: {
                        let mut l = ocsp_http::ListenerLimits::public_default(ocsp_http::open_files_limit());
                        if let Some(n) = self.max_connections {
                            l.max_connections = n;
                        }
                        l.idle_timeout = std::time::Duration::from_secs(idle_timeout.unwrap_or(15).max(1) as u64);
                        l
                    },
                    admin_limits: ocsp_http::ListenerLimits {
                        max_connections: self.admin_max_connections,
                        ..ocsp_http::ListenerLimits::admin_default()
                    },
                    pkcs11_modules: self.pkcs11_modules.clone(),
                })
            }
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["ocspd"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    }

    #[test]
    fn defaults_are_valid() {
        assert!(args(&[]).validate().is_ok());
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = args(&["--listen", "nowhere", "--validity", "2h", "--max-age", "soon"]).validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("BR 4.9.9")));
    }

    #[test]
    fn admin_may_not_share_the_public_listener() {
        let problems =
            args(&["--listen", "127.0.0.1:9000", "--admin-listen", "127.0.0.1:9000"]).validate().unwrap_err();
        assert!(problems[0].contains("admin"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("12 parsecs").is_err());
        let problems = args(&["--memory-cache", "lots", "--db-cache", "1MiB", "--purge-config", "/nonexistent.toml"])
            .validate()
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8h"), Ok(28_800));
        assert_eq!(parse_duration("10d"), Ok(864_000));
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("8x").is_err());
        assert!(parse_duration("h").is_err());
    }
}
