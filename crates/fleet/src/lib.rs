//! Fleet mode: several ocspd nodes, one truth in PostgreSQL.
//!
//! PostgreSQL holds issuers, statuses keyed by (issuerNameHash, issuerKeyHash, serial), the
//! audit record, the change feed (which is the purge outbox) and the signed responses. Each
//! node serves from a local RocksDB replica that it fills by following the shared feed in
//! order from its own position ([`ocsp_store::Store::apply_mirrored`]); LISTEN/NOTIFY only
//! wakes it early, polling is the guarantee. A node applying a change evicts its own caches
//! through its in-process followers, so no node depends on a peer's purge. One node at a time
//! holds the signer lease and pre-signs for every issuer, another (or the same) holds the
//! purger lease and delivers purges; when a holder dies its lease expires and another node
//! takes it within [`FleetConfig::lease`] and one renewal.
//!
//! A node answers `good` only while it holds its serving lease ([`serving`]), and an
//! acknowledgement waits until every node that may answer applied the change or left service
//! until it has. With PostgreSQL down, every node serves its replica for the serving lease
//! (`/readyz` degraded), then only what no acknowledged change can contradict; admin writes
//! fail at once with nothing changed, and the replicator catches up by itself when PostgreSQL
//! is back.

mod carried;
mod lease;
pub mod pg;
mod replica;
mod responses;
pub mod serving;
mod truth;

pub use lease::{Lease, LeasedCursor, PURGER, SIGNER};
pub use pg::{PgSettings, PgTls};
pub use responses::{FleetCrls, FleetFeed, FleetResponses};
pub use serving::Confirmation;
pub use truth::FleetStore;

use ocsp_records::StoreError;
use ocsp_store::Store;
use pg::{Pg, PgConfig, NOW_MS};
use serving::Serving;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name of CRL regeneration's cursor in `cursors` (purge targets' are `purge/<name>`).
pub const CRL_CURSOR: &str = "role/crl";

/// How a node joins the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The PostgreSQL connection: URL, TLS, password file.
    pub database: PgSettings,
    /// This node's name, unique in the fleet.
    pub node: String,
    /// How long a lease lasts after its last renewal (takeover takes at most this and one
    /// renewal interval, a third of it).
    pub lease: Duration,
    /// How long a node may answer after its last contact with the fleet database (its
    /// serving lease); also the most an acknowledgement waits for a node that is gone.
    pub serving_lease: Duration,
    /// How long an acknowledgement waits for a lagging node before taking it out of service.
    pub ack_wait: Duration,
}

/// Why a node cannot join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The configuration.
    #[error("{0}")]
    Config(String),
    /// The fleet database or the replica.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One node of the fleet, as the node and `ocspctl fleet status` see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// Its public URL.
    pub public_url: String,
    /// Its admin URL.
    pub admin_url: String,
    /// The first shared change it has not applied.
    pub applied: u64,
    /// Changes it is behind the shared head.
    pub lag: u64,
    /// Seconds since it last reported.
    pub seen_seconds_ago: f64,
    /// It holds the signer lease.
    pub signs: bool,
    /// It holds the purger lease.
    pub purges: bool,
    /// It may answer (its serving lease runs and it is not fenced).
    #[serde(default)]
    pub serves: bool,
}

/// The fleet as PostgreSQL sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FleetStatus {
    /// The shared feed's head.
    pub head: u64,
    /// The node answering.
    pub this_node: String,
    /// Every node that ever reported, by name.
    pub nodes: Vec<NodeStatus>,
    /// Set when the fleet database could not be read: this node's own view only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// This node's part in the fleet.
