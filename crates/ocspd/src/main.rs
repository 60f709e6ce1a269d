//! `ocspd`, the OCSP responder: opens the revocation database, loads and checks every issuer's
//! responder identity, and serves the public OCSP listener and the admin listener.

mod config;
mod demo;

/// mimalloc: the memory tier churns millions of small allocations across threads; glibc's
/// per-thread arenas fragment under it (measured in docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use clap::Parser;
use ocsp_admin::{AdminService, AdminState, TokenFile};
use ocsp_http::{LiveSource, MemoryTier, Metrics, OcspService, PresignedSource, Source};
use ocsp_presign::Presigner;
use ocsp_proto::{Clock, SystemClock};
use ocsp_sign::{IssuerEntry, IssuerRegistry};
use ocsp_store::{Store, StoreOptions};
use std::sync::{Arc, Mutex};

fn main() {
    let args = config::Args::parse();
    let config = match args.validate() {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("ocspd: the configuration has {} problem(s):", problems.len());
            for p in problems {
                eprintln!("  - {p}");
            }
            std::process::exit(2);
        }
    };
    if let Some(config::Command::CheckConfig) = &args.command {
        println!("ocspd: the configuration is valid; settings in effect:");
        for (key, value, origin) in &config.effective {
            let from = match origin {
                config::Origin::Flag => "flag or OCSPD_* variable",
                config::Origin::File => "file",
                config::Origin::Default => "default",
            };
            // A password in the database URL is never printed.
            let value = if key == "fleet.database" { ocsp_fleet::pg::masked(value) } else { value.clone() };
            println!("{key} = {value:?}  # {from}");
        }
        return;
    }
    if let Some(config::Command::Token(config::TokenCmd::Add { name, role })) = &args.command {
        let role = ocsp_admin::Role::parse(role).unwrap_or(ocsp_admin::Role::Read);
        match TokenFile::in_dir(&config.data_dir).add_with_role(name, role) {
            Ok(token) => {
                println!("{token}");
                eprintln!("ocspd: token {name:?} (role {}) added; it works at once and is shown only now", role.name());
                return;
            }
            Err(e) => {
                eprintln!("ocspd: {e}");
                std::process::exit(1);
            }
        }
    }
    let failpoints = match ocsp_domain::failpoint::arm_from_env() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ocspd: {e}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !failpoints.is_empty() {
        tracing::warn!(points = ?failpoints, "OCSPD_FAILPOINTS is set: this process fails on purpose at these points (tests only)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ocspd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(config)) {
        eprintln!("ocspd: {e:#}");
        std::process::exit(1);
    }
}

