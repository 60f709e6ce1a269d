//! The operations against a real RocksDB in a temporary folder and a generated PKI.

#![allow(clippy::unwrap_used, missing_docs)]

use ocsp_domain::api::*;
use ocsp_domain::*;
use ocsp_proto::clock::FixedClock;
use ocsp_proto::Policies;
use ocsp_proto::{IssuerPolicy, ReasonProfile};
use ocsp_sign::IssuerRegistry;
use ocsp_store::Store;
use ocsp_testpki::{Issued, KeyAlg, ResponderOptions};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    domain: Domain,
    root: Issued,
    int: Issued,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn fixture(policies: Policies) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let root = Issued::root("root", KeyAlg::P256).unwrap();
    let int = root.intermediate("int", 7, KeyAlg::P256).unwrap();
    let responder = int.responder("responder", &ResponderOptions::default()).unwrap();
    let spare = int.responder("spare", &ResponderOptions::default()).unwrap();
    for (issued, name) in [(&root, "root"), (&int, "int"), (&responder, "responder"), (&spare, "spare")] {
        issued.write(dir.path(), name, true).unwrap();
    }
    let domain = Domain::new(
        store.clone(),
        Arc::new(IssuerRegistry::default()),
        Arc::new(FixedClock::new(now())),
        Arc::new(policies),
        Ports::default(),
    );
    let f = Fixture { dir, store, domain, root, int };
    f.domain.add_issuer(f.add_int("int"), "alice").unwrap();
    f
}

impl Fixture {
    /// Provisions the spare responder as the intermediate's backup identity.
    fn provision_spare(&self) {
        let backup = SetBackup {
            responder_cert_pem: Some(self.pem("spare.pem")),
            key: format!("file:{}", self.path("spare.key")),
            why: None,
        };
        self.domain.set_backup("int", backup, "alice").unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn add_int(&self, name: &str) -> AddIssuer {
        AddIssuer {
            name: name.into(),
            cert_pem: self.int.pem.clone(),
            responder_cert_pem: Some(self.pem("responder.pem")),
            key: format!("file:{}", self.path("responder.key")),
            backup_responder_cert_pem: None,
            backup_key: None,
            why: None,
        }
    }

    fn record(&self, serials: &[&str]) {
        let certs = serials.iter().map(|s| CertSpec { serial: Some(s.to_string()), ..Default::default() }).collect();
        self.domain.add_certs(AddCerts { issuer: Some("int".into()), certs, why: None }, "alice").unwrap();
    }

    fn revoke(&self, serial: &str, reason: &str) -> Result<StatusView, DomainError> {
        self.domain.revoke(
            Revoke { issuer: "int".into(), serial: serial.into(), reason: reason.into(), time: None, why: None },
            "alice",
        )
    }
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, DomainError>, says: &str) {
    match r {
        Err(DomainError::Invalid(m)) => assert!(m.contains(says), "{m:?} does not say {says:?}"),
        other => panic!("expected Invalid({says:?}), got {other:?}"),
    }
}

#[test]
fn registration_checks_the_name_the_key_reference_and_duplicates() {
    let f = fixture(Policies::default());
    assert!(f.domain.registry().by_name("int").is_some());
    let mut bad = f.add_int("no spaces allowed");
    is_invalid(f.domain.add_issuer(bad.clone(), "alice"), "must be 1 to 64");
    bad.name = "int2".into();
    bad.key = "responder.key".into();
    is_invalid(f.domain.add_issuer(bad, "alice"), "file:<absolute path>");
    assert!(matches!(f.domain.add_issuer(f.add_int("int"), "alice"), Err(DomainError::Conflict(_))));
    // The same subject and key under another name would share every CertID.
    assert!(
        matches!(f.domain.add_issuer(f.add_int("int-again"), "alice"), Err(DomainError::Conflict(m)) if m.contains("cannot be told apart"))
    );
    let listed = f.domain.list_issuers().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].reason_profile.as_str(), listed[0].nonce_policy.as_str()), ("tls-br", "ignore"));
}

