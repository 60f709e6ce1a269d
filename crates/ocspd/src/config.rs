//! Command-line settings, checked as a whole before anything is opened or bound.

use clap::Parser;
use ocsp_http::{LiveConfig, ServiceConfig};
use ocsp_presign::Cadence;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The OCSP responder.
#[derive(Debug, Parser)]
#[command(
    name = "ocspd",
    version,
    about = "OCSP responder (RFC 6960, RFC 5019/9919)",
    after_help = "Every setting can also be given in a TOML file (--config; docs/config.md lists every key) \
                  and in an OCSPD_* variable; a flag beats its variable, which beats the file, which beats the default."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A TOML configuration file holding any of the settings below (docs/config.md);
    /// unknown keys are refused.
    #[arg(long, env = "OCSPD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Folder for the database, admin tokens and (with --demo) the demo PKI [default: ./data].
    #[arg(long, env = "OCSPD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Public OCSP listener [default: 127.0.0.1:8080].
    #[arg(long, env = "OCSPD_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Admin API listener; keep it on loopback or a private interface [default: 127.0.0.1:8081].
    #[arg(long, env = "OCSPD_ADMIN_LISTEN", global = true)]
    pub admin_listen: Option<String>,
    /// Prometheus metrics listener (`GET /metrics`), never the public one: loopback or a
    /// monitoring network [default: 127.0.0.1:9180].
    #[arg(long, env = "OCSPD_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<String>,
    /// On first start with an empty database, create and serve a demo PKI.
    #[arg(long, env = "OCSPD_DEMO", global = true)]
    pub demo: bool,
    /// Validity of responses (nextUpdate - thisUpdate), e.g. 24h, 3d; 8h to 10d (CA/B Forum BR
    /// 4.9.9) [default: 24h].
    #[arg(long, env = "OCSPD_VALIDITY", global = true)]
    pub validity: Option<String>,
    /// How far thisUpdate is set before the signing time, against client clock skew (0 to 1h)
    /// [default: 1h].
    #[arg(long, env = "OCSPD_BACKDATE", global = true)]
    pub backdate: Option<String>,
    /// The largest Cache-Control max-age sent [default: 24h].
    #[arg(long, env = "OCSPD_MAX_AGE", global = true)]
    pub max_age: Option<String>,
    /// Live signings in flight at once; beyond it clients get tryLater [default: 64].
    #[arg(long, env = "OCSPD_LIVE_CONCURRENCY", global = true)]
    pub live_concurrency: Option<String>,
    /// Warn at start when a responder certificate expires within this many days [default: 30].
    #[arg(long, env = "OCSPD_EXPIRY_WARNING_DAYS", global = true)]
    pub expiry_warning_days: Option<String>,
    /// Threads that pre-sign responses [default: one per core].
    #[arg(long, env = "OCSPD_PRESIGN_THREADS", global = true)]
    pub presign_threads: Option<String>,
    /// How often the pre-signer passes over every certificate to refresh what is due (changed
    /// certificates are signed at once, whatever this is) [default: 10m].
    #[arg(long, env = "OCSPD_PRESIGN_INTERVAL", global = true)]
    pub presign_interval: Option<String>,
    /// Memory for the in-memory answer tier, e.g. 256MiB, 1GiB (0 turns it off) [default: 256MiB].
    #[arg(long, env = "OCSPD_MEMORY_CACHE", global = true)]
    pub memory_cache: Option<String>,
    /// Memory for RocksDB's block cache (statuses and pre-signed responses) [default: 512MiB].
    #[arg(long, env = "OCSPD_DB_CACHE", global = true)]
    pub db_cache: Option<String>,
    /// RocksDB memtable size of the status and response column families; the write-ahead log
    /// preallocates about as much on disk. Smaller suits small disks, larger bulk imports
    /// [default: 128MiB].
    #[arg(long, env = "OCSPD_DB_WRITE_BUFFER", global = true)]
    pub db_write_buffer: Option<String>,
    /// Purge targets (peer responders, Varnish, CDN purge APIs) in a TOML file of their own
    /// (deploy/purge.example.toml); or give them as [[purge.target]] in the --config file.
    #[arg(long, env = "OCSPD_PURGE_CONFIG", global = true)]
    pub purge_config: Option<PathBuf>,
    /// How long `ocspctl revoke` and `unhold` wait for the purge to reach every target that
    /// is up before returning (it is queued durably either way), e.g. 2s, 0 [default: 2s].
    #[arg(long, env = "OCSPD_PURGE_WAIT", global = true)]
    pub purge_wait: Option<String>,
    /// The origin CRLs are published under; a shard's URL (and its IssuingDistributionPoint)
    /// is this and /crl/<issuer>/<shard>.crl [default: auto: http:// and the public listener].
    #[arg(long, env = "OCSPD_CRL_BASE_URL", global = true)]
    pub crl_base_url: Option<String>,
    /// CRL shards of an issuer whose CRL key is set without --shards; stored with it then
    /// [default: 1].
    #[arg(long, env = "OCSPD_CRL_SHARDS", global = true)]
    pub crl_shards: Option<String>,
    /// nextUpdate - thisUpdate of subscriber CRLs, at most 10 days (BR 7.2) [default: 7d].
    #[arg(long, env = "OCSPD_CRL_VALIDITY", global = true)]
    pub crl_validity: Option<String>,
    /// nextUpdate - thisUpdate of a root's CRL of its CAs, at most 365 days [default: 30d].
    #[arg(long, env = "OCSPD_CRL_CA_VALIDITY", global = true)]
    pub crl_ca_validity: Option<String>,
    /// A revocation is in its shard's served CRL within this [default: 60s].
    #[arg(long, env = "OCSPD_CRL_WITHIN", global = true)]
    pub crl_within: Option<String>,
    /// How long the first change to a shard waits for others, so a burst is signed once
    /// [default: 1s].
    #[arg(long, env = "OCSPD_CRL_COALESCE", global = true)]
    pub crl_coalesce: Option<String>,
    /// Run no pre-signer in this process: every answer is signed live (for bulk loading, or
    /// to measure live signing).
    #[arg(long, env = "OCSPD_NO_PRESIGN", global = true)]
    pub no_presign: bool,
    /// Connections the public listener holds open at once [default: 10,000, or less to fit
    /// three quarters of the open-file limit after a reserve for the database and admin API].
    #[arg(long, env = "OCSPD_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<String>,
    /// Connections the admin listener holds open at once [default: 64].
    #[arg(long, env = "OCSPD_ADMIN_MAX_CONNECTIONS", global = true)]
    pub admin_max_connections: Option<String>,
    /// A public connection with no request in flight for this long is closed (any protocol:
    /// HTTP/1.1, h2c, a silent or partial preface) [default: 15s].
    #[arg(long, env = "OCSPD_IDLE_TIMEOUT", global = true)]
    pub idle_timeout: Option<String>,
    /// PKCS#11 modules (shared libraries) that issuers' `pkcs11:` keys may load; repeat the
    /// flag, or separate paths with ':' in OCSPD_PKCS11_MODULES. A key naming any other
    /// module is refused before the library is opened.
    #[arg(long = "pkcs11-module", env = "OCSPD_PKCS11_MODULES", value_delimiter = ':', global = true)]
    pub pkcs11_modules: Vec<PathBuf>,
    /// Live signings per second for answers that no pre-signed response can serve without
    /// a known certificate behind them: unknown serials and requests with several CertIDs
    /// (beyond it: tryLater), so that such requests cannot spend the live-signing budget
    /// [default: 50].
    #[arg(long, env = "OCSPD_UNTRUSTED_SIGNING_RATE", global = true)]
    pub untrusted_signing_rate: Option<String>,
    /// Revocation-reason profile of issuers the configuration file does not name: tls-br
    /// (CA/B Forum BR 4.9 and 7.2.2) or private (every RFC 5280 reason) [default: tls-br].
    #[arg(long, env = "OCSPD_REASON_PROFILE", global = true)]
    pub reason_profile: Option<String>,
    /// Nonce policy of issuers the configuration file does not name: ignore (serve the
    /// pre-signed answer) or echo (sign a fresh answer echoing the nonce, RFC 8954)
    /// [default: ignore].
    #[arg(long, env = "OCSPD_NONCE_POLICY", global = true)]
    pub nonce_policy: Option<String>,
    /// Fleet mode: the PostgreSQL database that holds the fleet's truth
    /// (postgresql://user@host:port/db); the data folder then holds this node's replica.
    /// Unset: a single node on its own RocksDB [default: none].
    #[arg(long, env = "OCSPD_FLEET_DB", global = true)]
    pub fleet_db: Option<String>,
    /// Fleet mode: this node's name, unique in the fleet [default: the public listener's
    /// address].
    #[arg(long, env = "OCSPD_NODE_NAME", global = true)]
    pub node_name: Option<String>,
    /// Fleet mode: how long the signer and purger leases last after each renewal; a dead
    /// holder is replaced within this and a third of it [default: 3s].
    #[arg(long, env = "OCSPD_FLEET_LEASE", global = true)]
    pub fleet_lease: Option<String>,
    /// Fleet mode: how long a node may answer after its last contact with the fleet
    /// database; past it, it answers no `good` until it is back and caught up. Also the most
    /// an acknowledgement waits for a node that died [default: 10s].
    #[arg(long, env = "OCSPD_FLEET_SERVING_LEASE", global = true)]
    pub fleet_serving_lease: Option<String>,
    /// Fleet mode: how long an acknowledgement waits for a lagging node before taking it out
    /// of service until it catches up [default: 2s].
    #[arg(long, env = "OCSPD_FLEET_ACK_WAIT", global = true)]
    pub fleet_ack_wait: Option<String>,
    /// Fleet mode: TLS to PostgreSQL: disable, require (encrypted, server not checked) or
    /// verify-full (server certificate checked against --fleet-ca-file and the host name)
    /// [default: disable].
    #[arg(long, env = "OCSPD_FLEET_TLS", global = true)]
    pub fleet_tls: Option<String>,
    /// Fleet mode: the CA certificates (PEM) that sign PostgreSQL's certificate, for
    /// --fleet-tls verify-full [default: none].
    #[arg(long, env = "OCSPD_FLEET_CA_FILE", global = true)]
    pub fleet_ca_file: Option<String>,
    /// Fleet mode: a file whose first line is the PostgreSQL password [default: none].
    #[arg(long, env = "OCSPD_FLEET_PASSWORD_FILE", global = true)]
    pub fleet_password_file: Option<String>,
}