async fn run(config: config::Config) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The ports first: a port in use is reported before anything is created in the data
    // folder (the database, the tokens, the demo PKI).
    let public =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", config.admin_listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding metrics {}", config.metrics_listen))?;
    let public_addr = public.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data folder {}", config.data_dir.display()))?;
    // RocksDB's files share the open-file limit with the listeners: a quarter of it.
    let max_open_files = ocsp_http::open_files_limit().map(|n| (n / 4).clamp(64, 10_000) as i32).unwrap_or(-1);
    let store_options = StoreOptions {
        cache_bytes: config.db_cache_bytes as usize,
        max_open_files,
        write_buffer_bytes: config.db_write_buffer_bytes as usize,
    };
    let store = Arc::new(
        Store::open_with(&config.data_dir.join("db"), &store_options).context("opening the revocation database")?,
    );
    let auth = TokenFile::in_dir(&config.data_dir).load_or_create().context("loading admin tokens")?;

    // Fleet mode: the data folder holds this node's replica of the fleet's database.
    let fleet = match &config.fleet {
        Some(fc) => {
            let mut fc = fc.clone();
            if fc.node == "auto" {
                if config.listen.port() == 0 {
                    anyhow::bail!("fleet mode with --listen on port 0 needs --node-name");
                }
                fc.node = config.listen.to_string();
            }
            let node = fc.node.clone();
            // The PostgreSQL client blocks on a runtime of its own: outside this one's context.
            let fleet = tokio::task::block_in_place(|| ocsp_fleet::Fleet::open(fc, store.clone()))
                .map_err(|e| anyhow::anyhow!("joining the fleet: {e}"))?;
            tracing::info!(node = %node, "fleet node; PostgreSQL holds the truth, this data folder the replica");
            Some(fleet)
        }
        None => None,
    };

    ocsp_sign::allow_pkcs11_modules(&config.pkcs11_modules);
    let registry = Arc::new(IssuerRegistry::default());
    let now = clock.now();
    let mut problems = Vec::new();
    for record in store.issuers().context("reading issuers")? {
        if record.retired_at.is_some() {
            continue;
        }
        match load_issuer(&record, now) {
            Ok(entry) => {
                warn_expiry(&entry, now, config.expiry_warning_days);
                registry.insert(entry);
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("cannot serve with bad responder identities:\n  - {}", problems.join("\n  - "));
    }
    let policies = Arc::new(config.policies.clone());
    for name in policies.by_issuer.keys() {
        if registry.by_name(name).is_none() {
            tracing::warn!(issuer = %name, "the configuration sets a policy for an issuer that is not registered (or is retired); it applies once one is registered under that name");
        }
    }
    for entry in registry.all() {
        let p = policies.of(&entry.name);
        tracing::info!(issuer = %entry.name, reasons = p.reasons.name(), nonces = p.nonces.name(), "issuer policy");
    }

    // Where the domain writes, where the pre-signer writes, the feed the purger follows:
    // this node's RocksDB alone, or PostgreSQL for the fleet.
    let (status_store, response_store, purge_feed): (
        Arc<dyn ocsp_domain::StatusStore>,
        Arc<dyn ocsp_domain::ResponseStore>,
        Arc<dyn ocsp_domain::ChangeFeed>,
    ) = match &fleet {
        Some(f) => (
            f.status_store().map_err(|e| anyhow::anyhow!("{e}"))?,
            f.response_store().map_err(|e| anyhow::anyhow!("{e}"))?,
            f.purge_feed().map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => (store.clone(), store.clone(), store.clone()),
    };
    let presigner =
        Presigner::new(response_store, registry.clone(), clock.clone(), config.cadence, config.presign_threads);
    if let Some(f) = &fleet {
        let f = f.clone();
        presigner.set_gate(Arc::new(move || f.signs()));
    }

    // The tiers: memory, then pre-signed responses, then live signing.
    let metrics = Arc::new(Metrics::default());
    let live = Arc::new(LiveSource::new(store.clone(), clock.clone(), config.live.clone(), metrics.clone()));
    let presigned_tier = Arc::new(PresignedSource::new(store.clone(), clock.clone(), live.clone(), metrics.clone()));
    let presigned: Arc<dyn Source> = presigned_tier.clone();
    let memory = (config.memory_cache_bytes > 0).then(|| {
        Arc::new(MemoryTier::new(config.memory_cache_bytes, presigned.clone(), clock.clone(), metrics.clone()))
    });
    let tiers: Arc<dyn Source> = match &memory {
        Some(m) => m.clone(),
        None => presigned,
    };
    let epoch = Arc::new(ocsp_http::ChangeEpoch::default());
    let source: Arc<dyn Source> = Arc::new(ocsp_http::ChangeGuard::new(tiers, epoch.clone(), metrics.clone()));
    let purger = tokio::task::block_in_place(|| ocsp_purge::Purger::new(purge_feed, &config.purge))
        .map_err(|e| anyhow::anyhow!("starting the purge fan-out: {e}"))?;
    if let Some(f) = &fleet {
        let f = f.clone();
        purger.set_gate(Arc::new(move || f.purges()));
    }
    // CRLs: in fleet mode the node holding the signer lease signs them into PostgreSQL and
    // every node serves the shards its replica receives (as an in-process follower).
    let publisher = ocsp_crl::Publisher::new(store.clone(), clock.clone(), config.crl.clone())
        .map_err(|e| anyhow::anyhow!("loading the CRLs: {e}"))?;
    if let Some(f) = &fleet {
        let signs = f.clone();
        publisher.set_fleet(
            f.crl_store().map_err(|e| anyhow::anyhow!("{e}"))?,
            Arc::new(move || signs.signs()),
            f.crl_cursor(),
        );
    }

    // Everything that holds or derives answers follows the change feed, in this order: live
    // signings in flight die with the change before the memory tier's epoch moves.
    let mut followers: Vec<Arc<dyn ocsp_domain::Follower>> = Vec::new();
    // A fleet node learns of issuers (registered, promoted, retired) from its feed, before the
    // tiers drop what the change made wrong, and before the change guard holds answers for
    // it (loading a key from a token takes a moment); a single node's operations load them
    // directly.
    if let Some(f) = &fleet {
        followers.push(Arc::new(IssuerLoader {
            store: store.clone(),
            registry: registry.clone(),
            presigner: presigner.clone(),
            fleet: f.clone(),
            loaded: Mutex::default(),
        }));
    }
    followers.push(epoch.opening());
    followers.push(presigned_tier.clone());
    if let Some(memory) = &memory {
        followers.push(memory.clone());
    }
    if config.presign {
        followers.push(presigner.clone());
    }
    followers.push(publisher.clone());
    followers.push(purger.clone());
    followers.push(epoch.closing());
    // Every follower of the feed is a consumer of one runtime: the in-process followers, each
    // purge target's deliverer, the fleet's replicator and CRL regeneration.
    let runtime = ocsp_domain::runtime::Runtime::new();
    let followers = ocsp_domain::Followers::start_on(&runtime, store.clone(), followers)
        .context("starting the change-feed follower")?;
    // A purge goes out once every origin an edge may refetch from applied its change: this
    // process's followers, or every node of the fleet that may answer.
    let bound: ocsp_purge::Bound = match &fleet {
        Some(f) => {
            let f = f.clone();
            Arc::new(move || f.watermark().map_err(|e| e.to_string()))
        }
        None => {
            let applied = followers.clone();
            Arc::new(move || Ok(applied.applied()))
        }
    };
    purger.set_bound(bound);
    if let Some(f) = &fleet {
        let f = f.clone();
        purger.set_cursors(Arc::new(move |target| f.purge_cursor(target) as Arc<dyn ocsp_domain::runtime::Cursor>));
    }
    purger.spawn_on(&runtime).context("starting the purge deliverers")?;
    let crls = Some(publisher);
    let fleet_threads = match &fleet {
        Some(f) => f.spawn(&runtime, followers.clone()).context("starting the fleet replicator")?,
        None => Vec::new(),
    };

    let ports = ocsp_domain::Ports {
        followers: Some(followers.clone()),
        replicas: fleet.clone().map(|f| f as Arc<dyn ocsp_domain::Replicas>),
        resigner: config
            .presign
            .then(|| Arc::new(ocsp_admin::PresignerPort(presigner.clone())) as Arc<dyn ocsp_domain::Resigner>),
        hot: memory.clone().map(|m| Arc::new(ocsp_admin::MemoryPort(m)) as Arc<dyn ocsp_domain::HotSerials>),
        purges: Some(Arc::new(ocsp_admin::PurgerPort(purger.clone())) as Arc<dyn ocsp_domain::PurgeWaiter>),
        purge_wait: config.purge_wait,
    };
    let domain =
        Arc::new(ocsp_domain::Domain::new(status_store, registry.clone(), clock.clone(), policies.clone(), ports));
    // Every follower of the change feed on this node, with its lag: one list for the admin
    // API (`ocspctl feed status`) and the metrics.
    let consumers: Arc<dyn Fn() -> Vec<ocsp_domain::api::ConsumerLag> + Send + Sync> = {
        let (store, runtime, fleet) = (store.clone(), runtime.clone(), fleet.clone());
        Arc::new(move || {
            let local = store.feed_head();
            // A fleet's head is the shared one, which the replica may not have reached.
            let head = local + fleet.as_ref().map_or(0, |f| f.lag());
            runtime
                .consumers()
                .iter()
                .map(|c| {
                    // What is done, for a consumer whose cursor moves only then (a CRL read but
                    // not yet signed is still owed); nothing while another node holds the role.
                    use ocsp_domain::runtime::Kind;
                    let next = match c.kind() {
                        _ if !c.active() => None,
                        Kind::Role | Kind::Durable => c.committed().or(c.next()),
                        Kind::InProcess | Kind::Replica => c.next(),
                    };
                    ocsp_domain::api::ConsumerLag {
                        name: c.name().to_string(),
                        kind: c.kind().name().to_string(),
                        next,
                        lag: next.map_or(0, |n| head.saturating_sub(n)),
                    }
                })
                .collect()
        })
    };
    let admin = Arc::new(AdminService::new(
        AdminState {
            consumers: Some(consumers.clone()),
            domain: domain.clone(),
            presigner: config.presign.then(|| presigner.clone()),
            memory: memory.clone(),
            purger: Some(purger.clone()),
            crls: crls.clone(),
            fleet: fleet.clone(),
        },
        auth,
    ));
    let demo = if config.demo && registry.is_empty() {
        Some(tokio::task::block_in_place(|| demo::create(&config.data_dir, &domain)).context("creating the demo PKI")?)
    } else {
        None
    };

    let presign_thread = if config.presign {
        Some(presigner.spawn(config.presign_interval).context("starting the pre-signer")?)
    } else {
        None
    };
    let presign_metrics = presigner.clone();
    let purge_metrics = purger.clone();
    let mut service = OcspService::new(registry.clone(), source, clock.clone(), metrics, config.service.clone())
        .with_nonce_policies(policies.clone(), live)
        .with_metrics(move || presign_metrics.render_metrics())
        .with_metrics(move || purge_metrics.render_metrics());
    if let Some(crls) = &crls {
        let crl_metrics = crls.clone();
        service = service.with_crls(crls.clone()).with_metrics(move || crl_metrics.render_metrics());
    }
    if let Some(f) = &fleet {
        let fleet_metrics = f.clone();
        service = service.with_metrics(move || fleet_metrics.render_metrics());
    }
    if let Some(memory) = memory.clone() {
        service = service.with_metrics(move || memory.render_metrics());
    }
    service = service.with_metrics(move || {
        let mut s = String::from("# HELP ocspd_feed_consumer_lag_changes Changes of the feed a follower on this node has not applied (a role-held one only while this node holds the role).\n# TYPE ocspd_feed_consumer_lag_changes gauge\n");
        for c in consumers().iter().filter(|c| c.next.is_some()) {
            s.push_str(&format!("ocspd_feed_consumer_lag_changes{{consumer=\"{}\",kind=\"{}\"}} {}\n", c.name, c.kind, c.lag));
        }
        s
    });
    let (expiry_registry, expiry_clock) = (registry.clone(), clock.clone());
    service = service.with_metrics(move || expiry_metrics(&expiry_registry, expiry_clock.now()));
    let (public_stats, admin_stats) =
        (Arc::new(ocsp_http::ListenerStats::default()), Arc::new(ocsp_http::ListenerStats::default()));
    let (p, a) = (public_stats.clone(), admin_stats.clone());
    service = service.with_metrics(move || ocsp_http::ListenerStats::render_all(&[("public", &p), ("admin", &a)]));
    tracing::info!(
        public_max = config.public_limits.max_connections,
        admin_max = config.admin_limits.max_connections,
        idle_timeout_s = config.public_limits.idle_timeout.as_secs(),
        open_files = ?ocsp_http::open_files_limit(),
        "connection bounds"
    );
    if let Some(f) = &fleet {
        let f = f.clone();
        service = service.with_serving(move || f.out_of_service());
    }
    let (ready_store, ready_registry, ready_fleet) = (store.clone(), registry.clone(), fleet.clone());
    let ready_crls = crls.clone();
    service = service.with_readiness(move || {
        let mut degraded = match &ready_fleet {
            Some(f) => f.readiness()?,
            None => None,
        };
        // A CRL key that cannot sign stops only its issuer's CRLs: ready, and saying so.
        // Issuer names only: this is the public listener (the reasons, with key paths, are in
        // the log and `ocspctl crl status`).
        let stopped: Vec<String> = ready_crls
            .as_ref()
            .map(|c| c.key_problems().into_iter().map(|(issuer, _)| issuer).collect())
            .unwrap_or_default();
        if !stopped.is_empty() {
            let crl = format!("CRL signing stopped for {}", stopped.join("; "));
            degraded = Some(degraded.map_or(crl.clone(), |d| format!("{d}; {crl}")));
        }
        if ready_registry.is_empty() {
            return Err("no issuer is registered (ocspctl issuer add)".into());
        }
        if let Some(fault) = ready_store.write_fault() {
            return Err(format!("database refuses writes ({fault}); recovering by itself when space returns"));
        }
        ready_store.estimated_statuses_checked().map_err(|e| format!("database: {e}"))?;
        Ok(degraded)
    });
    let service = Arc::new(service);

    // Machine-readable lines: tests and scripts read the ports from here.
    // The CRLs name their URLs: known now that the public listener is bound.
    if let Some(crls) = &crls {
        crls.set_base_url(&format!("http://{public_addr}"));
        crls.spawn_on(&runtime).context("starting the CRL publisher")?;
    }
    if let Some(f) = &fleet {
        f.set_urls(&format!("http://{public_addr}"), &format!("http://{admin_addr}"));
    }
    println!("ocspd: OCSP responder listening on http://{public_addr}");
    println!("ocspd: admin API listening on http://{admin_addr}");
    println!("ocspd: metrics listening on http://{metrics_addr}/metrics");
    tracing::info!(%public_addr, %admin_addr, issuers = registry.len(), "ocspd started");
    if !admin_addr.ip().is_loopback() {
        tracing::warn!(%admin_addr, "the admin API listens beyond loopback; keep it on a private network or firewall it");
    }
    if config.demo {
        demo::print_usage(&config.data_dir, public_addr, admin_addr, demo.is_some(), crls.is_some());
    }

    // Responder certificates expire while ocspd runs: check every hour, not only at start.
    let (watch_registry, watch_clock, warning_days) = (registry.clone(), clock.clone(), config.expiry_warning_days);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            for entry in watch_registry.all() {
                warn_expiry(&entry, watch_clock.now(), warning_days);
            }
        }
    });

    tokio::spawn(watch_writes(store.clone(), config.data_dir.clone(), [public_addr, admin_addr, metrics_addr]));

    // Refused admin calls counted past their bound are summarised on the record when their
    // window ends, whether or not the token is refused again.
    {
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tick.tick().await;
                let admin = admin.clone();
                let _ = tokio::task::spawn_blocking(move || admin.flush_refusals(false)).await;
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let public_task =
        tokio::spawn(ocsp_http::serve(public, service.clone(), config.public_limits, public_stats, stop_rx.clone()));
    let admin_at_stop = admin.clone();
    let admin_task =
        tokio::spawn(ocsp_http::serve(admin_listener, admin, config.admin_limits, admin_stats, stop_rx.clone()));
    let metrics_limits =
        ocsp_http::ListenerLimits { max_connections: 16, idle_timeout: std::time::Duration::from_secs(60) };
    let metrics_task = tokio::spawn(ocsp_http::serve(
        metrics_listener,
        Arc::new(ocsp_http::MetricsService(service.clone())),
        metrics_limits,
        Arc::new(ocsp_http::ListenerStats::default()),
        stop_rx,
    ));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(public_task, admin_task, metrics_task);
    let _ = tokio::task::spawn_blocking(move || admin_at_stop.flush_refusals(true)).await;
    presigner.stop();
    // Every consumer stops after its current step (a purge waiting to retry leaves its
    // changes in the outbox), before this node gives its leases up.
    purger.stop();
    let _ = tokio::task::spawn_blocking(move || runtime.stop()).await;
    if let Some(f) = &fleet {
        f.stop();
        let _ = tokio::task::spawn_blocking(move || fleet_threads.into_iter().for_each(|t| drop(t.join()))).await;
    }
    drop(followers);
    if let Some(thread) = presign_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    Ok(())
}

