//! CRLs from the same database as the OCSP answers.
//!
//! Every issuer with a CRL key gets its CRL in `n` shards (a certificate's shard is a fixed
//! function of its serial, [`ocsp_proto::shard_of`]), each served at its own URL, which its
//! critical IssuingDistributionPoint names (BR 7.2.2.1). The [`Publisher`] follows the change
//! feed from a durable cursor: a status change marks its certificate's shard dirty; dirty
//! shards are signed again after a short pause that gathers a burst (`coalesce`), and every
//! shard again at half its validity. A shard's CRLNumber strictly increases across restarts and
//! crashes (the store refuses a number that is not above the stored one; numbers are also at
//! least thisUpdate, so a restored backup cannot go back). Each stored CRL is a change in the
//! feed too, which the purge fan-out turns into a purge of the shard's cache tag.

mod verify;

pub use verify::{verify, VerifyReport};

use ocsp_domain::runtime::{Applied, Consumer, Cursor, FeedSource, Kind, RealTime, Retry, Runner, Runtime, Spec};
use ocsp_http::{crl_path, CrlDoc, CrlDocs};
use ocsp_proto::{x509::CertInfo, Clock, CrlBuilder, CrlEntry, CrlScope, IssuerKey};
use ocsp_records::{ChangeKind, CrlWrite, State, StoreError, StoredCrl};
use ocsp_sign::Signer;
use ocsp_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The longest a subscriber CRL may be valid (BR 7.2: nextUpdate at most 10 days on).
pub const MAX_VALIDITY: i64 = 10 * 86_400;
/// The longest a CRL of a root's issued CAs may be valid (BR 7.2: 12 months).
pub const MAX_CA_VALIDITY: i64 = 365 * 86_400;
/// How often the CRL keys are loaded again when none fails.
const KEY_RETRY: Duration = Duration::from_secs(60);
/// How often CRL keys that could not sign are tried again.
const KEY_RETRY_FAILING: Duration = Duration::from_secs(2);
/// The durable feed cursor of CRL regeneration.
const CURSOR: &str = "crl";

/// How CRLs are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlConfig {
    /// The origin the CRLs are published under (`http://crl.example.com`); a shard's URL is
    /// this and `/crl/<issuer name>/<shard>.crl`. Empty: set once the public listener is
    /// bound ([`Publisher::set_base_url`]).
    pub base_url: String,
    /// Shards of an issuer whose CRL key is set without a count (1: one full CRL); the
    /// count is then stored with the issuer and never changes.
    pub shards: u32,
    /// nextUpdate - thisUpdate of subscriber CRLs, seconds.
    pub validity: i64,
    /// nextUpdate - thisUpdate of a root's CRL of its CAs, seconds.
    pub ca_validity: i64,
    /// A change is in its shard's CRL within this (the bound the tests hold).
    pub within: Duration,
    /// How long a first change waits for others, so a burst is one regeneration.
    pub coalesce: Duration,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            base_url: "http://127.0.0.1:8080".into(),
            shards: 1,
            validity: 7 * 86_400,
            ca_validity: 30 * 86_400,
            within: Duration::from_secs(60),
            coalesce: Duration::from_secs(1),
        }
    }
}

/// A configuration that breaks a rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Out of bounds, with the rule.
    #[error("{0}")]
    Bound(String),
}

impl CrlConfig {
    /// Checks the bounds (BR 7.2 validity, shard counts, the URL).
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Bound(s));
        if !self.base_url.is_empty()
            && (!(self.base_url.starts_with("http://") || self.base_url.starts_with("https://"))
                || self.base_url.ends_with('/'))
        {
            return bad(format!("crl base URL {:?}: an http(s) origin without a trailing /", self.base_url));
        }
        if !(3600..=MAX_VALIDITY).contains(&self.validity) {
            return bad(format!("crl validity {} s: from 1 hour to 10 days (BR 7.2)", self.validity));
        }
        if !(3600..=MAX_CA_VALIDITY).contains(&self.ca_validity) {
            return bad(format!("crl CA validity {} s: from 1 hour to 365 days (BR 7.2)", self.ca_validity));
        }
        if !(1..=ocsp_proto::MAX_CRL_SHARDS).contains(&self.shards) {
            return bad(format!("crl shards {}: from 1 to {}", self.shards, ocsp_proto::MAX_CRL_SHARDS));
        }
        if self.coalesce >= self.within {
            return bad(format!("crl coalesce {:?} must be below the bound {:?}", self.coalesce, self.within));
        }
        Ok(())
    }
}

/// An issuer whose CRLs are published.
#[derive(Clone)]
struct CrlIssuer {
    key: IssuerKey,
    name: String,
    cert: CertInfo,
    key_ref: String,
    signer: Arc<dyn Signer>,
    shards: u32,
    scope: CrlScope,
    validity: i64,
}