/// Maintenance commands that run instead of the server.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manage admin API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Check the configuration (file, variables and flags) and print the settings in effect,
    /// without opening the database or binding a port. Exit 2 on any problem.
    CheckConfig,
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

/// What a setting's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (an address, a path, a name).
    Text,
    /// A whole number (or a string of digits).
    Number,
    /// A duration: `"90s"`, `"15m"`, `"8h"`, `"3d"`, or a number of seconds.
    Duration,
    /// A size: `"256MiB"`, `"1GiB"`, or a number of bytes.
    Size,
    /// true or false.
    Bool,
    /// A list of strings.
    List,
    /// An array of tables.
    Tables,
}

/// One setting of the configuration file: its key, the flag that overrides it, its default.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The dotted key in the file (`<name>` stands for an issuer's registered name).
    pub key: &'static str,
    /// The flag (and through it the OCSPD_* variable) that overrides it.
    pub flag: Option<&'static str>,
    /// The default, as docs/config.md shows it.
    pub default: &'static str,
    /// Its type.
    pub kind: Kind,
}

const fn k(key: &'static str, flag: Option<&'static str>, default: &'static str, kind: Kind) -> Key {
    Key { key, flag, default, kind }
}

/// Every key of the configuration file. docs/config.md documents exactly these (a test checks).
pub const KEYS: &[Key] = &[
    k("data_dir", Some("--data-dir"), "./data", Kind::Text),
    k("demo", Some("--demo"), "false", Kind::Bool),
    k("listen.public", Some("--listen"), "127.0.0.1:8080", Kind::Text),
    k("listen.admin", Some("--admin-listen"), "127.0.0.1:8081", Kind::Text),
    k("listen.metrics", Some("--metrics-listen"), "127.0.0.1:9180", Kind::Text),
    k("listen.max_connections", Some("--max-connections"), "auto", Kind::Number),
    k("listen.admin_max_connections", Some("--admin-max-connections"), "64", Kind::Number),
    k("listen.idle_timeout", Some("--idle-timeout"), "15s", Kind::Duration),
    k("responses.validity", Some("--validity"), "24h", Kind::Duration),
    k("responses.backdate", Some("--backdate"), "1h", Kind::Duration),
    k("responses.max_age", Some("--max-age"), "24h", Kind::Duration),
    k("responses.expiry_warning_days", Some("--expiry-warning-days"), "30", Kind::Number),
    k("live.concurrency", Some("--live-concurrency"), "64", Kind::Number),
    k("live.untrusted_signing_rate", Some("--untrusted-signing-rate"), "50", Kind::Number),
    k("presign.enabled", Some("--no-presign"), "true", Kind::Bool),
    k("presign.threads", Some("--presign-threads"), "auto", Kind::Number),
    k("presign.interval", Some("--presign-interval"), "10m", Kind::Duration),
    k("cache.memory", Some("--memory-cache"), "256MiB", Kind::Size),
    k("cache.db", Some("--db-cache"), "512MiB", Kind::Size),
    k("cache.db_write_buffer", Some("--db-write-buffer"), "128MiB", Kind::Size),
    k("purge.wait", Some("--purge-wait"), "2s", Kind::Duration),
    k("purge.file", Some("--purge-config"), "none", Kind::Text),
    k("purge.timeout_seconds", None, "10", Kind::Number),
    k("purge.target", None, "none", Kind::Tables),
    k("pkcs11.modules", Some("--pkcs11-module"), "none", Kind::List),
    k("policy.reasons", Some("--reason-profile"), "tls-br", Kind::Text),
    k("policy.nonces", Some("--nonce-policy"), "ignore", Kind::Text),
    k("policy.issuer.<name>.reasons", None, "policy.reasons", Kind::Text),
    k("policy.issuer.<name>.nonces", None, "policy.nonces", Kind::Text),
    k("crl.base_url", Some("--crl-base-url"), "auto", Kind::Text),
    k("crl.shards", Some("--crl-shards"), "1", Kind::Number),
    k("crl.validity", Some("--crl-validity"), "7d", Kind::Duration),
    k("crl.ca_validity", Some("--crl-ca-validity"), "30d", Kind::Duration),
    k("crl.within", Some("--crl-within"), "60s", Kind::Duration),
    k("crl.coalesce", Some("--crl-coalesce"), "1s", Kind::Duration),
    k("fleet.database", Some("--fleet-db"), "none", Kind::Text),
    k("fleet.node", Some("--node-name"), "auto", Kind::Text),
    k("fleet.lease", Some("--fleet-lease"), "3s", Kind::Duration),
    k("fleet.serving_lease", Some("--fleet-serving-lease"), "10s", Kind::Duration),
    k("fleet.ack_wait", Some("--fleet-ack-wait"), "2s", Kind::Duration),
    k("fleet.tls", Some("--fleet-tls"), "disable", Kind::Text),
    k("fleet.ca_file", Some("--fleet-ca-file"), "none", Kind::Text),
    k("fleet.password_file", Some("--fleet-password-file"), "none", Kind::Text),
];