/// A fleet node's registry follows the feed: each issuer change loads the issuer as its
/// record now stands in the replica (registered, a backup or CRL key set, promoted, retired).
struct IssuerLoader {
    store: Arc<Store>,
    registry: Arc<IssuerRegistry>,
    presigner: Arc<Presigner>,
    fleet: Arc<ocsp_fleet::Fleet>,
    /// What each issuer's identities were loaded from (held across a read and its load, so a
    /// reset and a change never interleave).
    loaded: Mutex<std::collections::HashMap<ocsp_proto::IssuerKey, Identities>>,
}

/// The fields of an issuer record its responder identities are loaded from.
type Identities = (Option<Vec<u8>>, String, Option<Vec<u8>>, Option<String>);

impl IssuerLoader {
    fn load(
        &self,
        loaded: &mut std::collections::HashMap<ocsp_proto::IssuerKey, Identities>,
        key: &ocsp_proto::IssuerKey,
        record: &ocsp_store::IssuerRecord,
        signer_changed: bool,
    ) {
        if record.retired_at.is_some() {
            self.registry.remove(&record.name);
            loaded.remove(key);
            return;
        }
        let identities = (
            record.responder_cert_der.clone(),
            record.responder_key.clone(),
            record.backup_responder_cert_der.clone(),
            record.backup_responder_key.clone(),
        );
        // A change that leaves the identities as they are (a CRL key set) loads no key again.
        if loaded.get(key) != Some(&identities) || self.registry.by_key(key).is_none() {
            match load_issuer(record, SystemClock.now()) {
                Ok(entry) => {
                    self.registry.insert(entry);
                    loaded.insert(*key, identities);
                }
                Err(e) => tracing::error!(issuer = %record.name, error = %e, "cannot load an issuer of the fleet"),
            }
        }
        if signer_changed && self.fleet.signs() {
            self.presigner.request_pass(Some(*key));
        }
    }
}