pub struct Fleet {
    config: FleetConfig,
    pg: PgConfig,
    serving: Arc<Serving>,
    /// Acknowledgements confirm through a connection of their own.
    acks: Mutex<Option<Arc<Pg>>>,
    /// Purge deliverers read the watermark through a connection of their own.
    watermarks: Mutex<Option<Arc<Pg>>>,
    pub(crate) local: Arc<Store>,
    signer: Arc<Lease>,
    purger: Arc<Lease>,
    /// The shared head as last read.
    pub(crate) shared_head: AtomicU64,
    /// Whether the last exchange with PostgreSQL worked.
    pub(crate) connected: AtomicBool,
    /// The last error from PostgreSQL.
    last_error: Mutex<Option<String>>,
    /// The replica has caught up with the shared head at least once since start.
    pub(crate) caught_up: AtomicBool,
    urls: Mutex<(String, String)>,
    stop: AtomicBool,
    pub(crate) copies: AtomicU64,
    pub(crate) applied_changes: AtomicU64,
}

impl Fleet {
    /// Joins the fleet: runs the schema migrations, makes `local` a replica and, when it
    /// holds no copy yet, copies the shared state into it. With PostgreSQL unreachable, a
    /// node with a copy starts (degraded, serving its replica); one without cannot.
    pub fn open(config: FleetConfig, local: Arc<Store>) -> Result<Arc<Fleet>, FleetError> {
        if config.node.is_empty() || config.node.len() > 64 {
            return Err(FleetError::Config("fleet node name: 1 to 64 characters".into()));
        }
        if config.lease < Duration::from_secs(1) {
            return Err(FleetError::Config("fleet lease: at least 1 s".into()));
        }
        if config.serving_lease < Duration::from_secs(1) {
            return Err(FleetError::Config("fleet serving lease: at least 1 s".into()));
        }
        let pgc = PgConfig::new(&config.database).map_err(FleetError::Config)?;
        let pg = Pg::new(&pgc);
        local.become_mirror()?;
        let me = Arc::new(Fleet {
            pg: pgc,
            serving: Arc::new(Serving::new(&config.node, config.serving_lease)),
            acks: Mutex::new(None),
            watermarks: Mutex::new(None),
            signer: Arc::new(Lease::new(SIGNER, &config.node, config.lease)),
            purger: Arc::new(Lease::new(PURGER, &config.node, config.lease)),
            config,
            local,
            shared_head: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
            caught_up: AtomicBool::new(false),
            urls: Mutex::default(),
            stop: AtomicBool::new(false),
            copies: AtomicU64::new(0),
            applied_changes: AtomicU64::new(0),
        });
        match pg::migrate(&pg) {
            Ok(v) => {
                if v.was != v.now {
                    tracing::info!(from = v.was, to = v.now, "fleet database schema migrated");
                }
                me.connected.store(true, Ordering::SeqCst);
            }
            Err(StoreError::Unreachable(e)) if me.local.mirror_ready()? => {
                tracing::warn!(error = %e, "the fleet database is unreachable; serving this node's replica until it is back");
                me.note_error(&e);
            }
            Err(e) => return Err(e.into()),
        }
        if !me.local.mirror_ready()? {
            let started = Instant::now();
            let (head, certificates) = replica::copy(&pg, &me.local)?;
            me.copies.fetch_add(1, Ordering::Relaxed);
            tracing::info!(head, certificates, seconds = started.elapsed().as_secs_f64(), "copied the fleet's state");
        }
        Ok(me)
    }

    /// The store the domain writes through (PostgreSQL).
    pub fn status_store(&self) -> Result<Arc<FleetStore>, FleetError> {
        Ok(Arc::new(FleetStore::new(Pg::new(&self.pg), Pg::new(&self.pg), self.local.clone())))
    }

    /// The response store the pre-signer writes through (PostgreSQL, signer lease).
    pub fn response_store(&self) -> Result<Arc<FleetResponses>, FleetError> {
        let pg = Pg::new(&self.pg);
        Ok(Arc::new(FleetResponses::new(pg, self.local.clone(), self.signer.clone(), &self.config.node)))
    }

    /// Where the signing node stores CRL shards (PostgreSQL, signer lease).
    pub fn crl_store(&self) -> Result<Arc<FleetCrls>, FleetError> {
        let pg = Pg::new(&self.pg);
        Ok(Arc::new(FleetCrls::new(pg, self.signer.clone(), &self.config.node)))
    }