/// Where a setting in effect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its flag or OCSPD_* variable.
    Flag,
    /// The configuration file.
    File,
    /// The default.
    Default,
}

/// The configuration file, read and checked against [`KEYS`]: every unknown key and every
/// value of the wrong type is a problem.
#[derive(Debug, Default)]
struct FileValues {
    /// Scalar and list keys, as strings (lists joined by ':').
    values: std::collections::BTreeMap<String, String>,
    /// `[[purge.target]]` and `purge.timeout_seconds`, as given.
    purge: Option<toml::Table>,
    /// `[policy.issuer.<name>]`: (reasons, nonces) as given.
    issuers: std::collections::BTreeMap<String, (Option<String>, Option<String>)>,
}

impl FileValues {
    fn read(path: &std::path::Path, problems: &mut Vec<String>) -> FileValues {
        let name = path.display().to_string();
        let text = match ocsp_sign::files::read_operator_file(path, ocsp_sign::files::MAX_OPERATOR_FILE) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("cannot read the configuration file {name}: {e}"));
                return FileValues::default();
            }
        };
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{name}: {}", e.to_string().trim_end()));
                return FileValues::default();
            }
        };
        let mut out = FileValues::default();
        out.walk(&name, "", &table, problems);
        out
    }

    fn walk(&mut self, file: &str, prefix: &str, table: &toml::Table, problems: &mut Vec<String>) {
        for (name, value) in table {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            if path == "policy.issuer" {
                self.issuer_policies(file, value, problems);
                continue;
            }
            match (KEYS.iter().find(|k| k.key == path), value) {
                (Some(key), value) => match scalar(key.kind, value) {
                    Ok(v) if key.key.starts_with("purge.") && key.key != "purge.wait" && key.key != "purge.file" => {
                        self.purge.get_or_insert_with(toml::Table::new).insert(name.clone(), value.clone());
                        let _ = v;
                    }
                    Ok(v) => {
                        self.values.insert(path, v);
                    }
                    Err(want) => problems.push(format!("{file}: `{path}` must be {want}")),
                },
                (None, toml::Value::Table(inner)) if KEYS.iter().any(|k| k.key.starts_with(&format!("{path}."))) => {
                    self.walk(file, &path, inner, problems)
                }
                (None, _) => problems.push(format!("{file}: unknown key `{path}` (docs/config.md lists every key)")),
            }
        }
    }

    fn issuer_policies(&mut self, file: &str, value: &toml::Value, problems: &mut Vec<String>) {
        let Some(issuers) = value.as_table() else {
            problems.push(format!(
                "{file}: `policy.issuer` must be tables named by issuer, e.g. [policy.issuer.\"Example CA\"]"
            ));
            return;
        };
        for (issuer, policy) in issuers {
            let Some(policy) = policy.as_table() else {
                problems.push(format!("{file}: `policy.issuer.{issuer:?}` must be a table with reasons and nonces"));
                continue;
            };
            let entry = self.issuers.entry(issuer.clone()).or_default();
            for (name, v) in policy {
                let text = v.as_str().map(str::to_string);
                match (name.as_str(), text) {
                    ("reasons", Some(t)) => entry.0 = Some(t),
                    ("nonces", Some(t)) => entry.1 = Some(t),
                    ("reasons" | "nonces", None) => {
                        problems.push(format!("{file}: `policy.issuer.{issuer:?}.{name}` must be a string"))
                    }
                    _ => problems.push(format!(
                        "{file}: unknown key `policy.issuer.{issuer:?}.{name}` (an issuer's policy has reasons and nonces)"
                    )),
                }
            }
        }
    }
}