/// One shard as the status view shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardStatus {
    /// The issuer's name.
    pub issuer: String,
    /// The shard.
    pub shard: u32,
    /// Its URL.
    pub url: String,
    /// CRLNumber of the CRL served (none yet: 0).
    pub number: u64,
    /// Entries it lists.
    pub entries: u64,
    /// thisUpdate.
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// Bytes.
    pub bytes: u64,
    /// Changes wait to be signed into it.
    pub dirty: bool,
}

/// One served shard, for `ocspctl export`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrlFile {
    /// The issuer's key, hex.
    pub issuer_key: String,
    /// The path it is served at, without the leading `/`.
    pub path: String,
    /// The CRL, DER (base64 in JSON).
    #[serde(with = "b64")]
    pub der: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Default)]
struct Counters {
    regenerations: AtomicU64,
    failures: AtomicU64,
    last_ms: AtomicU64,
}

/// Makes, stores and serves the CRLs.
pub struct Publisher {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    config: CrlConfig,
    base_url: RwLock<String>,
    issuers: RwLock<Vec<CrlIssuer>>,
    /// Dirty shards: when each first and last became dirty.
    dirty: Mutex<BTreeMap<(IssuerKey, u32), (Instant, Instant)>>,
    served: RwLock<HashMap<String, Arc<CrlDoc>>>,
    counters: Counters,
    /// Fleet mode: where signed shards go (PostgreSQL), and whether this node signs now.
    fleet: std::sync::OnceLock<(Arc<dyn ocsp_domain::CrlStore>, Gate)>,
    /// Where the regeneration's cursor lives: with the signing role.
    cursor: RwLock<Arc<dyn ocsp_domain::RoleCursor>>,
    /// An issuer changed (feed): the publisher's thread loads the issuers again.
    issuers_changed: AtomicBool,
    /// One reload of the issuers at a time (the thread, the admin API), read to write.
    refreshing: Mutex<()>,
    /// Issuers whose CRL key cannot sign now, with why (as of the last reload).
    key_problems: Mutex<Vec<(String, String)>>,
    /// Issuers with a CRL key that sign nothing now (no key that works): changes for them
    /// hold the regeneration's cursor until they sign again or their key is unset.
    not_signing: Mutex<std::collections::HashSet<IssuerKey>>,
}

/// Whether this node may sign CRLs now (fleet mode: it holds the signer lease).
pub type Gate = Arc<dyn ocsp_domain::runtime::Role>;

/// Why a regeneration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signer.
    #[error("signing the CRL of {issuer}: {reason}")]
    Sign {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: String,
    },
}