#[test]
fn revocations_follow_the_rules_of_finality_and_time() {
    let f = fixture(Policies::default());
    f.record(&["0a", "0b"]);
    assert_eq!(f.revoke("0a", "superseded").unwrap().outcome.as_deref(), Some("revoked"));
    assert_eq!(f.revoke("0a", "superseded").unwrap().outcome.as_deref(), Some("already revoked"));
    assert!(matches!(f.revoke("0a", "cessationOfOperation"), Err(DomainError::Conflict(m)) if m.contains("final")));
    assert_eq!(f.revoke("0a", "keyCompromise").unwrap().outcome.as_deref(), Some("changed"));
    assert!(matches!(f.revoke("0c", "keyCompromise"), Err(DomainError::NotFound(m)) if m.contains("never recorded")));
    let dated = |time: i64, reason: &str| {
        f.domain.revoke(
            Revoke { issuer: "int".into(), serial: "0b".into(), reason: reason.into(), time: Some(time), why: None },
            "alice",
        )
    };
    is_invalid(dated(now() + 3600, "keyCompromise"), "in the future");
    is_invalid(dated(now() - 86_400, "superseded"), "only keyCompromise may be dated back");
    assert_eq!(dated(now() - 86_400, "keyCompromise").unwrap().status, "revoked");
    assert!(matches!(
        f.domain.revoke(
            Revoke {
                issuer: "nope".into(),
                serial: "0b".into(),
                reason: "keyCompromise".into(),
                time: None,
                why: None
            },
            "alice"
        ),
        Err(DomainError::NotFound(_))
    ));
}

#[test]
fn the_reason_profile_decides_holds_and_ca_reasons() {
    let f = fixture(Policies::default());
    f.record(&["0a"]);
    is_invalid(f.revoke("0a", "certificateHold"), "BR 4.9.13");
    is_invalid(f.revoke("0a", "removeFromCRL"), "not a revocation reason");
    assert_eq!(f.domain.status("int", "0a").unwrap().status, "good", "nothing changed");
    // A CA certificate (the intermediate, recorded under the root) needs a reason.
    let root = AddIssuer {
        name: "root".into(),
        cert_pem: f.root.pem.clone(),
        responder_cert_pem: None,
        key: format!("file:{}", f.path("root.key")),
        backup_responder_cert_pem: None,
        backup_key: None,
        why: None,
    };
    f.domain.add_issuer(root, "alice").unwrap();
    let certs = vec![CertSpec { cert_pem: Some(f.int.pem.clone()), ..Default::default() }];
    f.domain.add_certs(AddCerts { issuer: None, certs, why: None }, "alice").unwrap();
    let revoke_int = |reason: &str| {
        f.domain.revoke(
            Revoke { issuer: "root".into(), serial: "07".into(), reason: reason.into(), time: None, why: None },
            "alice",
        )
    };
    is_invalid(revoke_int("unspecified"), "a CA certificate");
    assert_eq!(revoke_int("cACompromise").unwrap().reason.as_deref(), Some("cACompromise"));

    // Under the private profile, holds are taken and lifted.
    let mut private = Policies::default();
    private.by_issuer.insert("int".into(), IssuerPolicy { reasons: ReasonProfile::Private, ..Default::default() });
    let f = fixture(private);
    f.record(&["0a"]);
    assert_eq!(f.revoke("0a", "certificateHold").unwrap().reason.as_deref(), Some("certificateHold"));
    let lifted = f.domain.unhold(Unhold { issuer: "int".into(), serial: "0a".into(), why: None }, "alice").unwrap();
    assert_eq!(lifted.status, "good");
    let again = f.domain.unhold(Unhold { issuer: "int".into(), serial: "0a".into(), why: None }, "alice");
    assert!(matches!(again, Err(DomainError::Conflict(m)) if m.contains("not on hold")));
}

#[test]
fn bulk_revocation_summarises_refuses_oversized_calls_and_dry_runs_change_nothing() {
    let f = fixture(Policies::default());
    f.record(&["01", "02", "03"]);
    f.revoke("03", "superseded").unwrap();
    let bulk = |serials: Vec<String>, dry_run: bool| {
        f.domain.bulk_revoke(
            BulkRevoke {
                issuer: "int".into(),
                serials,
                reason: "cessationOfOperation".into(),
                time: None,
                dry_run,
                why: None,
            },
            "alice",
        )
    };
    let serials: Vec<String> = ["01", "02", "03", "04"].iter().map(|s| s.to_string()).collect();
    let dry = bulk(serials.clone(), true).unwrap();
    assert_eq!((dry.revoked, dry.refused.len(), dry.unknown_serial.len()), (2, 1, 1));
    assert_eq!(f.domain.status("int", "01").unwrap().status, "good", "a dry run writes nothing");
    let done = bulk(serials, false).unwrap();
    assert_eq!(
        (done.revoked, done.refused.clone(), done.unknown_serial.clone()),
        (2, vec!["03".to_string()], vec!["04".to_string()])
    );
    assert_eq!(f.domain.status("int", "02").unwrap().status, "revoked");
    is_invalid(bulk(vec!["01".into(); MAX_BULK + 1], false), "at most");
    is_invalid(bulk(vec!["zz".into()], false), "nothing was revoked");
}