    /// The cursor of CRL regeneration, kept with the signer lease in PostgreSQL.
    pub fn crl_cursor(&self) -> Arc<lease::LeasedCursor> {
        Arc::new(lease::LeasedCursor::new(Pg::new(&self.pg), CRL_CURSOR, SIGNER, &self.config.node))
    }

    /// The cursor of the purge target `target`, kept in PostgreSQL with the purger lease: only
    /// the holder moves it, in a transaction that finds the lease still its own.
    pub fn purge_cursor(&self, target: &str) -> Arc<lease::PurgeCursor> {
        Arc::new(lease::PurgeCursor::new(Pg::new(&self.pg), target, PURGER, &self.config.node, self.local.clone()))
    }

    /// The feed the purge fan-out follows (cursors shared in PostgreSQL).
    pub fn purge_feed(&self) -> Result<Arc<FleetFeed>, FleetError> {
        Ok(Arc::new(FleetFeed::new(Pg::new(&self.pg), self.local.clone())))
    }

    /// Whether this node pre-signs now.
    pub fn signs(&self) -> bool {
        self.signer.held()
    }

    /// Whether this node delivers purges now.
    pub fn purges(&self) -> bool {
        self.purger.held()
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Records where this node answers, for `ocspctl fleet status`.
    pub fn set_urls(&self, public: &str, admin: &str) {
        *self.urls.lock().unwrap_or_else(|p| p.into_inner()) = (public.to_string(), admin.to_string());
    }

    pub(crate) fn note_error(&self, e: &str) {
        self.connected.store(false, Ordering::SeqCst);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    pub(crate) fn note_ok(&self) {
        self.connected.store(true, Ordering::SeqCst);
    }

    /// Changes this node is behind the shared head (as last read).
    pub fn lag(&self) -> u64 {
        self.shared_head.load(Ordering::SeqCst).saturating_sub(self.local.feed_head())
    }

    /// For `/readyz`: not ready while out of service (catching up, fenced, or the serving
    /// lease lapsed); ready but degraded (`Ok(Some(why))`) while PostgreSQL is unreachable and
    /// the serving lease still runs.
    pub fn readiness(&self) -> Result<Option<String>, String> {
        if let Some(why) = self.serving.out_of_service() {
            if !self.caught_up.load(Ordering::SeqCst) && self.connected.load(Ordering::SeqCst) {
                return Err(format!("catching up with the fleet ({} changes behind); {why}", self.lag()));
            }
            return Err(why);
        }
        if !self.connected.load(Ordering::SeqCst) {
            let e = self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            return Ok(Some(format!(
                "fleet database unreachable ({e}); serving this node's replica until the serving lease lapses"
            )));
        }
        Ok(None)
    }

    /// Starts the replicator (the consumer `replica` of `runtime`), the lease keeper and the
    /// serving heartbeat; `followers` are this node's in-process followers, whose progress the
    /// heartbeat reports.
    pub fn spawn(
        self: &Arc<Self>,
        runtime: &ocsp_domain::runtime::Runtime,
        followers: Arc<ocsp_domain::Followers>,
    ) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        runtime.spawn(Box::new(replica::runner(self.clone(), Pg::new(&self.pg))))?;
        let (b, c) = (self.clone(), self.clone());
        Ok(vec![
            std::thread::Builder::new().name("fleet-leases".into()).spawn(move || b.keep_leases())?,
            std::thread::Builder::new().name("fleet-serving".into()).spawn(move || c.keep_serving(followers))?,
        ])
    }

    /// None while this node may answer `good`; otherwise why not (its serving lease lapsed,
    /// or an acknowledgement fenced it until it catches up).
    pub fn out_of_service(&self) -> Option<String> {
        self.serving.out_of_service()
    }

    /// Waits until every node that may answer has applied change `seq` (or left service until
    /// it has); bounded by `ack_wait` plus the serving lease.
    pub fn confirm(&self, seq: u64) -> Confirmation {
        serving::confirm(&self.connection(&self.acks), seq, self.config.ack_wait, self.config.serving_lease)
    }

    /// The first change whose purge may not be delivered yet (some node that may answer has
    /// not applied it).
    pub fn watermark(&self) -> Result<u64, StoreError> {
        serving::watermark(&self.connection(&self.watermarks))
    }

    /// The connection kept in `slot`, made the first time it is needed.
    fn connection(&self, slot: &Mutex<Option<Arc<Pg>>>) -> Arc<Pg> {
        slot.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| Arc::new(Pg::new(&self.pg))).clone()
    }

