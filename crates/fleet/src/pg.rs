//! The connection to PostgreSQL and the schema, with its migrations.
//!
//! Every part of a node that talks to PostgreSQL (admin writes, the replicator, leases, the
//! signer's writes) has a [`Pg`] of its own: one connection, made when first needed and made
//! again after a failure, so one slow part never queues behind another.

use ocsp_records::StoreError;
use postgres::{Client, NoTls};
use std::sync::Mutex;
use std::time::Duration;

/// How long a connection attempt may take before a call fails (an admin write then fails at
/// once with a clear error instead of hanging).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The schema, one migration per version; a database at version `n` has run the first `n`.
/// Migrations only add; a database newer than this ocspd is refused.
pub const MIGRATIONS: &[&str] = &[
    // 1: the truth of the fleet.
    "
    CREATE TABLE issuers (
        issuer_key bytea PRIMARY KEY,
        name text NOT NULL UNIQUE,
        record bytea NOT NULL
    );
    CREATE TABLE statuses (
        issuer_key bytea NOT NULL,
        serial bytea NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (issuer_key, serial)
    );
    CREATE TABLE responses (
        issuer_key bytea NOT NULL,
        serial bytea NOT NULL,
        alg smallint NOT NULL,
        response bytea NOT NULL,
        PRIMARY KEY (issuer_key, serial, alg)
    );
    CREATE TABLE crls (
        issuer_key bytea NOT NULL,
        shard integer NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (issuer_key, shard)
    );
    CREATE TABLE feed_head (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        next bigint NOT NULL
    );
    INSERT INTO feed_head (one, next) VALUES (true, 0);
    CREATE TABLE changes (
        seq bigint PRIMARY KEY,
        issuer_key bytea NOT NULL,
        kind smallint NOT NULL,
        at_ms bigint NOT NULL,
        body bytea NOT NULL
    );
    CREATE INDEX changes_issuer_kind ON changes (issuer_key, kind, seq);
    CREATE TABLE audit (
        seq bigserial PRIMARY KEY,
        at bigint NOT NULL,
        entry bytea NOT NULL
    );
    CREATE TABLE leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        expires_ms bigint NOT NULL
    );
    CREATE TABLE nodes (
        name text PRIMARY KEY,
        public_url text NOT NULL,
        admin_url text NOT NULL,
        applied bigint NOT NULL,
        seen_ms bigint NOT NULL
    );
    CREATE TABLE cursors (
        name text PRIMARY KEY,
        next bigint NOT NULL
    );
    ",
    // 2: a change carries the records it wrote (see `carried`), so replicas read the feed
    // in order instead of looking every certificate up again. Responses are signatures and
    // status records are small: neither compresses, so they are stored as they are.
    // Status rows leave room on their page, so a revocation's new row version can stay on the
    // page without a new index entry (a HOT update); new pages only, on an existing database.
    "
    ALTER TABLE changes ADD COLUMN records bytea;
    ALTER TABLE changes ALTER COLUMN records SET STORAGE EXTERNAL;
    ALTER TABLE statuses SET (fillfactor = 70);
    ",
    // 3: serving leases (see `serving`): a node answers good only while its lease runs, and
    // an acknowledgement waits for every live node to apply its change or leave service.
    // Older nodes never write these columns; their rows read as out of service.
    "
    ALTER TABLE nodes ADD COLUMN serving_until_ms bigint NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN must_reach bigint NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN serves boolean NOT NULL DEFAULT false;
    ALTER TABLE nodes ADD COLUMN serving_lease_ms bigint NOT NULL DEFAULT 0;
    ",
];