impl Publisher {
    /// A publisher over `store`; it loads the issuers with CRL keys and what is stored. A CRL
    /// key that cannot sign for its issuer (missing, not the issuer's key, no cRLSign) stops
    /// only that issuer's CRL signing: its stored shards are served until they expire, the
    /// problem is shown ([`Publisher::key_problems`]: `/readyz` degraded, a metric) and the key
    /// is tried again every few seconds; a key set or unset takes effect without a restart.
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, config: CrlConfig) -> Result<Arc<Publisher>, CrlError> {
        let store_for_cursor = store.clone();
        let me = Arc::new(Publisher {
            store,
            clock,
            base_url: RwLock::new(config.base_url.clone()),
            config,
            issuers: RwLock::default(),
            dirty: Mutex::default(),
            served: RwLock::default(),
            counters: Counters::default(),
            fleet: std::sync::OnceLock::new(),
            cursor: RwLock::new(Arc::new(ocsp_store::LocalCursor::new(store_for_cursor, CURSOR))),
            issuers_changed: AtomicBool::new(false),
            refreshing: Mutex::new(()),
            key_problems: Mutex::default(),
            not_signing: Mutex::default(),
        });
        // At start the regeneration resumes from its cursor: nothing is signed again for it.
        me.reload_issuers(false);
        // What is stored is served at once, for every issuer with a CRL key, whether or not
        // its key signs now.
        for record in me.store.issuers()? {
            if record.crl_key.is_none() {
                continue;
            }
            let Ok(cert) = CertInfo::from_der(&record.cert_der) else { continue };
            let key = ocsp_proto::IssuerHashes::of(&cert).key();
            let shards = if cert.subject == cert.issuer { 1 } else { record.crl_shards.unwrap_or(me.config.shards) };
            for crl in me.store.crls(&key)? {
                if crl.shard < shards {
                    me.serve_as(&record.name, &key, &crl);
                }
            }
        }
        if !me.config.base_url.is_empty() {
            me.mark_stale_urls();
        }
        Ok(me)
    }

    fn issuers(&self) -> Vec<CrlIssuer> {
        self.issuers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The URL of a shard.
    fn url(&self, name: &str, shard: u32) -> String {
        format!("{}{}", self.base_url.read().unwrap_or_else(|p| p.into_inner()), crl_path(name, shard))
    }

    /// Fleet mode: only while `gate` is open (the node holds the signer lease) does this node
    /// sign shards, and it stores them in `sink` (the fleet's database), which refuses a number
    /// not above the stored one; the regeneration's cursor is `cursor`, kept with the lease,
    /// so a node taking the role over signs every change the last holder had not finished.
    /// Every node serves the shards its replica receives from the feed (as an in-process
    /// follower), so every node serves the same bytes.
    pub fn set_fleet(
        &self,
        sink: Arc<dyn ocsp_domain::CrlStore>,
        gate: Gate,
        cursor: Arc<dyn ocsp_domain::RoleCursor>,
    ) {
        let _ = self.fleet.set((sink, gate));
        *self.cursor.write().unwrap_or_else(|p| p.into_inner()) = cursor;
    }

    /// The shard count given to an issuer whose CRL key is set without one.
    pub fn default_shards(&self) -> u32 {
        self.config.shards
    }

    /// Sets the origin when the configuration left it to the public listener's address
    /// (call before [`Publisher::spawn`]).
    pub fn set_base_url(&self, url: &str) {
        {
            let mut base = self.base_url.write().unwrap_or_else(|p| p.into_inner());
            if base.is_empty() {
                *base = url.trim_end_matches('/').to_string();
            }
        }
        self.mark_stale_urls();
    }

    /// Marks every served CRL whose IssuingDistributionPoint names another URL than its
    /// shard's now (the origin changed): it is signed again at once.
    fn mark_stale_urls(&self) {
        let past = Instant::now().checked_sub(self.config.within).unwrap_or_else(Instant::now);
        for issuer in self.issuers() {
            for shard in 0..issuer.shards {
                let url = self.url(&issuer.name, shard);
                let stale = self
                    .get(&crl_path(&issuer.name, shard))
                    .is_some_and(|doc| !doc.der.windows(url.len()).any(|w| w == url.as_bytes()));
                if stale {
                    self.mark(issuer.key, shard, past);
                }
            }
        }
    }

    /// Reloads the issuers with CRL keys from the database (new keys, retirements); a key
    /// that cannot sign is logged and its issuer left out until it can. Returns those issuers
    /// with the reason.
    pub fn refresh_issuers(&self) -> Vec<(String, String)> {
        self.reload_issuers(true)
    }

    /// As [`Publisher::refresh_issuers`]; with `mark_returning`, every shard of an issuer that
    /// signs again (or for the first time) is marked to be signed again.
    fn reload_issuers(&self, mark_returning: bool) -> Vec<(String, String)> {
        let _one = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        let records = match self.store.issuers() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the issuers for CRLs");
                return vec![("(all)".into(), e.to_string())];
            }
        };
        let mut problems = Vec::new();
        let mut not_signing = std::collections::HashSet::new();
        let known = self.issuers();
        let mut out = Vec::new();
        for record in records {
            let Some(key_ref) = record.crl_key.clone() else { continue };
            let Ok(cert) = CertInfo::from_der(&record.cert_der) else { continue };
            let key = ocsp_proto::IssuerHashes::of(&cert).key();
            let signer = match known.iter().find(|i| i.key == key && i.key_ref == key_ref) {
                Some(i) => i.signer.clone(),
                None => match ocsp_sign::crl_signer(&record.cert_der, &key_ref) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(issuer = %record.name, error = %e, "cannot sign CRLs with this key");
                        problems.push((record.name.clone(), e.to_string()));
                        // A key that worked goes on signing until the new one loads (tried
                        // again every few seconds), so the shards stay within their bound.
                        match known.iter().find(|i| i.key == key) {
                            Some(previous) => out.push(previous.clone()),
                            None => {
                                not_signing.insert(key);
                            }
                        }
                        continue;
                    }
                },
            };
            let root = cert.subject == cert.issuer;
            let shards = if root { 1 } else { record.crl_shards.unwrap_or(self.config.shards) };
            out.push(CrlIssuer {
                key,
                name: record.name.clone(),
                scope: if root { CrlScope::Cas } else { CrlScope::Subscribers },
                validity: if root { self.config.ca_validity } else { self.config.validity },
                cert,
                key_ref,
                signer,
                shards,
            });
        }
        // An issuer that was not signing (its key failing, unset, or set just now) and signs
        // again: changes made meanwhile were not noted for it, so every shard is signed again.
        if mark_returning {
            let past = Instant::now().checked_sub(self.config.within).unwrap_or_else(Instant::now);
            for issuer in out.iter().filter(|i| !known.iter().any(|k| k.key == i.key)) {
                tracing::info!(issuer = %issuer.name, "CRL signing (re)starts for this issuer; every shard is signed again");
                for shard in 0..issuer.shards {
                    self.mark(issuer.key, shard, past);
                }
            }
        }
        *self.issuers.write().unwrap_or_else(|p| p.into_inner()) = out;
        *self.key_problems.lock().unwrap_or_else(|p| p.into_inner()) = problems.clone();
        *self.not_signing.lock().unwrap_or_else(|p| p.into_inner()) = not_signing;
        problems
    }

    /// Whether `issuer` has a CRL key and signs nothing now.
    fn not_signing(&self, issuer: &IssuerKey) -> bool {
        self.not_signing.lock().unwrap_or_else(|p| p.into_inner()).contains(issuer)
    }

    /// Issuers whose CRL key cannot sign now, with why: their CRLs are not signed again until
    /// the key loads (tried every few seconds) or is replaced or unset.
    pub fn key_problems(&self) -> Vec<(String, String)> {
        self.key_problems.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves every stored shard newer than the one served (an issuer whose CRL key was just
    /// set; in fleet mode, shards another node signed before this one knew the issuer).
    fn serve_stored(&self) {
        for issuer in self.issuers() {
            let Ok(stored) = self.store.crls(&issuer.key) else { continue };
            for crl in stored.into_iter().filter(|c| c.shard < issuer.shards) {
                let newer =
                    self.get(&crl_path(&issuer.name, crl.shard)).is_none_or(|d| d.this_update < crl.this_update);
                if newer {
                    self.serve(&issuer, &crl);
                }
            }
        }
    }

    fn serve(&self, issuer: &CrlIssuer, crl: &StoredCrl) {
        self.serve_as(&issuer.name, &issuer.key, crl);
    }

    fn serve_as(&self, name: &str, key: &IssuerKey, crl: &StoredCrl) {
        let doc = CrlDoc::new(crl.der.clone(), crl.this_update, crl.next_update, key, crl.shard);
        self.served.write().unwrap_or_else(|p| p.into_inner()).insert(crl_path(name, crl.shard), Arc::new(doc));
    }

    /// Every CRL URL (what the CCADB asks a CA to disclose).
    pub fn urls(&self) -> Vec<String> {
        self.issuers().iter().flat_map(|i| (0..i.shards).map(|s| self.url(&i.name, s))).collect()
    }

    /// Every served shard (of the issuer named `only`, or all) for an object-store origin:
    /// the issuer key in hex, the path without its leading `/`, and the DER.
    pub fn files(&self, only: Option<&str>) -> Vec<CrlFile> {
        let mut out = Vec::new();
        for issuer in self.issuers().iter().filter(|i| only.is_none_or(|n| n == i.name)) {
            for shard in 0..issuer.shards {
                let path = crl_path(&issuer.name, shard);
                if let Some(doc) = self.get(&path) {
                    out.push(CrlFile {
                        issuer_key: issuer.key.to_hex(),
                        path: path.trim_start_matches('/').to_string(),
                        der: doc.der.to_vec(),
                    });
                }
            }
        }
        out
    }

    /// Every shard's state.
    pub fn status(&self) -> Result<Vec<ShardStatus>, StoreError> {
        let dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        for issuer in self.issuers() {
            let stored: HashMap<u32, StoredCrl> =
                self.store.crls(&issuer.key)?.into_iter().map(|c| (c.shard, c)).collect();
            for shard in 0..issuer.shards {
                let crl = stored.get(&shard);
                out.push(ShardStatus {
                    issuer: issuer.name.clone(),
                    shard,
                    url: self.url(&issuer.name, shard),
                    number: crl.map_or(0, |c| c.number),
                    entries: crl.map_or(0, |c| c.entries),
                    this_update: crl.map_or(0, |c| c.this_update),
                    next_update: crl.map_or(0, |c| c.next_update),
                    bytes: crl.map_or(0, |c| c.der.len() as u64),
                    dirty: dirty.contains_key(&(issuer.key, shard)),
                });
            }
        }
        Ok(out)
    }

    /// Starts the regeneration as the consumer `crl` of `runtime`: it reads this node's feed
    /// from the role's cursor (the signer lease in a fleet), marks the shards each change makes
    /// stale, signs them within the bound, and moves the cursor only once nothing read is
    /// left unsigned.
    pub fn spawn_on(self: &Arc<Self>, runtime: &Runtime) -> std::io::Result<()> {
        let role = self.fleet.get().map(|(_, gate)| gate.clone());
        let cursor: Arc<dyn Cursor> = Arc::new(TrimmingCursor {
            inner: self.cursor.read().unwrap_or_else(|p| p.into_inner()).clone(),
            store: self.store.clone(),
        });
        let mut spec = Spec::new(CURSOR, Kind::Role);
        spec.batch = 4096;
        spec.retry = Retry { first: Duration::from_millis(500), max: Duration::from_secs(2) };
        spec.idle = Duration::from_millis(250);
        spec.standby = Duration::from_millis(500);
        let consumer = Arc::new(Regenerator {
            publisher: Arc::downgrade(self),
            housekeeping: Mutex::new(Housekeeping {
                last_refresh: Instant::now(),
                keys_failing: false,
                last_local_trim: Instant::now(),
            }),
            owed: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
        });
        let feed: Arc<dyn ocsp_domain::ChangeFeed> = self.store.clone();
        let runner = Runner::new(spec, Arc::new(FeedSource(feed)), cursor, role, consumer, Arc::new(RealTime));
        runtime.spawn(Box::new(runner)).map(|_| ())
    }

    /// Issuer changes arrive through the feed (the `Follower` sets a flag; keys load here, not
    /// on the followers' thread); besides, a CRL key that could not sign is tried again every
    /// few seconds (a file restored, a token back), and all of them now and then.
    fn housekeeping(&self, state: &mut Housekeeping) {
        let retry = if state.keys_failing { KEY_RETRY_FAILING } else { KEY_RETRY };
        if self.issuers_changed.swap(false, Ordering::SeqCst) || state.last_refresh.elapsed() >= retry {
            state.keys_failing = !self.refresh_issuers().is_empty();
            self.serve_stored();
            state.last_refresh = Instant::now();
        }
    }

    fn mark(&self, key: IssuerKey, shard: u32, at: Instant) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        let e = dirty.entry((key, shard)).or_insert((at, at));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
    }

    /// Marks every shard of `issuers` due now.
    fn mark_all(&self, issuers: &[CrlIssuer]) {
        let past = Instant::now().checked_sub(self.config.within).unwrap_or_else(Instant::now);
        for issuer in issuers {
            for shard in 0..issuer.shards {
                self.mark(issuer.key, shard, past);
            }
        }
    }

    /// Marks the shards a change makes stale.
    fn note(&self, issuers: &[CrlIssuer], change: &ocsp_records::Change, now: Instant) {
        let Some(issuer) = issuers.iter().find(|i| i.key == change.issuer) else { return };
        match change.kind {
            ChangeKind::Status => {
                for s in &change.serials {
                    self.mark(issuer.key, ocsp_proto::shard_of(s.as_bytes(), issuer.shards), now);
                }
            }
            ChangeKind::Signer => {
                for shard in 0..issuer.shards {
                    self.mark(issuer.key, shard, now);
                }
            }
            // A shard signed here or, in fleet mode, by the signing node: serve what is stored.
            ChangeKind::Crl => {
                if let Some(shard) = change.crl_shard().filter(|s| *s < issuer.shards) {
                    match self.store.crl(&issuer.key, shard) {
                        Ok(Some(crl)) => self.serve(issuer, &crl),
                        Ok(None) => {}
                        Err(e) => tracing::error!(issuer = %issuer.name, shard, error = %e, "cannot read a stored CRL"),
                    }
                }
            }
            ChangeKind::Recorded | ChangeKind::Signed | ChangeKind::Issuer => {}
        }
    }

    /// Marks every shard that is missing or past half its validity.
    fn mark_due(&self, issuers: &[CrlIssuer]) {
        let now = self.clock.now();
        let past = Instant::now().checked_sub(self.config.within).unwrap_or_else(Instant::now);
        for issuer in issuers {
            for shard in 0..issuer.shards {
                let due = self
                    .get(&crl_path(&issuer.name, shard))
                    .is_none_or(|c| now >= c.this_update + (c.next_update - c.this_update) / 2);
                if due {
                    self.mark(issuer.key, shard, past);
                }
            }
        }
    }

    /// Signs again every dirty shard whose burst is over (no change for `coalesce`) or that
    /// has waited half the bound, one database scan per issuer.
    /// False if one failed (it stays dirty).
    fn regenerate_due(&self, issuers: &[CrlIssuer]) -> bool {
        let due: Vec<(IssuerKey, u32)> = {
            let dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            let (quiet, longest) = (self.config.coalesce, self.config.within / 2);
            dirty
                .iter()
                .filter(|(_, (first, last))| last.elapsed() >= quiet || first.elapsed() >= longest)
                .map(|(k, _)| *k)
                .collect()
        };
        let mut ok = true;
        for issuer in issuers {
            let shards: Vec<u32> = due.iter().filter(|(k, _)| *k == issuer.key).map(|(_, s)| *s).collect();
            if shards.is_empty() {
                continue;
            }
            let started = Instant::now();
            // Clear first: a change arriving during the build marks the shard again.
            {
                let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
                for s in &shards {
                    dirty.remove(&(issuer.key, *s));
                }
            }
            match self.regenerate(issuer, &shards) {
                Ok(()) => {
                    self.counters.regenerations.fetch_add(shards.len() as u64, Ordering::Relaxed);
                    self.counters.last_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    ok = false;
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(issuer = %issuer.name, error = %e, "CRL regeneration failed; retrying");
                    let now = Instant::now();
                    for s in shards {
                        self.mark(issuer.key, s, now);
                    }
                }
            }
        }
        ok
    }

    /// Builds, signs and stores the CRLs of `shards` of `issuer`.
    fn regenerate(&self, issuer: &CrlIssuer, shards: &[u32]) -> Result<(), CrlError> {
        let now = self.clock.now();
        let revoked = self.store.revoked(&issuer.key)?;
        let previous: HashMap<u32, StoredCrl> =
            self.store.crls(&issuer.key)?.into_iter().map(|c| (c.shard, c)).collect();
        let mut entries: HashMap<u32, Vec<CrlEntry>> = shards.iter().map(|s| (*s, Vec::new())).collect();
        for (serial, record) in revoked {
            let shard = ocsp_proto::shard_of(serial.as_bytes(), issuer.shards);
            let Some(list) = entries.get_mut(&shard) else { continue };
            // Kept until the first CRL after the certificate expired.
            if previous.get(&shard).is_some_and(|p| record.not_after < p.this_update) && record.not_after > 0 {
                continue;
            }
            if let State::Revoked { time, reason } = record.state {
                list.push(CrlEntry { serial: serial.as_bytes().to_vec(), revoked_at: time, reason });
            }
        }
        let alg = issuer.signer.algorithm();
        let aki = issuer
            .cert
            .subject_key_id
            .clone()
            .unwrap_or_else(|| ocsp_proto::HashAlg::Sha1.digest(&issuer.cert.public_key));
        for shard in shards {
            let list = entries.remove(shard).unwrap_or_default();
            let prev_number = previous.get(shard).map_or(0, |p| p.number);
            let builder = CrlBuilder {
                issuer_name: issuer.cert.subject.clone(),
                authority_key_id: aki.clone(),
                number: (prev_number + 1).max(now as u64),
                this_update: now,
                next_update: now + issuer.validity,
                url: self.url(&issuer.name, *shard),
                scope: issuer.scope,
            };
            let tbs = builder.tbs(alg, &list);
            let signature = issuer
                .signer
                .sign(&tbs)
                .map_err(|e| CrlError::Sign { issuer: issuer.name.clone(), reason: e.to_string() })?;
            let crl = StoredCrl {
                shard: *shard,
                number: builder.number,
                this_update: now,
                next_update: builder.next_update,
                entries: list.len() as u64,
                der: CrlBuilder::assemble(&tbs, alg, &signature),
            };
            ocsp_domain::failpoint::hit("crl.after_sign");
            let written = match self.fleet.get() {
                Some((sink, _)) => sink.put_crl(&issuer.key, &crl, now)?,
                None => self.store.put_crl(&issuer.key, &crl, now)?,
            };
            match written {
                CrlWrite::Stored { .. } => self.serve(issuer, &crl),
                CrlWrite::Stale { current } => {
                    // Another signer's build won (a number from a clock ahead of ours): it may
                    // predate changes this one held, so the shard is built again.
                    tracing::warn!(issuer = %issuer.name, shard, current, "a CRL with a higher number is stored; signing the shard again");
                    self.mark(issuer.key, *shard, Instant::now());
                }
            }
            tracing::info!(issuer = %issuer.name, shard, number = crl.number, entries = crl.entries, bytes = crl.der.len(), "CRL signed");
        }
        Ok(())
    }

    /// Prometheus text: per shard age, size and number; regenerations and their time.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let now = self.clock.now();
        let mut s = String::new();
        let _ = writeln!(s, "# HELP ocspd_crl_age_seconds Seconds since the served CRL's thisUpdate.\n# TYPE ocspd_crl_age_seconds gauge");
        let shards = self.status().unwrap_or_default();
        for st in &shards {
            let _ = writeln!(
                s,
                "ocspd_crl_age_seconds{{issuer=\"{}\",shard=\"{}\"}} {}",
                st.issuer,
                st.shard,
                now - st.this_update
            );
        }
        let _ = writeln!(s, "# HELP ocspd_crl_bytes Size of the served CRL.\n# TYPE ocspd_crl_bytes gauge");
        for st in &shards {
            let _ = writeln!(s, "ocspd_crl_bytes{{issuer=\"{}\",shard=\"{}\"}} {}", st.issuer, st.shard, st.bytes);
        }
        let c = &self.counters;
        let _ = writeln!(
            s,
            "# HELP ocspd_crl_regenerations_total CRL shards signed.\n# TYPE ocspd_crl_regenerations_total counter\nocspd_crl_regenerations_total {}\n# HELP ocspd_crl_failures_total Failed CRL regenerations.\n# TYPE ocspd_crl_failures_total counter\nocspd_crl_failures_total {}\n# HELP ocspd_crl_last_regeneration_seconds Time the last regeneration took.\n# TYPE ocspd_crl_last_regeneration_seconds gauge\nocspd_crl_last_regeneration_seconds {}",
            c.regenerations.load(Ordering::Relaxed),
            c.failures.load(Ordering::Relaxed),
            c.last_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            s,
            "# HELP ocspd_crl_signing_stopped Issuers whose CRL key cannot sign now (their stored CRLs are served until they expire).\n# TYPE ocspd_crl_signing_stopped gauge"
        );
        for (issuer, _) in self.key_problems() {
            let _ = writeln!(s, "ocspd_crl_signing_stopped{{issuer=\"{}\"}} 1", issuer.replace(['"', '\\', '\n'], "_"));
        }
        s
    }
}