    /// The serving heartbeat and the progress reports, on one thread so the node's own view
    /// of whether it serves changes in the order PostgreSQL decided it.
    fn keep_serving(&self, followers: Arc<ocsp_domain::Followers>) {
        let pg = Pg::new(&self.pg);
        let every = self.config.serving_lease / 3;
        let mut last_beat: Option<Instant> = None;
        let mut reported = u64::MAX;
        while !self.stop.load(Ordering::SeqCst) {
            let applied = followers.applied();
            let serving = self.serving.out_of_service().is_none();
            let beat_due = last_beat.is_none_or(|t| t.elapsed() >= every)
                || (!serving && applied != reported && self.caught_up.load(Ordering::SeqCst));
            let result = if beat_due {
                let urls = self.urls.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let started = Instant::now();
                let r = self.serving.renew(&pg, applied, &urls).map(|_| ());
                if r.is_ok() {
                    last_beat = Some(started);
                }
                r
            } else if applied != reported {
                self.serving.report(&pg, applied)
            } else {
                Ok(())
            };
            match result {
                Ok(()) => {
                    reported = applied;
                    self.note_ok();
                }
                Err(e) => {
                    self.serving.note_unreachable(&e.to_string());
                    self.note_error(&e.to_string());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            // Woken as soon as the followers apply more (acknowledgements wait for the report).
            followers.wait_applied(applied, Duration::from_millis(100));
        }
        self.serving.release(&pg);
    }

    /// Stops both threads (and gives the leases up).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn keep_leases(&self) {
        let pg = Pg::new(&self.pg);
        let every = self.config.lease / 3;
        let mut last_trim = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let mut ok = true;
            // A node still catching up takes no role: it would sign CRLs and deliver purges
            // from a replica that lacks what the last holder had done.
            let caught_up = self.caught_up.load(Ordering::SeqCst);
            for lease in [&self.signer, &self.purger].into_iter().filter(|_| caught_up) {
                if let Err(e) = lease.renew(&pg) {
                    ok = false;
                    self.note_error(&e.to_string());
                }
            }
            // The signer trims the shared feed: what every node seen in the last day and every
            // purge cursor has passed, and at least an hour old.
            if ok && self.signer.held() && last_trim.elapsed() >= Duration::from_secs(60) {
                last_trim = Instant::now();
                let trimmed = pg.with(|c| {
                    c.execute(
                        &format!(
                            "DELETE FROM changes WHERE at_ms < {NOW_MS} - 3600000 AND seq < LEAST( \
                               (SELECT coalesce(min(applied), 0) FROM nodes WHERE seen_ms > {NOW_MS} - 86400000), \
                               (SELECT coalesce(min(next), 9223372036854775807) FROM cursors))"
                        ),
                        &[],
                    )
                });
                if let Err(e) = trimmed {
                    tracing::warn!(error = %e, "cannot trim the fleet's change feed");
                }
            }
            std::thread::sleep(every.saturating_sub(started.elapsed()));
        }
        self.signer.release(&pg);
        self.purger.release(&pg);
    }