/// Settings of every session ocspd opens. Its statements look certificates up by primary key
/// in batches (50,000 of a bulk revocation, out of millions): PostgreSQL's default costs (for
/// spinning disks) make the planner scan and hash the whole table instead from about 3
/// million rows on (UPDATE of 50,000 statuses: 1.24 s as a hash join over the table, 0.36 s
/// by index; DELETE of their 100,000 responses 1.30 s vs 0.15 s), and JIT-compile those
/// plans. SSD costs and no JIT keep the index plans; see docs/decisions.md.
///
/// A session that stalls (its node paused or cut off inside a transaction) must not hold the
/// feed lock or a node's row for long: idle transactions end after 10 s, a lock is waited for
/// at most 30 s and a statement runs at most 5 minutes (a copy reads page by page).
pub const SESSION: &str = "-c random_page_cost=1.1 -c jit=off -c idle_in_transaction_session_timeout=10s \
     -c lock_timeout=30s -c statement_timeout=300s";

/// The server's clock, milliseconds since the epoch: every node compares lease times with the
/// same clock.
pub const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// SQLSTATE classes and codes ocspd treats apart: a conflict between transactions is tried
/// again; a constraint that refuses a row is the caller's mistake, not an outage.
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK: &str = "40P01";
/// How often a transaction that lost a conflict is tried again before the caller is told.
const CONFLICT_RETRIES: usize = 3;

/// A failure of PostgreSQL as the rest of ocspd sees it: a refused row (a constraint) is a
/// conflict the caller can act on; anything else is the database being unavailable, and
/// nothing was changed.
pub fn unreachable(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if db.code().code().starts_with("23") => {
            StoreError::Conflict(format!("{}: {}", db.code().code(), db.message()))
        }
        Some(db) => StoreError::Unreachable(format!("{}: {}", db.code().code(), db.message())),
        None => {
            // The cause is often a level down (a TLS handshake's "invalid peer certificate").
            let mut said = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                said.push_str(&format!(": {s}"));
                source = s.source();
            }
            StoreError::Unreachable(said)
        }
    }
}

/// How a node's connections to PostgreSQL are secured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PgTls {
    /// Plain TCP (a database on the same host or a private link only).
    #[default]
    Disable,
    /// TLS, the server's certificate not checked (as libpq's `sslmode=require`): protects
    /// against listeners, not against an active man in the middle.
    Require,
    /// TLS with the server's certificate checked against the CA certificates in this PEM
    /// file and its name against the host connected to (libpq's `verify-full`).
    VerifyFull(std::path::PathBuf),
}

impl PgTls {
    /// Parses `fleet.tls` (`disable`, `require`, `verify-full`) with `fleet.ca_file`.
    pub fn parse(mode: &str, ca_file: Option<&std::path::Path>) -> Result<PgTls, String> {
        match (mode, ca_file) {
            ("disable", None) => Ok(PgTls::Disable),
            ("require", None) => Ok(PgTls::Require),
            ("verify-full", Some(ca)) => Ok(PgTls::VerifyFull(ca.to_path_buf())),
            ("verify-full", None) => Err("fleet.tls = \"verify-full\" needs fleet.ca_file (--fleet-ca-file), the CA certificates that sign the database's certificate".into()),
            ("disable" | "require", Some(_)) => Err(format!("fleet.ca_file is only used with fleet.tls = \"verify-full\", not {mode:?}")),
            (other, _) => Err(format!("fleet.tls {other:?}: one of disable, require, verify-full")),
        }
    }

    /// The name `check-config` shows.
    pub fn name(&self) -> &'static str {
        match self {
            PgTls::Disable => "disable",
            PgTls::Require => "require",
            PgTls::VerifyFull(_) => "verify-full",
        }
    }
}

/// Where and how a node reaches PostgreSQL: the URL, TLS, and the password (from a file or
/// the environment's URL, never a flag; see `docs/fleet.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgSettings {
    /// `postgresql://user@host:port/db` or the key=value form.
    pub url: String,
    /// TLS.
    pub tls: PgTls,
    /// A file whose first line is the password.
    pub password_file: Option<std::path::PathBuf>,
}

