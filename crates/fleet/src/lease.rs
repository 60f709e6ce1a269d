//! Leases in PostgreSQL: one node of the fleet signs, one delivers purges.
//!
//! A lease is a row (name, holder, expiry on the server's clock). A node takes it when it is
//! free or expired and renews it while it holds it. It counts itself the holder only until
//! two thirds of the lease time after its last successful renewal began, measured on its own
//! monotonic clock: a node cut off from PostgreSQL stops acting before another node can take
//! the lease. The signer's writes check the lease again in their transaction.

use crate::pg::{Pg, NOW_MS};
use ocsp_records::StoreError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lease of the node that pre-signs responses for every issuer.
pub const SIGNER: &str = "signer";
/// The lease of the node that delivers purges.
pub const PURGER: &str = "purger";

/// One lease, as this node sees it.
#[derive(Debug)]
pub struct Lease {
    name: &'static str,
    node: String,
    ttl: Duration,
    held_until: Mutex<Option<Instant>>,
}

impl Lease {
    /// The lease `name` for `node`, valid `ttl` after each renewal.
    pub fn new(name: &'static str, node: &str, ttl: Duration) -> Lease {
        Lease { name, node: node.to_string(), ttl, held_until: Mutex::new(None) }
    }

    /// The lease's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Takes or renews the lease; whether this node holds it now.
    pub fn renew(&self, pg: &Pg) -> Result<bool, StoreError> {
        let started = Instant::now();
        let ttl_ms = self.ttl.as_millis() as i64;
        let result = pg.with(|c| {
            c.query_opt(
                &format!(
                    "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, {NOW_MS} + $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms \
                     WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms < {NOW_MS} RETURNING holder"
                ),
                &[&self.name, &self.node, &ttl_ms],
            )
        });
        let mut held = self.held_until.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(Some(_)) => {
                if held.is_none_or(|h| h <= Instant::now()) {
                    tracing::info!(lease = self.name, node = %self.node, "this node holds the lease");
                }
                *held = Some(started + self.ttl * 2 / 3);
                Ok(true)
            }
            Ok(None) => {
                if held.is_some_and(|h| h > Instant::now()) {
                    tracing::warn!(lease = self.name, node = %self.node, "the lease went to another node");
                }
                *held = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether this node holds the lease now (renewed recently enough).
    pub fn held(&self) -> bool {
        self.held_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|h| h > Instant::now())
    }

    /// Gives the lease up (at shutdown), so another node takes it at once.
    pub fn release(&self, pg: &Pg) {
        *self.held_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = pg.with(|c| c.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&self.name, &self.node]));
    }
}

/// Who holds each lease, as PostgreSQL says.
pub fn holders(pg: &Pg) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows =
        pg.with(|c| c.query(&format!("SELECT name, holder, expires_ms - {NOW_MS} FROM leases ORDER BY name"), &[]))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// The cursor of a consumer only the holder of lease `lease` runs (CRL signing), kept in
/// PostgreSQL with the lease: it moves only forward, and only in a transaction that finds the
/// lease still this node's, so a node that lost the role (paused, cut off) writes nothing and
/// the next holder resumes where the last one finished.
pub struct LeasedCursor {
    pg: crate::pg::Pg,
    name: String,
    lease: &'static str,
    node: String,
}

impl LeasedCursor {
    pub(crate) fn new(pg: crate::pg::Pg, name: &str, lease: &'static str, node: &str) -> LeasedCursor {
        LeasedCursor { pg, name: name.to_string(), lease, node: node.to_string() }
    }
}

impl ocsp_domain::RoleCursor for LeasedCursor {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        let row = self.pg.with(|c| c.query_opt("SELECT next FROM cursors WHERE name = $1", &[&self.name]))?;
        Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        let next = next as i64;
        let written = self.pg.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO cursors (name, next) SELECT $1, $2 WHERE EXISTS ( \
                       SELECT 1 FROM leases WHERE name = $3 AND holder = $4 AND expires_ms > {NOW_MS}) \
                     ON CONFLICT (name) DO UPDATE SET next = GREATEST(cursors.next, EXCLUDED.next)"
                ),
                &[&self.name, &next, &self.lease, &self.node],
            )
        })?;
        Ok(written == 1)
    }
}

/// The cursor of a purge target in a fleet: kept in PostgreSQL with the purger lease (only the
/// holder moves it, checked in the same statement) and on the node as well.
pub struct PurgeCursor {
    leased: LeasedCursor,
    target: String,
    local: std::sync::Arc<ocsp_store::Store>,
}

impl PurgeCursor {
    pub(crate) fn new(
        pg: crate::pg::Pg,
        target: &str,
        lease: &'static str,
        node: &str,
        local: std::sync::Arc<ocsp_store::Store>,
    ) -> PurgeCursor {
        PurgeCursor {
            leased: LeasedCursor::new(pg, &format!("purge/{target}"), lease, node),
            target: target.to_string(),
            local,
        }
    }
}

impl ocsp_domain::runtime::Cursor for PurgeCursor {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        // Only the fleet's cursor says what was delivered (unreachable is an error here, never
        // "this node's head"); no row: never delivered by any node (the holder starts at its
        // head, `Consumer::start_fresh`; a node on standby learns nothing from it).
        ocsp_domain::RoleCursor::load(&self.leased)
    }

    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        let held = ocsp_domain::RoleCursor::commit(&self.leased, next)?;
        if held {
            self.local.set_feed_cursor(&self.target, next)?;
        }
        Ok(held)
    }
}