/// What the regeneration does now and then besides following the feed.
struct Housekeeping {
    last_refresh: Instant,
    keys_failing: bool,
    last_local_trim: Instant,
}

/// CRL regeneration as a consumer of the feed-consumer runtime.
struct Regenerator {
    publisher: std::sync::Weak<Publisher>,
    housekeeping: Mutex<Housekeeping>,
    /// Changes were read (or everything marked) and not yet all signed.
    owed: AtomicBool,
    /// Changes were read for an issuer that signs nothing now.
    blocked: AtomicBool,
}

impl Regenerator {
    fn publisher(&self) -> Result<Arc<Publisher>, String> {
        self.publisher.upgrade().ok_or_else(|| "the CRL publisher is gone".to_string())
    }
}

impl Consumer<ocsp_records::Change> for Regenerator {
    fn apply(&self, changes: &[ocsp_records::Change]) -> Result<Applied, String> {
        let p = self.publisher()?;
        p.housekeeping(&mut self.housekeeping.lock().unwrap_or_else(|e| e.into_inner()));
        let issuers = p.issuers();
        let now = Instant::now();
        for c in changes {
            p.note(&issuers, c, now);
        }
        if !changes.is_empty() {
            self.owed.store(true, Ordering::SeqCst);
        }
        // A change for an issuer whose CRL key signs nothing now is not done: the cursor stays
        // before it (across restarts too) until the issuer signs again (every shard is then
        // signed again) or its key is unset.
        let blocked = changes
            .iter()
            .any(|c| matches!(c.kind, ChangeKind::Status | ChangeKind::Signer) && p.not_signing(&c.issuer));
        if blocked {
            self.blocked.store(true, Ordering::SeqCst);
        }
        p.mark_due(&issuers);
        if !p.regenerate_due(&issuers) {
            return Ok(Applied::Failed);
        }
        if !p.dirty.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return Ok(Applied::Pending);
        }
        if self.blocked.load(Ordering::SeqCst) {
            if !p.not_signing.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                return Ok(Applied::Pending);
            }
            self.blocked.store(false, Ordering::SeqCst);
        }
        if self.owed.swap(false, Ordering::SeqCst) {
            ocsp_domain::failpoint::hit("crl.after_store");
        }
        Ok(Applied::Done)
    }

    fn resync(&self, head: u64) -> Result<u64, String> {
        // Nobody recorded what was signed, or the changes from the cursor on are no longer
        // here (this replica trimmed them before it took the role): sign every shard again.
        let p = self.publisher()?;
        tracing::info!(from = head, "signing every CRL shard again from what is stored");
        p.mark_all(&p.issuers());
        self.owed.store(true, Ordering::SeqCst);
        Ok(head)
    }

    fn standby(&self, _shared: Option<u64>) {
        // Another node signs; its shards arrive through the feed (`Follower`). This node's own
        // consumer cursor only keeps its replica's feed from growing.
        let Ok(p) = self.publisher() else { return };
        let mut state = self.housekeeping.lock().unwrap_or_else(|e| e.into_inner());
        p.housekeeping(&mut state);
        p.dirty.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.owed.store(false, Ordering::SeqCst);
        self.blocked.store(false, Ordering::SeqCst);
        if state.last_local_trim.elapsed() >= Duration::from_secs(5) {
            let _ = p.store.set_consumer_cursor(CURSOR, p.store.feed_head());
            state.last_local_trim = Instant::now();
        }
    }
}