#[test]
fn imports_refused_by_the_profile_record_nothing() {
    let f = fixture(Policies::default());
    let spec = |serial: &str, reason: &str| CertSpec {
        serial: Some(serial.into()),
        revocation: Some(ImportedRevocation { time: now() - 86_400, reason: reason.into() }),
        ..Default::default()
    };
    let certs = vec![spec("11", "keyCompromise"), spec("12", "certificateHold"), spec("13", "aACompromise")];
    let refused = f.domain.add_certs(AddCerts { issuer: Some("int".into()), certs, why: None }, "alice");
    match refused {
        Err(DomainError::Invalid(m)) => {
            assert!(m.contains("certificate 2 (serial 12") && m.contains("certificate 3 (serial 13"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.domain.status("int", "11").unwrap().status, "unknown", "nothing was recorded");
    let certs = vec![spec("11", "keyCompromise"), spec("14", "unspecified")];
    let added = f.domain.add_certs(AddCerts { issuer: Some("int".into()), certs, why: None }, "alice").unwrap();
    assert_eq!((added.added, added.revoked), (2, 2));
}

#[test]
fn retirement_stops_answering_and_is_final() {
    let f = fixture(Policies::default());
    let view = f.domain.retire_issuer("int", Retire { why: Some("rotated".into()) }, "alice").unwrap();
    assert!(view.retired.is_some());
    assert!(f.domain.registry().by_name("int").is_none());
    assert!(matches!(f.domain.retire_issuer("int", Retire { why: None }, "alice"), Err(DomainError::Conflict(_))));
    // Its record stays, shown as retired.
    assert!(f.domain.list_issuers().unwrap()[0].retired.is_some());
}

#[test]
fn a_crl_key_must_be_the_issuers_own_and_its_shard_count_never_changes() {
    let f = fixture(Policies::default());
    let key = |name: &str, shards: Option<u32>| SetCrlKey { key: format!("file:{}", f.path(name)), shards, why: None };
    // The delegated responder's key is not the issuer's.
    assert!(matches!(
        f.domain.set_crl_key("int", key("responder.key", None), 2, "alice"),
        Err(DomainError::Invalid(_))
    ));
    is_invalid(f.domain.set_crl_key("int", key("int.key", Some(0)), 2, "alice"), "from 1 to 4096");
    is_invalid(f.domain.set_crl_key("int", key("int.key", Some(5000)), 2, "alice"), "from 1 to 4096");
    assert_eq!(f.store.issuers().unwrap()[0].crl_key, None, "a refused call changes nothing");
    // Without a count the responder's default is stored, and then kept.
    let view = f.domain.set_crl_key("int", key("int.key", None), 2, "alice").unwrap();
    assert_eq!(view.crl_shards, Some(2));
    is_invalid(f.domain.set_crl_key("int", key("int.key", Some(8)), 2, "alice"), "has 2 shards");
    let again = f.domain.set_crl_key("int", key("int.key", None), 16, "alice").unwrap();
    assert_eq!(again.crl_shards, Some(2), "a new default does not move certificates to other shards");
    assert_eq!(f.domain.set_crl_key("int", key("int.key", Some(2)), 16, "alice").unwrap().crl_shards, Some(2));
}

#[test]
fn promotion_needs_a_backup_and_then_the_backup_signs() {
    let f = fixture(Policies::default());
    let none = f.domain.promote("int", Promote { why: None }, "alice");
    assert!(matches!(none, Err(DomainError::Conflict(m)) if m.contains("no backup")));
    let before = f.domain.registry().by_name("int").unwrap().identity.key_hash().to_vec();
    f.provision_spare();
    let promoted = f.domain.promote("int", Promote { why: Some("drill".into()) }, "alice").unwrap();
    assert!(promoted.previous_responder.contains("responder"));
    let after = f.domain.registry().by_name("int").unwrap().identity.key_hash().to_vec();
    assert_ne!(before, after, "the spare key signs now");
    let shown = f.domain.show_issuer("int").unwrap();
    assert!(shown.key.ends_with("spare.key") && shown.backup_key.is_none(), "{shown:?}");
}

#[test]
fn the_audit_record_names_who_did_what_and_pages() {
    let f = fixture(Policies::default());
    f.record(&["0a"]);
    f.revoke("0a", "keyCompromise").unwrap();
    let entries = f.domain.audit(AuditQuery { serial: Some("0A".into()), ..Default::default() }).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["revoke", "cert.add"]);
    assert!(entries.iter().all(|e| e.admin == "alice"));
    is_invalid(f.domain.audit(AuditQuery { limit: Some(0), ..Default::default() }), "limit must be 1 to");
    let first = f.domain.audit(AuditQuery { limit: Some(1), ..Default::default() }).unwrap();
    let next = f.domain.audit(AuditQuery { limit: Some(1), before: Some(first[0].seq), ..Default::default() }).unwrap();
    assert!(next[0].seq < first[0].seq);
}

#[test]
fn a_busy_or_failing_database_is_unavailable_not_internal() {
    assert!(matches!(DomainError::from(ocsp_store::StoreError::Busy("stall".into())), DomainError::Unavailable(_)));
    assert!(matches!(
        DomainError::from(ocsp_store::StoreError::Io("No space left".into())),
        DomainError::Unavailable(_)
    ));
    assert!(matches!(DomainError::from(ocsp_store::StoreError::Corrupt("x".into())), DomainError::Internal(_)));
}

/// Records what a revocation waits for.
#[derive(Default)]
struct Waits(std::sync::Mutex<Vec<u64>>);

impl PurgeWaiter for Waits {
    fn wait_delivered(&self, next: u64, _within: Duration) -> Vec<String> {
        self.0.lock().unwrap().push(next);
        Vec::new()
    }
}

#[test]
fn a_revocation_waits_for_its_own_purge_event_only() {
    let f = fixture(Policies::default());
    let waits = Arc::new(Waits::default());
    let store = f.store.clone();
    let registry = f.domain.registry().clone();
    let ports = Ports { purges: Some(waits.clone()), purge_wait: Duration::from_secs(1), ..Default::default() };
    let domain =
        Domain::new(store.clone(), registry, Arc::new(FixedClock::new(now())), Arc::new(Policies::default()), ports);
    let f = Fixture { domain, ..f };
    f.record(&["0a", "0b", "0c"]);
    // Events queued by others before ours do not matter; ours is what is waited for.
    f.domain
        .bulk_revoke(
            BulkRevoke {
                issuer: "int".into(),
                serials: vec!["0b".into(), "0c".into()],
                reason: "superseded".into(),
                time: None,
                dry_run: false,
                why: None,
            },
            "bob",
        )
        .unwrap();
    f.revoke("0a", "keyCompromise").unwrap();
    let events = store.changes(0, 10).unwrap();
    let event_of = |serial: &str| {
        events.iter().find(|e| e.needs_purge() && e.serials.iter().any(|s| s.to_string() == serial)).unwrap().seq
    };
    // Each waits for its own event: the bulk batch (its edges must drop what they cached
    // before it is acknowledged), then the single revocation.
    assert_eq!(*waits.0.lock().unwrap(), vec![event_of("0B") + 1, event_of("0A") + 1]);
    // Nothing changed, nothing queued: nothing to wait for.
    f.revoke("0a", "keyCompromise").unwrap();
    assert_eq!(waits.0.lock().unwrap().len(), 2);
}

/// A follower that writes down what it was told.
#[derive(Default)]
struct Seen {
    applied: std::sync::Mutex<Vec<(ocsp_store::ChangeKind, Vec<String>)>>,
    resets: std::sync::atomic::AtomicUsize,
}

impl Follower for Seen {
    fn apply(&self, change: &ocsp_store::Change) {
        let serials = change.serials.iter().map(|s| s.to_string()).collect();
        self.applied.lock().unwrap().push((change.kind, serials));
    }

    fn reset(&self) {
        self.resets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Fixture {
    /// The same operations, with `followers` following the feed of `feed`.
    fn following(self, feed: Arc<dyn ChangeFeed>, followers: Vec<Arc<dyn Follower>>) -> Fixture {
        let followers = Followers::start(feed, followers).unwrap();
        let ports = Ports { followers: Some(followers), ..Default::default() };
        let domain = Domain::new(
            self.domain.store().clone(),
            self.domain.registry().clone(),
            Arc::new(FixedClock::new(now())),
            Arc::new(Policies::default()),
            ports,
        );
        Fixture { domain, ..self }
    }
}

#[test]
fn an_operation_returns_only_once_every_follower_applied_its_change() {
    use ocsp_store::ChangeKind::*;
    let f = fixture(Policies::default());
    let seen = Arc::new(Seen::default());
    let feed = f.store.clone();
    let f = f.following(feed, vec![seen.clone()]);
    let last = || seen.applied.lock().unwrap().last().cloned();
    // No sleeps: each call returns after the follower has the change.
    f.record(&["0a", "0b"]);
    assert_eq!(last(), Some((Recorded, vec!["0A".to_string(), "0B".to_string()])));
    f.revoke("0a", "keyCompromise").unwrap();
    assert_eq!(last(), Some((Status, vec!["0A".to_string()])));
    f.domain.retire_issuer("int", Retire { why: None }, "alice").unwrap();
    assert_eq!(last(), Some((Signer, vec![])));
    assert_eq!(seen.applied.lock().unwrap().len(), 3, "each change once, in order");
    assert_eq!(seen.resets.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A feed that loses the change asked for first.
struct Gappy(Arc<Store>);

impl ChangeFeed for Gappy {
    fn head(&self) -> u64 {
        self.0.feed_head()
    }
    fn changes(&self, from: u64, limit: usize) -> Result<Vec<ocsp_store::Change>, ocsp_store::StoreError> {
        self.0.changes(from + 1, limit)
    }
    fn wait_for_changes(&self, from: u64, timeout: Duration) -> u64 {
        self.0.wait_for_changes(from, timeout)
    }
    fn hold(&self, from: u64) {
        self.0.hold_feed(from)
    }
    fn cursor(&self, name: &str) -> Result<u64, ocsp_store::StoreError> {
        self.0.feed_cursor(name)
    }
    fn set_cursor(&self, name: &str, next: u64) -> Result<(), ocsp_store::StoreError> {
        self.0.set_feed_cursor(name, next)
    }
    fn trim(&self, before: u64) -> Result<(), ocsp_store::StoreError> {
        self.0.trim_feed(before)
    }
}

#[test]
fn followers_drop_everything_when_the_feed_has_a_gap() {
    let f = fixture(Policies::default());
    let seen = Arc::new(Seen::default());
    let feed = Arc::new(Gappy(f.store.clone()));
    let f = f.following(feed, vec![seen.clone()]);
    f.record(&["0a"]);
    assert_eq!(seen.resets.load(std::sync::atomic::Ordering::SeqCst), 1, "a missed change resets the follower");
    assert!(seen.applied.lock().unwrap().is_empty());
}

#[test]
fn a_reason_over_the_bound_changes_nothing_not_even_what_this_process_answers_with() {
    let f = fixture(Policies::default());
    let long = Some("w".repeat(MAX_WHY + 1));
    let before = f.domain.registry().by_name("int").unwrap().identity.key_hash().to_vec();
    f.provision_spare();
    // Promotion: refused, and the primary still signs here.
    let promoted = f.domain.promote("int", Promote { why: long.clone() }, "alice");
    assert!(matches!(promoted, Err(DomainError::Invalid(m)) if m.contains("reason")));
    let now = f.domain.registry().by_name("int").unwrap().identity.key_hash().to_vec();
    assert_eq!(before, now, "a refused promotion left the backup signing");
    assert!(f.domain.show_issuer("int").unwrap().backup_key.is_some());
    // Retirement: refused, and the issuer is still answered for.
    let retired = f.domain.retire_issuer("int", Retire { why: long }, "alice");
    assert!(matches!(retired, Err(DomainError::Invalid(_))));
    assert!(f.domain.registry().by_name("int").is_some(), "a refused retirement stopped the issuer");
    // A reason within the bound is taken.
    f.domain.retire_issuer("int", Retire { why: Some("w".repeat(MAX_WHY)) }, "alice").unwrap();
}
