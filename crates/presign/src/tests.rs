use crate::*;
use ocsp_proto::clock::FixedClock;
use ocsp_proto::{RevocationReason, Serial};
use ocsp_records::AuditEntry;
use ocsp_sign::{IssuerEntry, IssuerRegistry};
use ocsp_store::Store;
use ocsp_testpki::{Issued, KeyAlg};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    clock: Arc<FixedClock>,
    issuer: IssuerKey,
    registry: Arc<IssuerRegistry>,
    presigner: Arc<Presigner>,
    followers: Arc<ocsp_domain::Followers>,
}

impl Fixture {
    /// Waits until the pre-signer has applied every change written so far.
    fn settled(&self) {
        let head = self.store.feed_head();
        assert!(head == 0 || self.followers.wait_applied(head - 1, std::time::Duration::from_secs(10)));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn serial(n: u32) -> Serial {
    Serial::from_hex(&format!("{n:x}")).unwrap()
}

fn fixture(certs: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let root = Issued::root("r", KeyAlg::P256).unwrap();
    let int = root.intermediate("i", 2, KeyAlg::P256).unwrap();
    int.write(dir.path(), "int", true).unwrap();
    let key = format!("file:{}", dir.path().join("int.key").display());
    let entry = IssuerEntry::load("int", &int.der, None, &key, now()).unwrap();
    let issuer = entry.key;
    let registry = Arc::new(IssuerRegistry::default());
    registry.insert(entry);
    let clock = Arc::new(FixedClock::new(now()));
    let presigner =
        Presigner::new(store.clone(), registry.clone(), clock.clone(), Cadence::new(86_400, 3_600).unwrap(), 2);
    let followers = ocsp_domain::Followers::start(store.clone(), vec![presigner.clone()]).unwrap();
    let list: Vec<(Serial, i64)> = (1..=certs).map(|n| (serial(n), 0)).collect();
    store.record_issued(&issuer, &list, now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
    let f = Fixture { _dir: dir, store, clock, issuer, registry, presigner, followers };
    f.settled();
    f.presigner.queue().urgent.clear();
    f
}

fn stored_status(f: &Fixture, n: u32, alg: HashAlg) -> Option<rasn_status::Status> {
    let r = f.store.response(&f.issuer, &serial(n), alg).unwrap()?;
    Some(rasn_status::of(&r.der))
}

mod rasn_status {
    #[derive(Debug, PartialEq, Eq)]
    pub enum Status {
        Good,
        Revoked,
        Unknown,
    }

    /// The certStatus of the single response in a stored OCSPResponse (read with rasn-ocsp).
    pub fn of(der: &[u8]) -> Status {
        let (_, basic) = ocsp_proto::decode_response(der).unwrap();
        let basic = basic.unwrap();
        assert_eq!(basic.tbs_response_data.responses.len(), 1);
        match basic.tbs_response_data.responses[0].cert_status {
            rasn_ocsp::CertStatus::Good => Status::Good,
            rasn_ocsp::CertStatus::Revoked(_) => Status::Revoked,
            rasn_ocsp::CertStatus::Unknown(_) => Status::Unknown,
        }
    }
}

use rasn_status::Status;

#[test]
fn a_pass_signs_both_forms_once_and_refreshes_on_the_cadence() {
    let f = fixture(300);
    f.presigner.run_pass(None);
    assert_eq!(f.presigner.stats().signed, 600);
    assert_eq!(stored_status(&f, 7, HashAlg::Sha1), Some(Status::Good));
    assert_eq!(stored_status(&f, 7, HashAlg::Sha256), Some(Status::Good));
    let first = f.store.response(&f.issuer, &serial(7), HashAlg::Sha1).unwrap().unwrap();
    assert_eq!(first.next_update - first.this_update, 86_400);
    assert_eq!(f.clock.now() - first.this_update, 3_600, "thisUpdate is backdated an hour");

    f.presigner.run_pass(None);
    assert_eq!(f.presigner.stats().signed, 600, "nothing is due yet");

    // thisUpdate = now - 1 h, nextUpdate = now + 23 h; the refresh point is 8 h before
    // nextUpdate less the 1 h margin: now + 14 h. Just before it nothing is due; after, all is.
    f.clock.advance(14 * 3600 - 60);
    f.presigner.run_pass(None);
    assert_eq!(f.presigner.stats().signed, 600);
    f.clock.advance(120);
    f.presigner.run_pass(None);
    assert_eq!(f.presigner.stats().signed, 1200);
    let second = f.store.response(&f.issuer, &serial(7), HashAlg::Sha1).unwrap().unwrap();
    assert!(second.this_update > first.this_update);
    assert_eq!(f.presigner.stats().passes, 4);
}

#[test]
fn revocations_jump_the_queue() {
    let f = fixture(50);
    f.presigner.run_pass(None);
    f.store
        .revoke(
            &f.issuer,
            &serial(9),
            f.clock.now(),
            RevocationReason::KeyCompromise,
            f.clock.now(),
            AuditEntry::new(0, "t", "revoke"),
        )
        .unwrap();
    assert_eq!(stored_status(&f, 9, HashAlg::Sha1), None, "the good response is gone with the revocation");
    f.settled();
    assert_eq!(f.presigner.stats().urgent, 1);
    f.presigner.drain_urgent();
    assert_eq!(stored_status(&f, 9, HashAlg::Sha1), Some(Status::Revoked));
    assert_eq!(stored_status(&f, 9, HashAlg::Sha256), Some(Status::Revoked));
    assert_eq!(stored_status(&f, 10, HashAlg::Sha1), Some(Status::Good));
}

#[test]
fn revoking_during_a_refresh_pass_never_leaves_a_good_response() {
    let f = fixture(6_000);
    let presigner = f.presigner.clone();
    let pass = std::thread::spawn(move || presigner.run_pass(None));
    // Revoke while the pass signs.
    let mut revoked = Vec::new();
    for n in (1..=6_000).step_by(97) {
        f.store
            .revoke(
                &f.issuer,
                &serial(n),
                f.clock.now(),
                RevocationReason::Superseded,
                f.clock.now(),
                AuditEntry::new(0, "t", "revoke"),
            )
            .unwrap();
        revoked.push(n);
        for alg in HashAlg::ALL {
            // At no moment after the acknowledgement is a good response stored.
            assert_ne!(stored_status(&f, n, alg), Some(Status::Good), "serial {n} after its revocation");
        }
    }
    pass.join().unwrap();
    f.settled();
    while f.presigner.drain_urgent() > 0 {}
    for n in revoked {
        for alg in HashAlg::ALL {
            assert_eq!(stored_status(&f, n, alg), Some(Status::Revoked), "serial {n}");
        }
    }
}

/// A signer whose token has gone away: every signature fails.
#[derive(Debug)]
struct Broken(Arc<dyn ocsp_sign::Signer>);

impl ocsp_sign::Signer for Broken {
    fn algorithm(&self) -> ocsp_proto::SignatureAlgorithm {
        self.0.algorithm()
    }
    fn public_key(&self) -> &[u8] {
        self.0.public_key()
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, ocsp_sign::SignError> {
        Err(ocsp_sign::SignError::Unavailable(self.0.describe(), "token removed".into()))
    }
    fn describe(&self) -> String {
        "broken".into()
    }
}

#[test]
fn a_failing_signer_does_not_stop_the_pass() {
    let f = fixture(100);
    // A second issuer whose token is gone, with 50 certificates of its own.
    let dir = tempfile::tempdir().unwrap();
    let other = Issued::root("other", KeyAlg::P256).unwrap();
    other.write(dir.path(), "other", true).unwrap();
    let key = format!("file:{}", dir.path().join("other.key").display());
    let mut entry = IssuerEntry::load("other", &other.der, None, &key, now()).unwrap();
    let cert = ocsp_proto::x509::CertInfo::from_der(&other.der).unwrap();
    let broken: Arc<dyn ocsp_sign::Signer> = Arc::new(Broken(entry.identity.signer().clone()));
    entry.identity = ocsp_sign::ResponderIdentity::new(&cert, None, broken, now(), "broken").unwrap();
    let other_key = entry.key;
    f.registry.insert(entry);
    let list: Vec<(Serial, i64)> = (1..=50).map(|n| (serial(n), 0)).collect();
    f.store.record_issued(&other_key, &list, now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
    f.settled();
    // New certificates are queued as urgent; here only the pass is measured.
    f.presigner.queue().urgent.clear();

    f.presigner.run_pass(None);
    let s = f.presigner.stats();
    assert_eq!(s.passes, 1, "the pass completes");
    assert_eq!(s.errors, 100, "every failed signature is counted: {s:?}");
    assert_eq!(s.signed, 200, "the working issuer is fully signed: {s:?}");
    assert_eq!(stored_status(&f, 50, HashAlg::Sha256), Some(Status::Good));
    assert!(f.store.response(&other_key, &serial(1), HashAlg::Sha1).unwrap().is_none());
}

#[test]
fn a_burst_of_changes_waits_for_quiet_and_never_longer_than_the_bound() {
    let key = IssuerKey([7; 64]);
    let mut q = Queue::default();
    let now = Instant::now();
    let ago = |secs: u64| now.checked_sub(Duration::from_secs(secs)).unwrap();
    // A single revocation (or a small batch) is signed at once.
    q.urgent.extend((0..10).map(|n| (key, serial(n))));
    q.last_arrival = Some(now);
    q.waiting_since = Some(now);
    assert_eq!(q.burst_wait(), None);
    // A bulk revocation still arriving waits.
    q.urgent.extend((0..BURST as u32).map(|n| (key, serial(n))));
    let left = q.burst_wait().expect("a burst in progress waits");
    assert!(left <= BURST_QUIET && left > BURST_QUIET - Duration::from_secs(1), "{left:?}");
    // Quiet for BURST_QUIET: the burst is over.
    q.last_arrival = Some(ago(BURST_QUIET.as_secs() + 1));
    assert_eq!(q.burst_wait(), None);
    // Still arriving, but the oldest has waited BURST_WAIT: sign now.
    q.last_arrival = Some(now);
    q.waiting_since = Some(ago(BURST_WAIT.as_secs() + 1));
    assert_eq!(q.burst_wait(), None);
    // Close to the bound: waits only what is left of it.
    q.waiting_since = Some(ago(BURST_WAIT.as_secs() - 1));
    assert!(q.burst_wait().is_some_and(|d| d <= Duration::from_secs(1)));
}

#[test]
fn a_bulk_revocation_is_re_signed_once_its_batches_stop_arriving() {
    let f = fixture(BURST as u32 + 10);
    f.presigner.run_pass(None);
    let serials: Vec<Serial> = (1..=BURST as u32).map(serial).collect();
    let t = f.clock.now();
    f.store
        .revoke_many(
            &f.issuer,
            &serials,
            t,
            RevocationReason::KeyCompromise,
            t,
            false,
            AuditEntry::new(0, "t", "revoke"),
        )
        .unwrap();
    f.settled();
    // More batches may follow: nothing is re-signed yet (answers are signed live meanwhile).
    assert_eq!(f.presigner.drain_urgent(), 0);
    assert_eq!(stored_status(&f, 1, HashAlg::Sha1), None);
    assert_eq!(stored_status(&f, BURST as u32 + 1, HashAlg::Sha1), Some(Status::Good));
    // No batch for BURST_QUIET: all of them are re-signed.
    f.presigner.queue().last_arrival = Instant::now().checked_sub(BURST_QUIET + Duration::from_millis(10));
    while f.presigner.drain_urgent() > 0 {}
    for n in [1, BURST as u32 / 2, BURST as u32] {
        assert_eq!(stored_status(&f, n, HashAlg::Sha1), Some(Status::Revoked), "{n}");
        assert_eq!(stored_status(&f, n, HashAlg::Sha256), Some(Status::Revoked), "{n}");
    }
    assert_eq!(f.presigner.stats().urgent, 0);
}