impl PgSettings {
    /// Plain settings for `url` (tests, tools).
    pub fn plain(url: &str) -> PgSettings {
        PgSettings { url: url.to_string(), ..PgSettings::default() }
    }
}

/// `url` with any password replaced by `****` (for `check-config` and logs).
pub fn masked(url: &str) -> String {
    // URL form: scheme://user:password@host...
    if let Some(rest) = url.split_once("://") {
        let (scheme, tail) = rest;
        let (auth, host) = match tail.rsplit_once('@') {
            Some((a, h)) if !a.contains('/') => (a, h),
            _ => return mask_pairs(url),
        };
        return match auth.split_once(':') {
            Some((user, _)) => mask_pairs(&format!("{scheme}://{user}:****@{host}")),
            None => mask_pairs(url),
        };
    }
    mask_pairs(url)
}

/// Masks `password=...` in the key=value form and in a URL's query.
fn mask_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password=") {
        out.push_str(&rest[..i + "password=".len()]);
        out.push_str("****");
        let tail = &rest[i + "password=".len()..];
        let end = tail.find(['&', ' ']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `url` carries a password (refused on the command line).
pub fn has_password(url: &str) -> bool {
    masked(url) != url
}

/// A parsed connection: PostgreSQL's settings and the TLS connector, made once.
#[derive(Clone)]
pub struct PgConfig {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig").field("hosts", &self.config.get_hosts()).field("tls", &self.tls.is_some()).finish()
    }
}

/// The size a password file may have.
const MAX_PASSWORD_FILE: u64 = 4096;

impl PgConfig {
    /// Parses and checks `settings`: the URL, the password file, the CA file.
    pub fn new(settings: &PgSettings) -> Result<PgConfig, String> {
        let mut config: postgres::Config = settings.url.parse().map_err(|e| format!("fleet database URL: {e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        // Data unacknowledged this long means the peer is gone (keepalives alone are answered
        // by the kernel of a paused process).
        config.tcp_user_timeout(Duration::from_secs(15));
        config.application_name("ocspd");
        config.options(SESSION);
        if let Some(path) = &settings.password_file {
            config.password(read_small(path, "fleet.password_file")?.lines().next().unwrap_or("").trim_end());
        }
        let tls = match &settings.tls {
            PgTls::Disable => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                None
            }
            PgTls::Require => {
                config.ssl_mode(postgres::config::SslMode::Require);
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(client_config(None)?))
            }
            PgTls::VerifyFull(ca) => {
                config.ssl_mode(postgres::config::SslMode::Require);
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(client_config(Some(ca))?))
            }
        };
        Ok(PgConfig { config, tls })
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
    }
}