impl ocsp_domain::Follower for IssuerLoader {
    fn apply(&self, change: &ocsp_store::Change) {
        use ocsp_store::ChangeKind;
        if !matches!(change.kind, ChangeKind::Issuer | ChangeKind::Signer) {
            return;
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        match self.store.issuer_records() {
            Ok(records) => {
                for (key, record) in records.iter().filter(|(k, _)| *k == change.issuer) {
                    self.load(&mut loaded, key, record, change.kind == ChangeKind::Signer);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the issuers of the replica"),
        }
    }

    fn reset(&self) {
        // Changes may have been missed (a full copy): load every issuer as it stands.
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.clear();
        match self.store.issuer_records() {
            Ok(records) => records.iter().for_each(|(key, record)| self.load(&mut loaded, key, record, true)),
            Err(e) => tracing::error!(error = %e, "cannot read the issuers of the replica"),
        }
    }
}

/// Loads an issuer's responder identity (and its backup) from its record. A responder
/// certificate outside its validity stops only its own issuer (tryLater, loud metric), never
/// the others: it is loaded, and refuses to sign.
fn load_issuer(record: &ocsp_store::IssuerRecord, now: i64) -> Result<IssuerEntry, String> {
    let lenient = ocsp_sign::ValidityPolicy::AllowOutside;
    IssuerEntry::load_with(
        &record.name,
        &record.cert_der,
        record.responder_cert_der.as_deref(),
        &record.responder_key,
        now,
        lenient,
    )
    .and_then(|entry| match &record.backup_responder_key {
        Some(key) => entry.with_backup_checked(record.backup_responder_cert_der.as_deref(), key, now, lenient),
        None => Ok(entry),
    })
    .map_err(|e| e.to_string())
}

/// `ocspd_responder_cert_expiry_seconds`: seconds until each responder certificate expires.
fn expiry_metrics(registry: &IssuerRegistry, now: i64) -> String {
    let mut s = String::from("# HELP ocspd_responder_cert_expiry_seconds Seconds until each responder certificate expires.\n# TYPE ocspd_responder_cert_expiry_seconds gauge\n");
    for entry in registry.all() {
        let identities =
            std::iter::once(("primary", &entry.identity)).chain(entry.backup.iter().map(|b| ("backup", b)));
        for (role, identity) in identities {
            s.push_str(&format!(
                "ocspd_responder_cert_expiry_seconds{{issuer=\"{}\",role=\"{role}\"}} {}\n",
                entry.name,
                identity.expires_in(now)
            ));
        }
    }
    s.push_str("# HELP ocspd_issuer_signing_blocked 1 when an issuer's signing responder certificate is outside its validity (the issuer answers tryLater).\n# TYPE ocspd_issuer_signing_blocked gauge\n");
    for entry in registry.all() {
        s.push_str(&format!(
            "ocspd_issuer_signing_blocked{{issuer=\"{}\"}} {}\n",
            entry.name,
            u8::from(!entry.identity.valid_at(now))
        ));
    }
    s
}

/// Warns about responder certificates (primary and backup) that expire soon; an error for a
/// primary that is outside its validity now (its issuer answers tryLater).
fn warn_expiry(entry: &IssuerEntry, now: i64, warning_days: i64) {
    if !entry.identity.valid_at(now) {
        tracing::error!(
            issuer = %entry.name,
            responder = %entry.identity.certificate().subject_text(),
            "responder certificate outside its validity: this issuer answers tryLater until a valid identity is provisioned or the backup promoted (docs/runbooks.md)"
        );
    }
    let identities = std::iter::once(("primary", &entry.identity)).chain(entry.backup.iter().map(|b| ("backup", b)));
    for (role, identity) in identities {
        let days = identity.expires_in(now) / 86_400;
        if days < warning_days {
            tracing::warn!(
                issuer = %entry.name,
                role,
                responder = %identity.certificate().subject_text(),
                days,
                "responder certificate expires soon; provision a new one (docs/runbooks.md)"
            );
        }
    }
}

/// After a write fails (a full disk, an I/O error), RocksDB refuses every later write until
/// the database is opened again. Every second: probe with a small write; if it still fails but
/// the disk takes a test file again, start this program afresh in this process (exec), on the
/// same ports. That is as safe as kill -9, which every acknowledged change survives. Until then
/// /readyz says not ready while reads go on.
async fn watch_writes(store: Arc<Store>, data_dir: std::path::PathBuf, bound: [std::net::SocketAddr; 3]) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(fault) = store.write_fault() else { continue };
        let (probe_store, dir) = (store.clone(), data_dir.clone());
        let verdict = tokio::task::spawn_blocking(move || {
            if !probe_store.read_only() && probe_store.probe_write().is_ok() {
                return None;
            }
            // Reopening replays the write-ahead log into tables: it needs about the log's size
            // again, and some more for a new log and MANIFEST. Restart only when that much can
            // really be written; never on the first few megabytes RocksDB itself freed.
            Some(disk_takes_writes(&dir, reopen_headroom(&dir.join("db"))))
        })
        .await
        .unwrap_or(None);
        match verdict {
            None => tracing::warn!(%fault, "database writes work again"),
            Some(false) => tracing::debug!(%fault, "database still refuses writes; the disk is still full"),
            Some(true) if fault.contains("No space left") => {
                tracing::error!(%fault, "the disk takes writes again but the database does not until it is reopened: restarting ocspd in place");
                restart_in_place(bound);
            }
            // Another fault (an I/O error, permissions): restarting would not cure it; stay
            // not ready and say so.
            Some(true) => tracing::error!(%fault, "database refuses writes; not ready until an operator looks"),
        }
    }
}

/// The space reopening the database at `db` needs: its write-ahead logs again, plus 16 MiB.
fn reopen_headroom(db: &std::path::Path) -> u64 {
    let logs: u64 = std::fs::read_dir(db)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    logs + (16 << 20)
}

/// True when `bytes` can be written and synced in `dir` (written in 1 MiB pieces, removed
/// after).
fn disk_takes_writes(dir: &std::path::Path, bytes: u64) -> bool {
    use std::io::Write;
    let path = dir.join(".ocspd-space-probe");
    let ok = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&path)?;
        let piece = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(piece.len() as u64) as usize;
            f.write_all(&piece[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    })()
    .is_ok();
    let _ = std::fs::remove_file(&path);
    ok
}

/// Replaces this process with a fresh ocspd with the same arguments, listening where this one
/// listens (ports given as 0 become the ports bound). File descriptors are closed on exec.
fn restart_in_place([public, admin, metrics]: [std::net::SocketAddr; 3]) -> ! {
    use std::os::unix::process::CommandExt;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut given = std::env::args_os().skip(1);
    while let Some(a) = given.next() {
        let text = a.to_string_lossy().into_owned();
        match text.as_str() {
            "--listen" | "--admin-listen" | "--metrics-listen" => {
                let _ = given.next();
            }
            t if ["--listen=", "--admin-listen=", "--metrics-listen="].iter().any(|p| t.starts_with(p)) => {}
            _ => args.push(a),
        }
    }
    for (flag, addr) in [("--listen", public), ("--admin-listen", admin), ("--metrics-listen", metrics)] {
        args.extend([flag.into(), addr.to_string().into()]);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let e = std::process::Command::new(exe).args(args).exec();
    tracing::error!(error = %e, "cannot restart in place; exiting for the service manager to restart");
    std::process::exit(75);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