/// A file value of `kind` as the string its flag would carry, or what it should have been.
fn scalar(kind: Kind, value: &toml::Value) -> Result<String, &'static str> {
    use toml::Value as V;
    match (kind, value) {
        (Kind::Text, V::String(s)) => Ok(s.clone()),
        (Kind::Text, _) => Err("a string"),
        (Kind::Number, V::Integer(n)) => Ok(n.to_string()),
        (Kind::Number, V::Float(f)) => Ok(f.to_string()),
        (Kind::Number, V::String(s)) if s == "auto" => Ok(s.clone()),
        (Kind::Number, _) => Err("a number"),
        (Kind::Duration, V::String(s)) => Ok(s.clone()),
        (Kind::Duration, V::Integer(n)) => Ok(n.to_string()),
        (Kind::Duration, _) => Err("a duration like \"90s\", \"15m\", \"8h\" or a number of seconds"),
        (Kind::Size, V::String(s)) => Ok(s.clone()),
        (Kind::Size, V::Integer(n)) => Ok(n.to_string()),
        (Kind::Size, _) => Err("a size like \"256MiB\" or a number of bytes"),
        (Kind::Bool, V::Boolean(b)) => Ok(b.to_string()),
        (Kind::Bool, _) => Err("true or false"),
        (Kind::List, V::Array(items)) => {
            let strings: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
            strings.map(|s| s.join(":")).ok_or("a list of strings")
        }
        (Kind::List, _) => Err("a list of strings"),
        (Kind::Tables, V::Array(items)) if items.iter().all(|v| v.is_table()) => Ok(String::new()),
        (Kind::Tables, _) => Err("an array of tables ([[...]])"),
    }
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
    pub policies: ocsp_proto::Policies,
    pub crl: ocsp_crl::CrlConfig,
    /// Fleet mode (the node name "auto" is settled once the public listener is bound).
    pub fleet: Option<ocsp_fleet::FleetConfig>,
    /// Every setting in effect: key, value, where it came from (for `ocspd check-config`).
    pub effective: Vec<(String, String, Origin)>,
}

/// The most pre-signing threads (a thread per core is the default).
pub const MAX_PRESIGN_THREADS: u64 = 1024;
/// The most connections a listener takes.
pub const MAX_CONNECTIONS: u64 = 1_000_000;
/// The most live signings at once.
pub const MAX_LIVE_CONCURRENCY: u64 = 65_536;
/// The largest cache size accepted.
pub const MAX_CACHE_BYTES: u64 = 1 << 40;

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

/// Settings in effect, each from its flag or variable, else the file, else the default.
struct Resolver {
    file: FileValues,
    effective: Vec<(String, String, Origin)>,
}