/// The role's cursor, and this node's own consumer cursor with it (what keeps the replica's
/// feed from being trimmed past it).
struct TrimmingCursor {
    inner: Arc<dyn ocsp_domain::RoleCursor>,
    store: Arc<Store>,
}

impl Cursor for TrimmingCursor {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        self.inner.load()
    }

    fn commit(&self, next: u64) -> Result<bool, StoreError> {
        let held = self.inner.commit(next)?;
        if held {
            let _ = self.store.set_consumer_cursor(CURSOR, next);
        }
        Ok(held)
    }
}

/// Every node serves a shard as soon as its database holds it: the CRL change is applied with
/// the other in-process followers, before an acknowledgement or a purge counts this node as
/// having applied it (so an edge purged for the new shard never refetches the old one here).
impl ocsp_domain::Follower for Publisher {
    fn apply(&self, change: &ocsp_records::Change) {
        if matches!(change.kind, ChangeKind::Issuer | ChangeKind::Signer) {
            // An issuer registered, its CRL key set, promoted or retired: the publisher's
            // thread loads them again (within its 250 ms wake), not this one, which
            // acknowledgements wait for.
            self.issuers_changed.store(true, Ordering::SeqCst);
            return;
        }
        if change.kind != ChangeKind::Crl {
            return;
        }
        let Some(shard) = change.crl_shard() else { return };
        let issuers = self.issuers.read().unwrap_or_else(|p| p.into_inner());
        let Some(issuer) = issuers.iter().find(|i| i.key == change.issuer && shard < i.shards) else { return };
        match self.store.crl(&issuer.key, shard) {
            Ok(Some(crl)) => {
                let newer = self.get(&crl_path(&issuer.name, shard)).is_none_or(|d| d.this_update <= crl.this_update);
                if newer {
                    self.serve(issuer, &crl);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(issuer = %issuer.name, shard, error = %e, "cannot read a stored CRL"),
        }
    }

    fn reset(&self) {
        self.issuers_changed.store(true, Ordering::SeqCst);
    }
}

impl CrlDocs for Publisher {
    fn get(&self, path: &str) -> Option<Arc<CrlDoc>> {
        self.served.read().unwrap_or_else(|p| p.into_inner()).get(path).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ocsp_proto::clock::FixedClock;
    use ocsp_proto::{RevocationReason, Serial};
    use ocsp_records::{AuditEntry, IssuerRecord};

    const T0: i64 = 1_900_000_000;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        clock: Arc<FixedClock>,
        publisher: Arc<Publisher>,
        issuer: CrlIssuer,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let root = ocsp_testpki::Issued::root("root", ocsp_testpki::KeyAlg::P256).unwrap();
        let int = root.intermediate("int", 7, ocsp_testpki::KeyAlg::P256).unwrap();
        int.write(dir.path(), "int", true).unwrap();
        let key_ref = format!("file:{}", dir.path().join("int.key").display());
        let cert = CertInfo::from_der(&int.der).unwrap();
        let key = ocsp_proto::IssuerHashes::of(&cert).key();
        let record = IssuerRecord {
            name: "int".into(),
            cert_der: int.der.clone(),
            responder_cert_der: None,
            responder_key: key_ref.clone(),
            backup_responder_cert_der: None,
            backup_responder_key: None,
            added_at: T0,
            retired_at: None,
            crl_key: Some(key_ref),
            crl_shards: Some(1),
        };
        store.put_issuer(&key, &record, AuditEntry::new(T0, "test", "issuer.add")).unwrap();
        let clock = Arc::new(FixedClock::new(T0));
        let config = CrlConfig { base_url: "http://crl.test".into(), ..CrlConfig::default() };
        let publisher = Publisher::new(store.clone(), clock.clone(), config).unwrap();
        let issuer = publisher.issuers().pop().unwrap();
        Fixture { _dir: dir, store, clock, publisher, issuer }
    }

    fn listed(f: &Fixture) -> Vec<Vec<u8>> {
        use der::Decode;
        let doc = f.publisher.get(&crl_path("int", 0)).unwrap();
        let crl = x509_cert::crl::CertificateList::from_der(&doc.der).unwrap();
        crl.tbs_cert_list.revoked_certificates.iter().flatten().map(|e| e.serial_number.as_bytes().to_vec()).collect()
    }

    #[test]
    fn an_entry_stays_until_the_first_crl_after_its_certificate_expired() {
        let f = fixture();
        let (short, long) = (Serial::from_hex("51").unwrap(), Serial::from_hex("52").unwrap());
        let audit = || AuditEntry::new(T0, "test", "cert.add");
        f.store
            .record_issued(&f.issuer.key, &[(short.clone(), T0 + 100), (long.clone(), T0 + 100_000)], T0, audit())
            .unwrap();
        for s in [&short, &long] {
            f.store.revoke(&f.issuer.key, s, T0, RevocationReason::KeyCompromise, T0, audit()).unwrap();
        }
        f.publisher.regenerate(&f.issuer, &[0]).unwrap();
        assert_eq!(listed(&f).len(), 2);
        // The first CRL after `short` expired still lists it...
        f.clock.advance(200);
        f.publisher.regenerate(&f.issuer, &[0]).unwrap();
        assert_eq!(listed(&f), vec![short.as_bytes().to_vec(), long.as_bytes().to_vec()]);
        // ...the next one does not; `long` stays.
        f.clock.advance(200);
        f.publisher.regenerate(&f.issuer, &[0]).unwrap();
        assert_eq!(listed(&f), vec![long.as_bytes().to_vec()]);
    }

    #[test]
    fn a_shard_is_due_at_half_its_validity_and_numbers_only_go_up() {
        let f = fixture();
        let issuers = f.publisher.issuers();
        f.publisher.mark_due(&issuers);
        assert_eq!(f.publisher.dirty.lock().unwrap().len(), 1, "a shard never signed is due");
        f.publisher.dirty.lock().unwrap().clear();
        f.publisher.regenerate(&f.issuer, &[0]).unwrap();
        let first = f.store.crl(&f.issuer.key, 0).unwrap().unwrap();
        assert_eq!(first.next_update - first.this_update, CrlConfig::default().validity);
        f.clock.advance(first.next_update - first.this_update - 1 - (first.next_update - first.this_update) / 2);
        f.publisher.mark_due(&issuers);
        assert!(f.publisher.dirty.lock().unwrap().is_empty(), "not due before half its validity");
        f.clock.advance(1);
        f.publisher.mark_due(&issuers);
        assert_eq!(f.publisher.dirty.lock().unwrap().len(), 1, "due at half its validity");
        f.publisher.regenerate(&f.issuer, &[0]).unwrap();
        let second = f.store.crl(&f.issuer.key, 0).unwrap().unwrap();
        assert!(second.number > first.number);
        // A number not above the stored one is refused, whoever tries.
        let stale = StoredCrl { number: first.number, ..second.clone() };
        assert_eq!(f.store.put_crl(&f.issuer.key, &stale, T0).unwrap(), CrlWrite::Stale { current: second.number });
    }
}