    /// Every node, its lag and who signs and purges; with the fleet database out of reach,
    /// this node's own view, saying so.
    pub fn status(&self) -> Result<FleetStatus, StoreError> {
        match self.status_from_database() {
            Err(StoreError::Unreachable(e)) => {
                let (public_url, admin_url) = self.urls.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Ok(FleetStatus {
                    head: self.shared_head.load(Ordering::SeqCst),
                    this_node: self.config.node.clone(),
                    nodes: vec![NodeStatus {
                        name: self.config.node.clone(),
                        public_url,
                        admin_url,
                        applied: self.local.feed_head(),
                        lag: self.lag(),
                        seen_seconds_ago: 0.0,
                        signs: self.signer.held(),
                        purges: self.purger.held(),
                        serves: self.serving.out_of_service().is_none(),
                    }],
                    note: Some(format!(
                        "the fleet database is unreachable ({e}): this node's own view; the head is the last one it read"
                    )),
                })
            }
            other => other,
        }
    }

    fn status_from_database(&self) -> Result<FleetStatus, StoreError> {
        let pg = Pg::new(&self.pg);
        let holders = lease::holders(&pg)?;
        let holder = |name: &str| holders.iter().find(|(n, _, left)| n == name && *left > 0).map(|(_, h, _)| h.clone());
        let (signer, purger) = (holder(SIGNER), holder(PURGER));
        let (head, rows) = pg.with(|c| {
            let head: i64 = c.query_one("SELECT next FROM feed_head", &[])?.get(0);
            let rows = c.query(
                &format!("SELECT name, public_url, admin_url, applied, ({NOW_MS} - seen_ms)::float8 / 1000, serves AND serving_until_ms > {NOW_MS} FROM nodes ORDER BY name"),
                &[],
            )?;
            Ok((head, rows))
        })?;
        let nodes = rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let applied = r.get::<_, i64>(3).max(0) as u64;
                NodeStatus {
                    signs: signer.as_deref() == Some(name.as_str()),
                    purges: purger.as_deref() == Some(name.as_str()),
                    public_url: r.get(1),
                    admin_url: r.get(2),
                    applied,
                    lag: (head.max(0) as u64).saturating_sub(applied),
                    seen_seconds_ago: r.get(4),
                    serves: r.get(5),
                    name,
                }
            })
            .collect();
        Ok(FleetStatus { head: head.max(0) as u64, this_node: self.config.node.clone(), nodes, note: None })
    }

    /// Prometheus text: lag, connection, leases, copies.
    pub fn render_metrics(&self) -> String {
        let held = |b: bool| if b { 1 } else { 0 };
        format!(
            "# HELP ocspd_fleet_lag_changes Changes of the fleet's feed this node's replica has not applied.\n# TYPE ocspd_fleet_lag_changes gauge\nocspd_fleet_lag_changes {}\n\
             # HELP ocspd_fleet_applied Next change of the fleet's feed this node applies.\n# TYPE ocspd_fleet_applied gauge\nocspd_fleet_applied {}\n\
             # HELP ocspd_fleet_database_up Whether the last exchange with the fleet database worked.\n# TYPE ocspd_fleet_database_up gauge\nocspd_fleet_database_up {}\n\
             # HELP ocspd_fleet_lease_held Leases this node holds.\n# TYPE ocspd_fleet_lease_held gauge\nocspd_fleet_lease_held{{lease=\"signer\"}} {}\nocspd_fleet_lease_held{{lease=\"purger\"}} {}\n\
             # HELP ocspd_fleet_copies_total Full copies of the fleet's state into this node.\n# TYPE ocspd_fleet_copies_total counter\nocspd_fleet_copies_total {}\n\
             # HELP ocspd_fleet_changes_applied_total Changes applied to the replica.\n# TYPE ocspd_fleet_changes_applied_total counter\nocspd_fleet_changes_applied_total {}\n",
            self.lag(),
            self.local.feed_head(),
            held(self.connected.load(Ordering::SeqCst)),
            held(self.signer.held()),
            held(self.purger.held()),
            self.copies.load(Ordering::Relaxed),
            self.applied_changes.load(Ordering::Relaxed),
        )
    }
}

/// Acknowledgements wait for the fleet's other nodes.
impl ocsp_domain::Replicas for Fleet {
    fn confirm(&self, seq: u64) -> ocsp_domain::Confirmed {
        Fleet::confirm(self, seq)
    }
}
