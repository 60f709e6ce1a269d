//! The connection to PostgreSQL and the schema, with its migrations.
//!
//! Every part of a node that talks to PostgreSQL (admin writes, the replicator, leases, the
//! signer's writes) has a [`Pg`] of its own: one connection, made when first needed and made
//! again after a failure, so one slow part never queues behind another.

use ocsp_store::StoreError;
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
];

/// Settings of every session ocspd opens. Its statements look certificates up by primary key
/// in batches (50,000 of a bulk revocation, out of millions): PostgreSQL's default costs (for
/// spinning disks) make the planner scan and hash the whole table instead from about 3
/// million rows on (UPDATE of 50,000 statuses: 1.24 s as a hash join over the table, 0.36 s
/// by index; DELETE of their 100,000 responses 1.30 s vs 0.15 s), and JIT-compile those
/// plans. SSD costs and no JIT keep the index plans; see docs/decisions.md.
pub const SESSION: &str = "-c random_page_cost=1.1 -c jit=off";

/// The server's clock, milliseconds since the epoch: every node compares lease times with the
/// same clock.
pub const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A failure of PostgreSQL as the rest of ocspd sees it: unreachable (nothing changed).
pub fn unreachable(e: postgres::Error) -> StoreError {
    let said = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    StoreError::Unreachable(said)
}

/// One connection to PostgreSQL, made when needed.
pub struct Pg {
    config: postgres::Config,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("host", &self.config.get_hosts()).finish()
    }
}

impl Pg {
    /// A connection to `url` (`postgresql://user@host:port/db` or key=value form).
    pub fn new(url: &str) -> Result<Pg, String> {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("fleet database URL: {e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.application_name("ocspd");
        config.options(SESSION);
        Ok(Pg { config, client: Mutex::new(None) })
    }

    /// Runs `f` with the connection (made first if there is none); after a failure the
    /// connection is dropped, and made again by the next call.
    pub fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.config.connect(NoTls).map_err(unreachable)?);
        }
        let Some(client) = slot.as_mut() else {
            return Err(StoreError::Unreachable("no connection".into()));
        };
        match f(client) {
            Ok(v) => Ok(v),
            Err(e) => {
                // A statement error inside a healthy connection keeps it; anything else (closed,
                // I/O, timeout) drops it.
                if e.as_db_error().is_none() || client.is_closed() {
                    *slot = None;
                }
                Err(unreachable(e))
            }
        }
    }

    /// A new connection of its own (for LISTEN), outside this one.
    pub fn connect(&self) -> Result<Client, StoreError> {
        self.config.connect(NoTls).map_err(unreachable)
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