/// Reads a small operator-supplied file: a regular file of at most a few KiB, checked on the
/// descriptor it is read from (`ocsp_sign::files`).
fn read_small(path: &std::path::Path, what: &str) -> Result<String, String> {
    ocsp_sign::files::read_operator_file(path, MAX_PASSWORD_FILE).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// rustls for PostgreSQL: the CA certificates of `ca` as the only roots, or (no `ca`) no
/// check of the server's certificate at all (`require`).
fn client_config(ca: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS for the fleet database: {e}"))?;
    let Some(ca) = ca else {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
            .with_no_client_auth());
    };
    let pem = read_ca(ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("fleet.ca_file {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("fleet.ca_file {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("fleet.ca_file {}: no certificate in it", ca.display()));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn read_ca(path: &std::path::Path) -> Result<String, String> {
    ocsp_sign::files::read_operator_file(path, 1 << 20).map_err(|e| format!("fleet.ca_file {}: {e}", path.display()))
}

/// `sslmode=require`: encrypted, the server not authenticated.
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection to PostgreSQL, made when needed.
pub struct Pg {
    config: PgConfig,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("config", &self.config).finish()
    }
}

/// The synchronous client runs a runtime of its own and closes its connection on it when
/// dropped, which panics inside another runtime (ocspd's, at shutdown): it is dropped on a
/// thread of its own.
impl Drop for Pg {
    fn drop(&mut self) {
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = client {
            drop_client(client);
        }
    }
}

/// Drops a client outside any async runtime.
pub(crate) fn drop_client(client: Client) {
    // No thread to be had: the client is leaked rather than panic (the process is ending).
    if let Ok(t) = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(client)) {
        let _ = t.join();
    }
}

impl Pg {
    /// A connection made with `config`.
    pub fn new(config: &PgConfig) -> Pg {
        Pg { config: config.clone(), client: Mutex::new(None) }
    }

    /// Runs `f` with the connection (made first if there is none).
    ///
    /// A connection that breaks under `f` (PostgreSQL restarted, a network cut) is replaced
    /// and `f` run once more on the new one, so a staff call never fails because the
    /// connection it was handed had died while idle; a transaction that lost a conflict
    /// (serialization failure, deadlock) is run again, a few times. `f` must be safe to run
    /// again: every transaction ocspd runs reads what it changes under the feed lock, so a
    /// second run of a transaction whose commit did reach the server finds its work done
    /// (already revoked, already recorded) instead of doing it twice.
    pub fn with<T>(&self, mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let mut reconnected = false;
        let mut conflicts = 0;
        loop {
            let fresh = slot.as_ref().is_none_or(Client::is_closed);
            if fresh {
                if let Some(old) = slot.take() {
                    drop_client(old);
                }
                *slot = Some(self.config.connect().map_err(unreachable)?);
            }
            let Some(client) = slot.as_mut() else {
                return Err(StoreError::Unreachable("no connection".into()));
            };
            let e = match f(client) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let code = e.as_db_error().map(|db| db.code().code().to_string());
            match code.as_deref() {
                Some(SERIALIZATION_FAILURE | DEADLOCK) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    tracing::debug!(error = %e, "transaction conflict; trying again");
                    continue;
                }
                // A statement error inside a healthy connection keeps it.
                Some(_) if !client.is_closed() => return Err(unreachable(e)),
                _ => {}
            }
            // The connection broke (closed, I/O, timeout): drop it; once, try a new one.
            if let Some(old) = slot.take() {
                drop_client(old);
            }
            if fresh || reconnected {
                return Err(unreachable(e));
            }
            tracing::info!(error = %e, "the fleet database connection broke; trying once more on a new one");
            reconnected = true;
        }
    }

    /// A new connection of its own (for LISTEN), outside this one.
    pub fn connect(&self) -> Result<Client, StoreError> {
        self.config.connect().map_err(unreachable)
    }
}

/// What running the migrations found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The version found before.
    pub was: usize,
    /// The version now.
    pub now: usize,
}

/// Brings the schema to this ocspd's version (each migration in a transaction, one node at a
/// time); refuses a database whose schema is newer than this ocspd knows.
pub fn migrate(pg: &Pg) -> Result<SchemaVersion, StoreError> {
    pg.with(|c| {
        c.batch_execute("CREATE TABLE IF NOT EXISTS ocspd_schema (version integer NOT NULL)")?;
        let mut tx = c.transaction()?;
        tx.batch_execute("LOCK TABLE ocspd_schema IN EXCLUSIVE MODE")?;
        let was: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM ocspd_schema", &[])?.get(0);
        let was = was.max(0) as usize;
        if was > MIGRATIONS.len() {
            return Ok(Err(was));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(was) {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO ocspd_schema (version) VALUES ($1)", &[&((i + 1) as i32)])?;
        }
        tx.commit()?;
        Ok(Ok(SchemaVersion { was, now: MIGRATIONS.len() }))
    })?
    .map_err(|was| {
        StoreError::Schema(format!(
            "fleet database at version {was}, newer than this ocspd's {}; upgrade ocspd",
            MIGRATIONS.len()
        ))
    })
}