impl Resolver {
    fn get(&mut self, key: &'static str, flag: Option<String>) -> String {
        let default = KEYS.iter().find(|k| k.key == key).map_or("", |k| k.default);
        let (value, origin) = match (flag, self.file.values.get(key)) {
            (Some(v), _) => (v, Origin::Flag),
            (None, Some(v)) => (v.clone(), Origin::File),
            (None, None) => (default.to_string(), Origin::Default),
        };
        self.effective.push((key.to_string(), value.clone(), origin));
        value
    }
}

/// `value` of setting `key` parsed, or a problem naming the setting.
fn checked<T>(problems: &mut Vec<String>, key: &str, value: &str, parse: fn(&str) -> Result<T, String>) -> Option<T> {
    parse(value).map_err(|e| problems.push(format!("{}: {e}", label(key)))).ok()
}

/// How a problem names a setting: its key and its flag.
fn label(key: &str) -> String {
    match KEYS.iter().find(|k| k.key == key).and_then(|k| k.flag) {
        Some(flag) => format!("{flag} ({key})"),
        None => key.to_string(),
    }
}

impl Args {
    /// Reads the configuration file (if any), lets variables and flags override it, checks
    /// every setting and reports every problem, not just the first.
    pub fn validate(&self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let file = match &self.config {
            Some(path) => FileValues::read(path, &mut problems),
            None => FileValues::default(),
        };
        let mut r = Resolver { file, effective: Vec::new() };
        let data_dir = PathBuf::from(r.get("data_dir", self.data_dir.as_ref().map(|p| p.display().to_string())));
        let demo = r.get("demo", self.demo.then(|| "true".into())) == "true";
        let listen_s = r.get("listen.public", self.listen.clone());
        let admin_s = r.get("listen.admin", self.admin_listen.clone());
        let metrics_s = r.get("listen.metrics", self.metrics_listen.clone());
        let mut addr = |key: &str, v: &str| match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!("{} {v:?} is not an address like 127.0.0.1:8080", label(key)));
                None
            }
        };
        let listen = addr("listen.public", &listen_s);
        let admin_listen = addr("listen.admin", &admin_s);
        let metrics_listen = addr("listen.metrics", &metrics_s);

        let mut duration = |key: &'static str, flag: &Option<String>| {
            checked(&mut problems, key, &r.get(key, flag.clone()), parse_duration)
        };
        let validity = duration("responses.validity", &self.validity);
        let backdate = duration("responses.backdate", &self.backdate);
        let max_age = duration("responses.max_age", &self.max_age);
        let presign_interval = duration("presign.interval", &self.presign_interval);
        let purge_wait = duration("purge.wait", &self.purge_wait);
        let idle_timeout = duration("listen.idle_timeout", &self.idle_timeout);
        if idle_timeout.is_some_and(|t| !(1..=3600).contains(&t)) {
            problems.push(format!("{} must be from 1s to 1h", label("listen.idle_timeout")));
        }

        let mut number = |key: &'static str, flag: Option<String>, auto: bool| -> Option<Option<u64>> {
            let v = r.get(key, flag);
            if auto && v == "auto" {
                return Some(None);
            }
            match v.trim().parse::<u64>() {
                Ok(n) => Some(Some(n)),
                Err(_) => {
                    problems.push(format!("{} {v:?} is not a whole number", label(key)));
                    None
                }
            }
        };
        let max_connections = number("listen.max_connections", self.max_connections.clone(), true);
        let admin_max_connections = number("listen.admin_max_connections", self.admin_max_connections.clone(), false);
        let expiry_warning_days = number("responses.expiry_warning_days", self.expiry_warning_days.clone(), false);
        let live_concurrency = number("live.concurrency", self.live_concurrency.clone(), false);
        let untrusted_rate = number("live.untrusted_signing_rate", self.untrusted_signing_rate.clone(), false);
        let presign_threads = number("presign.threads", self.presign_threads.clone(), true);
        let presign = r.get("presign.enabled", self.no_presign.then(|| "false".into())) == "true";
        if max_connections == Some(Some(0)) || admin_max_connections == Some(Some(0)) {
            problems.push("--max-connections and --admin-max-connections must be at least 1".into());
        }
        if presign_threads.flatten().is_some_and(|n| !(1..=MAX_PRESIGN_THREADS).contains(&n)) {
            problems.push(format!("--presign-threads must be from 1 to {MAX_PRESIGN_THREADS}"));
        }
        if max_connections.flatten().is_some_and(|n| n > MAX_CONNECTIONS)
            || admin_max_connections.flatten().is_some_and(|n| n > MAX_CONNECTIONS)
        {
            problems.push(format!("--max-connections and --admin-max-connections are at most {MAX_CONNECTIONS}"));
        }
        if live_concurrency.flatten().is_some_and(|n| n > MAX_LIVE_CONCURRENCY) {
            problems.push(format!("--live-concurrency is at most {MAX_LIVE_CONCURRENCY}"));
        }
        if live_concurrency == Some(Some(0)) {
            problems.push("--live-concurrency must be at least 1".into());
        }
        if untrusted_rate.flatten().is_some_and(|n| n > u64::from(u32::MAX)) {
            problems.push(format!("{} is too large", label("live.untrusted_signing_rate")));
        }

        let modules_flag = (!self.pkcs11_modules.is_empty())
            .then(|| self.pkcs11_modules.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"));
        let modules = r.get("pkcs11.modules", modules_flag);
        let pkcs11_modules: Vec<PathBuf> = if modules == "none" || modules.is_empty() {
            Vec::new()
        } else {
            modules.split(':').map(PathBuf::from).collect()
        };
        for m in &pkcs11_modules {
            if !m.is_absolute() {
                problems.push(format!("--pkcs11-module {}: give an absolute path", m.display()));
            }
        }
        let cadence = match (validity, backdate) {
            (Some(v), Some(b)) => match Cadence::new(v, b) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("--validity / --backdate: {e}"));
                    None
                }
            },
            _ => None,
        };
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
        let mut size = |key: &'static str, flag: &Option<String>| {
            checked(&mut problems, key, &r.get(key, flag.clone()), parse_size)
        };
        let memory_cache_bytes = size("cache.memory", &self.memory_cache);
        let db_cache_bytes = size("cache.db", &self.db_cache);
        let db_write_buffer_bytes = size("cache.db_write_buffer", &self.db_write_buffer);
        if db_write_buffer_bytes.is_some_and(|n| !((256 << 10)..=(1 << 30)).contains(&n)) {
            problems.push("--db-write-buffer must be from 256KiB to 1GiB".into());
        }
        if db_cache_bytes.is_some_and(|n| !((8 << 20)..=MAX_CACHE_BYTES).contains(&n)) {
            problems.push("--db-cache must be from 8MiB to 1TiB".into());
        }
        if memory_cache_bytes.is_some_and(|n| n > MAX_CACHE_BYTES) {
            problems.push("--memory-cache is at most 1TiB".into());
        }

        // Purge targets: a file of their own, or [[purge.target]] in this one; not both.
        let purge_file = r.get("purge.file", self.purge_config.as_ref().map(|p| p.display().to_string()));
        let inline = r.file.purge.take();
        let purge = match (purge_file.as_str(), inline) {
            ("none", None) => Some(ocsp_purge::PurgeConfig::default()),
            ("none", Some(table)) => {
                let name =
                    format!("{} [purge]", self.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
                match <ocsp_purge::PurgeConfig as serde::Deserialize>::deserialize(toml::Value::Table(table)) {
                    Ok(c) => match c.check() {
                        Ok(()) => Some(c),
                        Err(e) => {
                            problems.extend(e.into_iter().map(|p| format!("{name}: {p}")));
                            None
                        }
                    },
                    Err(e) => {
                        problems.push(format!("{name}: {}", e.to_string().trim_end()));
                        None
                    }
                }
            }
            (path, None) => match ocsp_purge::PurgeConfig::load(std::path::Path::new(path)) {
                Ok(c) => Some(c),
                Err(mut e) => {
                    problems.append(&mut e);
                    None
                }
            },
            (path, Some(_)) => {
                problems.push(format!(
                    "purge targets are given twice: in {path} (--purge-config / purge.file) and as [[purge.target]]; keep one"
                ));
                None
            }
        };

        // CRLs.
        let crl = {
            let base = r.get("crl.base_url", self.crl_base_url.clone());
            let shards = checked(&mut problems, "crl.shards", &r.get("crl.shards", self.crl_shards.clone()), |v| {
                v.trim().parse::<u32>().map_err(|_| format!("{v:?} is not a number"))
            });
            let mut duration = |key: &'static str, flag: &Option<String>| {
                checked(&mut problems, key, &r.get(key, flag.clone()), parse_duration)
            };
            let validity = duration("crl.validity", &self.crl_validity);
            let ca_validity = duration("crl.ca_validity", &self.crl_ca_validity);
            let within = duration("crl.within", &self.crl_within);
            let coalesce = duration("crl.coalesce", &self.crl_coalesce);
            let defaults = ocsp_crl::CrlConfig::default();
            let config = ocsp_crl::CrlConfig {
                // auto: the public listener's address, once bound when its port is 0.
                base_url: match (base.as_str(), listen) {
                    ("auto", Some(a)) if a.port() != 0 => format!("http://{a}"),
                    ("auto", _) => String::new(),
                    _ => base,
                },
                shards: shards.unwrap_or(defaults.shards),
                validity: validity.unwrap_or(defaults.validity),
                ca_validity: ca_validity.unwrap_or(defaults.ca_validity),
                within: within.map_or(defaults.within, |s| std::time::Duration::from_secs(s.max(0) as u64)),
                coalesce: coalesce.map_or(defaults.coalesce, |s| std::time::Duration::from_secs(s.max(0) as u64)),
            };
            if let Err(e) = config.check() {
                problems.push(e.to_string());
            }
            config
        };

        // Fleet mode.
        let fleet = {
            let database = r.get("fleet.database", self.fleet_db.clone());
            let node = r.get("fleet.node", self.node_name.clone());
            let lease =
                checked(&mut problems, "fleet.lease", &r.get("fleet.lease", self.fleet_lease.clone()), parse_duration);
            if lease.is_some_and(|s| !(1..=60).contains(&s)) {
                problems.push("fleet.lease (--fleet-lease) must be from 1s to 60s".into());
            }
            let serving_lease = checked(
                &mut problems,
                "fleet.serving_lease",
                &r.get("fleet.serving_lease", self.fleet_serving_lease.clone()),
                parse_duration,
            );
            if serving_lease.is_some_and(|s| !(2..=300).contains(&s)) {
                problems.push("fleet.serving_lease (--fleet-serving-lease) must be from 2s to 300s".into());
            }
            let ack_wait = checked(
                &mut problems,
                "fleet.ack_wait",
                &r.get("fleet.ack_wait", self.fleet_ack_wait.clone()),
                parse_duration,
            );
            if ack_wait.is_some_and(|s| !(1..=60).contains(&s)) {
                problems.push("fleet.ack_wait (--fleet-ack-wait) must be from 1s to 60s".into());
            }
            let path = |v: String| (v != "none").then(|| PathBuf::from(v));
            let tls_mode = r.get("fleet.tls", self.fleet_tls.clone());
            let ca_file = path(r.get("fleet.ca_file", self.fleet_ca_file.clone()));
            let password_file = path(r.get("fleet.password_file", self.fleet_password_file.clone()));
            let tls = match ocsp_fleet::PgTls::parse(&tls_mode, ca_file.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", label("fleet.tls")));
                    ocsp_fleet::PgTls::Disable
                }
            };
            // A password on the command line is visible to every user of the machine (ps).
            if self.fleet_db.as_deref().is_some_and(ocsp_fleet::pg::has_password)
                && std::env::var("OCSPD_FLEET_DB").ok() != self.fleet_db
            {
                problems.push("fleet.database (--fleet-db): a password on the command line is visible to every user of the machine; put it in fleet.password_file (--fleet-password-file) or in OCSPD_FLEET_DB in the service's environment file".into());
            }
            let settings = ocsp_fleet::PgSettings { url: database.clone(), tls, password_file };
            // The URL and the files are read now (no connection is made), so a typo is a
            // configuration problem.
            if database != "none" {
                if let Err(e) = ocsp_fleet::pg::PgConfig::new(&settings) {
                    problems.push(format!("fleet.database (--fleet-db): {e}"));
                }
            }
            if node != "auto" && (node.is_empty() || node.len() > 64 || node.chars().any(|c| c.is_whitespace())) {
                problems.push(format!("fleet.node (--node-name) {node:?}: 1 to 64 characters, no spaces"));
            }
            (database != "none").then(|| ocsp_fleet::FleetConfig {
                database: settings,
                node,
                lease: std::time::Duration::from_secs(lease.unwrap_or(3).max(1) as u64),
                serving_lease: std::time::Duration::from_secs(serving_lease.unwrap_or(10).max(2) as u64),
                ack_wait: std::time::Duration::from_secs(ack_wait.unwrap_or(2).max(1) as u64),
            })
        };

        // Issuer policies.
        let mut policies = ocsp_proto::Policies::default();
        let reasons = r.get("policy.reasons", self.reason_profile.clone());
        match ocsp_proto::ReasonProfile::parse(&reasons) {
            Ok(p) => policies.default.reasons = p,
            Err(e) => problems.push(format!("{}: {e}", label("policy.reasons"))),
        }
        let nonces = r.get("policy.nonces", self.nonce_policy.clone());
        match ocsp_proto::NoncePolicy::parse(&nonces) {
            Ok(p) => policies.default.nonces = p,
            Err(e) => problems.push(format!("{}: {e}", label("policy.nonces"))),
        }
        for (issuer, (reasons, nonces)) in std::mem::take(&mut r.file.issuers) {
            let mut policy = policies.default;
            if let Some(t) = &reasons {
                match ocsp_proto::ReasonProfile::parse(t) {
                    Ok(p) => policy.reasons = p,
                    Err(e) => problems.push(format!("policy.issuer.{issuer:?}.reasons: {e}")),
                }
            }
            if let Some(t) = &nonces {
                match ocsp_proto::NoncePolicy::parse(t) {
                    Ok(p) => policy.nonces = p,
                    Err(e) => problems.push(format!("policy.issuer.{issuer:?}.nonces: {e}")),
                }
            }
            r.effective.push((format!("policy.issuer.{issuer:?}.reasons"), policy.reasons.name().into(), Origin::File));
            r.effective.push((format!("policy.issuer.{issuer:?}.nonces"), policy.nonces.name().into(), Origin::File));
            policies.by_issuer.insert(issuer, policy);
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        let missing = || vec!["internal: a setting was not resolved".to_string()];
        let (listen, admin_listen, metrics_listen) =
            (listen.ok_or_else(missing)?, admin_listen.ok_or_else(missing)?, metrics_listen.ok_or_else(missing)?);
        let cadence = cadence.ok_or_else(missing)?;
        let num = |n: Option<Option<u64>>| n.flatten();
        Ok(Config {
            data_dir,
            listen,
            admin_listen,
            metrics_listen,
            demo,
            live: LiveConfig {
                cadence,
                max_concurrent: num(live_concurrency).unwrap_or(64) as usize,
                untrusted_per_second: num(untrusted_rate).unwrap_or(50) as u32,
            },
            service: ServiceConfig { max_age_cap: max_age.ok_or_else(missing)? },
            expiry_warning_days: num(expiry_warning_days).unwrap_or(30) as i64,
            cadence,
            presign_threads: num(presign_threads)
                .map(|n| n as usize)
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
            presign_interval: std::time::Duration::from_secs(presign_interval.ok_or_else(missing)?.max(1) as u64),
            presign,
            memory_cache_bytes: memory_cache_bytes.ok_or_else(missing)?,
            db_cache_bytes: db_cache_bytes.ok_or_else(missing)?,
            db_write_buffer_bytes: db_write_buffer_bytes.unwrap_or(128 << 20),
            purge: purge.ok_or_else(missing)?,
            purge_wait: std::time::Duration::from_secs(purge_wait.ok_or_else(missing)?.max(0) as u64),
            public_limits: {
                let mut l = ocsp_http::ListenerLimits::public_default(ocsp_http::open_files_limit());
                if let Some(n) = num(max_connections) {
                    l.max_connections = n as usize;
                }
                l.idle_timeout = std::time::Duration::from_secs(idle_timeout.unwrap_or(15).max(1) as u64);
                l
            },
            admin_limits: ocsp_http::ListenerLimits {
                max_connections: num(admin_max_connections).unwrap_or(64) as usize,
                ..ocsp_http::ListenerLimits::admin_default()
            },
            pkcs11_modules,
            policies,
            crl,
            fleet,
            effective: r.effective,
        })
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
    fn a_bad_fleet_setting_is_a_configuration_problem() {
        let problems = args(&["--fleet-db", "postgresql://[::1", "--node-name", "a b", "--fleet-lease", "2m"])
            .validate()
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.starts_with("fleet.database (--fleet-db): fleet database URL")),
            "{problems:?}"
        );
        assert!(args(&["--fleet-db", "postgresql://ocspd@127.0.0.1:5432/ocspd", "--node-name", "a"])
            .validate()
            .is_ok());
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

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_file_sets_what_no_flag_sets() {
        let f = file(
            r#"
data_dir = "/srv/ocspd"
[listen]
public = "127.0.0.1:18080"
admin = "127.0.0.1:18081"
idle_timeout = 30
[responses]
validity = "3d"
[cache]
memory = "64MiB"
[presign]
enabled = false
[policy]
reasons = "private"
[policy.issuer."Example CA"]
nonces = "echo"
[[purge.target]]
kind = "varnish"
name = "edge"
url = "http://127.0.0.1:6081/"
"#,
        );
        let path = f.path().to_str().unwrap();
        let c = args(&["--config", path, "--listen", "127.0.0.1:28080"]).validate().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/ocspd"));
        assert_eq!(c.listen.port(), 28080, "the flag beats the file");
        assert_eq!(c.admin_listen.port(), 18081);
        assert_eq!(c.public_limits.idle_timeout.as_secs(), 30);
        assert_eq!(c.cadence.validity, 3 * 86_400);
        assert_eq!(c.memory_cache_bytes, 64 << 20);
        assert!(!c.presign);
        assert_eq!(c.purge.targets.len(), 1);
        assert_eq!(c.policies.default.reasons, ocsp_proto::ReasonProfile::Private);
        let ca = c.policies.of("Example CA");
        assert_eq!((ca.reasons, ca.nonces), (ocsp_proto::ReasonProfile::Private, ocsp_proto::NoncePolicy::Echo));
        assert_eq!(c.policies.of("Other CA").nonces, ocsp_proto::NoncePolicy::Ignore);
        let origin = |key: &str| c.effective.iter().find(|(k, _, _)| k == key).map(|(_, _, o)| *o);
        assert_eq!(origin("listen.public"), Some(Origin::Flag));
        assert_eq!(origin("listen.admin"), Some(Origin::File));
        assert_eq!(origin("responses.backdate"), Some(Origin::Default));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_all_reported() {
        let f = file(
            r#"
listen_public = "127.0.0.1:1"
[listen]
public = 8080
admn = "127.0.0.1:2"
[responses]
validity = "2h"
[policy.issuer."Example CA"]
reasons = "strict"
colour = "blue"
"#,
        );
        let problems = args(&["--config", f.path().to_str().unwrap()]).validate().unwrap_err();
        let joined = problems.join("\n");
        for want in
            ["`listen_public`", "`listen.admn`", "`listen.public` must be a string", "BR 4.9.9", "strict", "colour"]
        {
            assert!(joined.contains(want), "{want} missing from {joined}");
        }
        assert_eq!(problems.len(), 6, "{joined}");
    }

    #[test]
    fn purge_targets_in_two_places_are_refused() {
        let f = file("[[purge.target]]\nkind = \"varnish\"\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\n");
        let other = file("");
        let problems =
            args(&["--config", f.path().to_str().unwrap(), "--purge-config", other.path().to_str().unwrap()])
                .validate()
                .unwrap_err();
        assert!(problems[0].contains("given twice"), "{problems:?}");
    }

    /// The keys docs/config.md documents, from its tables: rows starting with a backticked key.
    fn documented_keys() -> Vec<(String, String)> {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md")).unwrap();
        doc.lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| {
                let (key, rest) = l.split_once('`')?;
                let flag = rest.split('|').nth(1).unwrap_or("").trim().trim_matches('`').to_string();
                Some((key.to_string(), flag))
            })
            .collect()
    }

    #[test]
    fn the_doc_and_the_code_list_the_same_keys_and_flags() {
        let doc = documented_keys();
        let doc_keys: Vec<&str> = doc.iter().map(|(k, _)| k.as_str()).collect();
        let code_keys: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
        assert_eq!(doc_keys, code_keys, "docs/config.md and KEYS differ (same order expected)");
        for ((key, flag), k) in doc.iter().zip(KEYS) {
            let want = k.flag.unwrap_or("");
            assert!(
                flag.starts_with(want) && (want.is_empty() == flag.is_empty()),
                "{key}: doc says {flag:?}, code {want:?}"
            );
        }
        // Every flag of the command line is a key of the file (or the file itself).
        let cmd = <Args as clap::CommandFactory>::command();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["config", "help", "version"].contains(&long) {
                continue;
            }
            let flag = format!("--{long}");
            assert!(KEYS.iter().any(|k| k.flag == Some(flag.as_str())), "{flag} has no key in the file");
        }
    }

    #[test]
    fn the_shipped_example_files_are_valid() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let c = args(&["--config", &format!("{root}/deploy/ocspd.toml")]).validate().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/ocspd"));
        ocsp_purge::PurgeConfig::load(std::path::Path::new(&format!("{root}/deploy/purge.example.toml"))).unwrap();
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
