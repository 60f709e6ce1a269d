use crate::*;
use ocsp_proto::clock::FixedClock;
use ocsp_proto::{CertId, CertStatus, Clock, HashAlg, IssuerKey, OcspRequest, Serial};
use ocsp_records::{AuditEntry, StoredResponse};
use ocsp_sign::{IssuerEntry, IssuerRegistry, SignError, Signer};
use ocsp_store::Store;
use ocsp_testpki::{Issued, KeyAlg};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The real file signer, made slow, as an HSM under load is.
#[derive(Debug)]
struct Slow(Arc<dyn Signer>, Duration);

impl Signer for Slow {
    fn algorithm(&self) -> ocsp_proto::SignatureAlgorithm {
        self.0.algorithm()
    }
    fn public_key(&self) -> &[u8] {
        self.0.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        std::thread::sleep(self.1);
        self.0.sign(message)
    }
    fn describe(&self) -> String {
        format!("slow {}", self.0.describe())
    }
}

/// Counts the requests that reach the tier behind it.
struct Counting(Arc<dyn Source>, AtomicUsize);

impl Source for Counting {
    fn answer<'a>(&'a self, asked: &'a Asked) -> source::BoxFuture<'a, Result<Served, AnswerError>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.answer(asked)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    registry: Arc<IssuerRegistry>,
    clock: Arc<FixedClock>,
    issuer: IssuerKey,
    int: Issued,
}

fn fixture(slow: bool) -> Fixture {
    fixture_signing_in(slow.then_some(Duration::from_millis(200)))
}

fn fixture_signing_in(delay: Option<Duration>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let int = Issued::root("int", KeyAlg::P256).unwrap();
    int.write(dir.path(), "int", true).unwrap();
    let key = format!("file:{}", dir.path().join("int.key").display());
    let mut entry = IssuerEntry::load("int", &int.der, None, &key, now()).unwrap();
    if let Some(delay) = delay {
        let signer: Arc<dyn Signer> = Arc::new(Slow(entry.identity.signer().clone(), delay));
        let cert = ocsp_proto::x509::CertInfo::from_der(&int.der).unwrap();
        entry.identity = ocsp_sign::ResponderIdentity::new(&cert, None, signer, now(), "slow").unwrap();
    }
    let issuer = entry.key;
    let registry = Arc::new(IssuerRegistry::default());
    registry.insert(entry);
    store
        .record_issued(&issuer, &[(Serial::from_hex("01").unwrap(), 0)], now(), AuditEntry::new(0, "t", "cert.add"))
        .unwrap();
    Fixture { _dir: dir, store, registry, clock: Arc::new(FixedClock::new(now())), issuer, int }
}

/// A request for `serial`, through the filter in front of the tiers.
fn request(f: &Fixture, serial: &str) -> Asked {
    let hashes = ocsp_proto::IssuerHashes::of(&ocsp_proto::x509::CertInfo::from_der(&f.int.der).unwrap());
    let id: CertId = hashes.cert_id(HashAlg::Sha1, Serial::from_hex(serial).unwrap());
    IssuerFilter::new(f.registry.clone()).resolve(OcspRequest { cert_ids: vec![id], nonce: None }).unwrap()
}

fn cadence() -> ocsp_proto::Cadence {
    ocsp_proto::Cadence { validity: 86_400, backdate: 3600 }
}

fn tiers(f: &Fixture, max_concurrent: usize) -> (Arc<PresignedSource>, Arc<Counting>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let config = LiveConfig { cadence: cadence(), max_concurrent, untrusted_per_second: 1000 };
    let live = Arc::new(LiveSource::new(f.store.clone(), f.clock.clone(), config, metrics.clone()));
    let counting = Arc::new(Counting(live, AtomicUsize::new(0)));
    let presigned = Arc::new(PresignedSource::new(f.store.clone(), f.clock.clone(), counting.clone(), metrics.clone()));
    (presigned, counting, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_response_is_never_served_past_its_next_update() {
    let f = fixture(false);
    let (tier, counting, _) = tiers(&f, 8);
    let req = request(&f, "01");
    // Sign one live and store it as the pre-signer would.
    let live = tier.answer(&req).await.unwrap();
    let status = f.store.status(&f.issuer, &Serial::from_hex("01").unwrap()).unwrap().unwrap();
    let stored = StoredResponse {
        this_update: live.this_update,
        next_update: live.next_update,
        produced_at: live.produced_at,
        source: status.encode(),
        der: live.der.to_vec(),
    };
    f.store.put_responses_if_current(&[(f.issuer, Serial::from_hex("01").unwrap(), HashAlg::Sha1, stored)]).unwrap();
    let served = tier.answer(&req).await.unwrap();
    assert_eq!(served.der, live.der, "served as stored");
    assert_eq!(counting.1.load(Ordering::SeqCst), 1);
    // A minute before nextUpdate it is no longer served; a fresh one is signed instead.
    f.clock.advance(live.next_update - f.clock.now() - 30);
    let fresh = tier.answer(&req).await.unwrap();
    assert_ne!(fresh.der, live.der);
    assert!(fresh.next_update > live.next_update);
    assert_eq!(counting.1.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_sign_once() {
    let f = fixture(true);
    let (tier, counting, metrics) = tiers(&f, 8);
    let req = Arc::new(request(&f, "01"));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (tier, req) = (tier.clone(), req.clone());
        tasks.push(tokio::spawn(async move { tier.answer(&req).await.map(|r| r.der.clone()) }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap().unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every waiter gets the one signed response");
    assert_eq!(counting.1.load(Ordering::SeqCst), 1, "twenty requests, one live signing");
    assert_eq!(metrics.live_signings.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_bound_the_answer_is_try_later() {
    let f = fixture(true);
    let serials: Vec<Serial> = (2..=6).map(|n| Serial::from_hex(&format!("{n:x}")).unwrap()).collect();
    let list: Vec<(Serial, i64)> = serials.iter().map(|s| (s.clone(), 0)).collect();
    f.store.record_issued(&f.issuer, &list, now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
    let (tier, _, _) = tiers(&f, 2);
    let mut tasks = Vec::new();
    for n in 2..=6 {
        let (tier, req) = (tier.clone(), request(&f, &format!("{n:x}")));
        tasks.push(tokio::spawn(async move { tier.answer(&req).await }));
    }
    let mut signed = 0;
    let mut try_later = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.status, CertStatus::Good);
                signed += 1;
            }
            Err(AnswerError::TryLater(_)) => try_later += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((signed, try_later), (2, 3), "two signings in flight at most; the rest told to try later");
    assert_eq!(AnswerError::TryLater(String::new()).ocsp_status(), ocsp_proto::ResponseStatus::TryLater);
}

/// A memory tier in front of `inner`, following the change feed.
fn memory_tier(
    f: &Fixture,
    inner: Arc<dyn Source>,
    max_bytes: u64,
) -> (Arc<MemoryTier>, Arc<Metrics>, Arc<ocsp_domain::Followers>) {
    let metrics = Arc::new(Metrics::default());
    let tier = Arc::new(MemoryTier::new(max_bytes, inner, f.clock.clone(), metrics.clone()));
    let followers = ocsp_domain::Followers::start(f.store.clone(), vec![tier.clone()]).unwrap();
    (tier, metrics, followers)
}

/// Waits until `followers` applied every change written so far, as the domain does before it
/// acknowledges an operation.
fn settle(store: &ocsp_store::Store, followers: &ocsp_domain::Followers) {
    let head = store.feed_head();
    assert!(head == 0 || followers.wait_applied(head - 1, Duration::from_secs(10)), "followers are stuck");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_tier_serves_repeats_and_forgets_a_certificate_the_moment_it_is_revoked() {
    let f = fixture(false);
    let (presigned, counting, _) = tiers(&f, 8);
    let (tier, metrics, followers) = memory_tier(&f, presigned, 64 << 20);
    let req = request(&f, "01");
    let first = tier.answer(&req).await.unwrap();
    assert_eq!((first.tier, first.status), (Tier::Live, CertStatus::Good));
    let second = tier.answer(&req).await.unwrap();
    assert_eq!(second.tier, Tier::Memory);
    assert_eq!(second.der, first.der);
    assert_eq!(counting.1.load(Ordering::SeqCst), 1, "the repeat never reached the tiers behind");
    let tag = f.issuer.cert_cache_tag(&Serial::from_hex("01").unwrap());
    assert!(second.cache_tag.to_str().unwrap().split(',').any(|t| t == tag), "tagged with the certificate");
    assert!(second.surrogate_key.to_str().unwrap().split(' ').any(|t| t == f.issuer.cache_tag()));

    let serial = Serial::from_hex("01").unwrap();
    f.store
        .revoke(
            &f.issuer,
            &serial,
            now(),
            ocsp_proto::RevocationReason::KeyCompromise,
            now(),
            AuditEntry::new(0, "t", "r"),
        )
        .unwrap();
    settle(&f.store, &followers);
    let after = tier.answer(&req).await.unwrap();
    assert!(matches!(after.status, CertStatus::Revoked { .. }), "no good answer once the revocation returned");
    assert_ne!(after.tier, Tier::Memory);
    assert!(metrics.memory_evictions.get() >= 1);
    assert_eq!(tier.answer(&req).await.unwrap().tier, Tier::Memory, "the revoked answer is cached in turn");

    // An issuer-wide purge (identity change) drops everything of the issuer.
    f.store.purge_issuer(&f.issuer, now(), AuditEntry::new(0, "t", "issuer.promote")).unwrap();
    settle(&f.store, &followers);
    assert_ne!(tier.answer(&req).await.unwrap().tier, Tier::Memory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_fetched_across_a_revocation_is_not_kept() {
    // The slow signer takes 200 ms; the revocation lands in the middle.
    let f = fixture(true);
    let (presigned, counting, _) = tiers(&f, 8);
    let (tier, _, followers) = memory_tier(&f, presigned, 64 << 20);
    let req = Arc::new(request(&f, "01"));
    let racing = {
        let (tier, req) = (tier.clone(), req.clone());
        tokio::spawn(async move { tier.answer(&req).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let serial = Serial::from_hex("01").unwrap();
    let store = f.store.clone();
    let issuer = f.issuer;
    tokio::task::spawn_blocking(move || {
        let revoked = store.revoke(
            &issuer,
            &serial,
            now(),
            ocsp_proto::RevocationReason::Superseded,
            now(),
            AuditEntry::new(0, "t", "r"),
        );
        settle(&store, &followers);
        revoked
    })
    .await
    .unwrap()
    .unwrap();
    let raced = racing.await;
    // The racing request may answer good (it began before the revocation returned), but that
    // answer must not outlive it in memory.
    assert!(raced.is_ok());
    let after = tier.answer(&req).await.unwrap();
    assert!(matches!(after.status, CertStatus::Revoked { .. }), "got {:?} from {:?}", after.status, after.tier);
    assert_eq!(counting.1.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_tier_stays_within_its_byte_bound_and_never_serves_near_next_update() {
    let f = fixture(false);
    let list: Vec<(Serial, i64)> = (2..400).map(|n| (Serial::from_hex(&format!("{n:x}")).unwrap(), 0)).collect();
    f.store.record_issued(&f.issuer, &list, now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
    let (presigned, counting, _) = tiers(&f, 64);
    let cap = 64 * 1024;
    let (tier, _, _followers) = memory_tier(&f, presigned, cap);
    for n in 2..400 {
        tier.answer(&request(&f, &format!("{n:x}"))).await.unwrap();
    }
    let (entries, bytes) = tier.usage();
    assert!(bytes <= cap, "{bytes} bytes held, cap {cap}");
    assert!(entries > 10 && entries < 398, "{entries} entries: some kept, not all");

    let req = request(&f, "02");
    let a = tier.answer(&req).await.unwrap();
    assert_eq!(tier.answer(&req).await.unwrap().tier, Tier::Memory);
    let before = counting.1.load(Ordering::SeqCst);
    f.clock.advance(a.next_update - f.clock.now() - 30);
    let b = tier.answer(&req).await.unwrap();
    assert_ne!(b.tier, Tier::Memory, "30 s before nextUpdate the memory copy is not served");
    assert!(b.next_update > a.next_update);
    assert_eq!(counting.1.load(Ordering::SeqCst), before + 1);
}

/// Issue 10.3: a live signing that read the status before a revocation committed must not be
/// handed to a request made after the revocation was acknowledged, nor kept in memory. 24
/// clients ask for a fresh certificate while it is revoked at a random moment; every answer to
/// a request sent after the acknowledgement must say revoked. Half the trials run with the
/// memory tier in front, half with live signing alone (`--memory-cache 0 --no-presign`); half
/// with clients spread out, half back to back.
#[test]
fn no_answer_signed_from_a_superseded_status_is_served_after_the_acknowledgement() {
    const TRIALS: u32 = 1000;
    const CLIENTS: usize = 24;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    // Signing takes 3 ms, as an HSM does: a wide window for the race.
    let f = Arc::new(fixture_signing_in(Some(Duration::from_millis(3))));
    let mut stale = 0u32;
    let mut after_ack = 0u64;
    for trial in 0..TRIALS {
        let serial = Serial::from_hex(&format!("{:x}", 0x1000 + trial)).unwrap();
        f.store.record_issued(&f.issuer, &[(serial.clone(), 0)], now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
        let metrics = Arc::new(Metrics::default());
        let config = LiveConfig { cadence: cadence(), max_concurrent: 64, untrusted_per_second: 1000 };
        let live = Arc::new(LiveSource::new(f.store.clone(), f.clock.clone(), config, metrics.clone()));
        let presigned = Arc::new(PresignedSource::new(f.store.clone(), f.clock.clone(), live, metrics.clone()));
        let mut list: Vec<Arc<dyn ocsp_domain::Follower>> = vec![presigned.clone()];
        let source: Arc<dyn Source> = if trial % 2 == 0 {
            let memory = Arc::new(MemoryTier::new(16 << 20, presigned.clone(), f.clock.clone(), metrics.clone()));
            list.push(memory.clone());
            memory
        } else {
            presigned.clone()
        };
        let followers = ocsp_domain::Followers::start(f.store.clone(), list).unwrap();
        let req = Arc::new(request(&f, &serial.to_hex()));
        let acked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (found, asked_after) = rt.block_on(async {
            let mut clients = Vec::new();
            for client in 0..CLIENTS {
                let (source, req, acked) = (source.clone(), req.clone(), acked.clone());
                clients.push(tokio::spawn(async move {
                    let (mut stale, mut after) = (0u32, 0u64);
                    // In half the trials clients think for 0 to 3 ms between requests, as
                    // independent clients on a network arrive spread out, so some always join a
                    // signing in flight; in the other half they ask back to back, which packs
                    // inserts into the memory tier right after the eviction.
                    let think = if trial % 4 < 2 { Duration::ZERO } else { Duration::from_millis(client as u64 % 4) };
                    // Ask until a few answers to requests made after the acknowledgement came.
                    while after < 4 {
                        // Memory hits never wait: let the timer and the revoking task run.
                        tokio::task::yield_now().await;
                        if !think.is_zero() {
                            tokio::time::sleep(think).await;
                        }
                        let sent_after_ack = acked.load(Ordering::SeqCst);
                        let answer = source.answer(&req).await.unwrap();
                        if sent_after_ack {
                            after += 1;
                            if answer.status == CertStatus::Good {
                                stale += 1;
                            }
                        }
                    }
                    (stale, after)
                }));
            }
            // Revoke at a random moment within the first few signings.
            let wait = u64::from(trial.wrapping_mul(2_654_435_761) % 9_000);
            tokio::time::sleep(Duration::from_micros(wait)).await;
            let (store, issuer, serial, acked) = (f.store.clone(), f.issuer, serial.clone(), acked.clone());
            let followers = followers.clone();
            tokio::task::spawn_blocking(move || {
                store
                    .revoke(
                        &issuer,
                        &serial,
                        now(),
                        ocsp_proto::RevocationReason::KeyCompromise,
                        now(),
                        AuditEntry::new(0, "t", "revoke"),
                    )
                    .unwrap();
                settle(&store, &followers);
                // The admin call returns here: the acknowledgement.
                acked.store(true, Ordering::SeqCst);
            })
            .await
            .unwrap();
            let mut total = (0u32, 0u64);
            for c in clients {
                let (s, a) = c.await.unwrap();
                total = (total.0 + s, total.1 + a);
            }
            total
        });
        stale += found;
        after_ack += asked_after;
    }
    assert!(after_ack >= u64::from(TRIALS) * CLIENTS as u64 * 4);
    assert_eq!(stale, 0, "{stale} answers said good to requests made after the revocation was acknowledged");
}

/// Nonce echoes (RFC 8954) are signed live for each request (the same certificate asked five
/// times is five signings, no single flight) and share the live-signing bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_echoes_are_signed_per_request_within_the_live_bound() {
    let f = fixture(true);
    let metrics = Arc::new(Metrics::default());
    let config = LiveConfig { cadence: cadence(), max_concurrent: 2, untrusted_per_second: 1000 };
    let live = Arc::new(LiveSource::new(f.store.clone(), f.clock.clone(), config, metrics));
    let mut tasks = Vec::new();
    for n in 0..5u8 {
        let (live, req) = (live.clone(), request(&f, "01"));
        let nonce = vec![0x04, 0x08, n, 1, 2, 3, 4, 5, 6, 7];
        tasks.push(tokio::spawn(async move { (live.answer_echo(&req, &nonce).await, nonce) }));
    }
    let (mut signed, mut try_later) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (Ok(served), nonce) => {
                assert_eq!(served.tier, Tier::Echo);
                let der = served.answer.der.to_vec();
                assert!(der.windows(nonce.len()).any(|w| w == nonce.as_slice()), "the nonce is echoed");
                signed += 1;
            }
            (Err(AnswerError::TryLater(_)), _) => try_later += 1,
            (Err(e), _) => panic!("{e}"),
        }
    }
    assert_eq!((signed, try_later), (2, 3), "two signings in flight at most, echoes included");
}

/// An answer *in flight* when a revocation is acknowledged: a live signing that read the
/// status before the revocation and finishes after the acknowledgement must not go out as
/// `good` (an edge purged a moment earlier would cache it). Behind the change guard it is
/// prepared again and says revoked; with the memory tier in front and without.
#[test]
fn an_answer_in_flight_at_the_acknowledgement_does_not_go_out_good() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Signing takes 300 ms, as a busy HSM might: the acknowledgement comes in the middle.
    let f = Arc::new(fixture_signing_in(Some(Duration::from_millis(300))));
    for (n, with_memory) in [(0x7001u32, false), (0x7002, true)] {
        let serial = Serial::from_hex(&format!("{n:x}")).unwrap();
        f.store.record_issued(&f.issuer, &[(serial.clone(), 0)], now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
        let metrics = Arc::new(Metrics::default());
        let config = LiveConfig { cadence: cadence(), max_concurrent: 64, untrusted_per_second: 1000 };
        let live = Arc::new(LiveSource::new(f.store.clone(), f.clock.clone(), config, metrics.clone()));
        let presigned = Arc::new(PresignedSource::new(f.store.clone(), f.clock.clone(), live, metrics.clone()));
        let epoch = Arc::new(ChangeEpoch::default());
        let mut list: Vec<Arc<dyn ocsp_domain::Follower>> = vec![epoch.opening(), presigned.clone()];
        let tiers: Arc<dyn Source> = if with_memory {
            let memory = Arc::new(MemoryTier::new(16 << 20, presigned.clone(), f.clock.clone(), metrics.clone()));
            list.push(memory.clone());
            memory
        } else {
            presigned.clone()
        };
        list.push(epoch.closing());
        let followers = ocsp_domain::Followers::start(f.store.clone(), list).unwrap();
        let guarded: Arc<dyn Source> = Arc::new(ChangeGuard::new(tiers.clone(), epoch.clone(), metrics.clone()));
        let req = Arc::new(request(&f, &serial.to_hex()));
        let (with_guard, without) = rt.block_on(async {
            let (g, r) = (guarded.clone(), req.clone());
            let guarded_call = tokio::spawn(async move { g.answer(&r).await });
            let (t, r) = (tiers.clone(), req.clone());
            let bare_call = tokio::spawn(async move { t.answer(&r).await });
            tokio::time::sleep(Duration::from_millis(60)).await;
            let (store, issuer, serial, followers) = (f.store.clone(), f.issuer, serial.clone(), followers.clone());
            tokio::task::spawn_blocking(move || {
                let reason = ocsp_proto::RevocationReason::KeyCompromise;
                store.revoke(&issuer, &serial, now(), reason, now(), AuditEntry::new(0, "t", "revoke")).unwrap();
                settle(&store, &followers);
            })
            .await
            .unwrap();
            // Acknowledged; both calls are still signing.
            (guarded_call.await.unwrap().unwrap(), bare_call.await.unwrap().unwrap())
        });
        assert!(
            matches!(with_guard.status, CertStatus::Revoked { .. }),
            "memory {with_memory}: {:?}",
            with_guard.status
        );
        // Without the guard, the signing in flight does go out good: what the guard is for.
        assert_eq!(without.status, CertStatus::Good, "memory {with_memory}");
        followers.stop();
    }
}

/// The change guard waits only for changes to the certificates asked about: a change being
/// applied to another certificate holds nothing up, one to this certificate holds its answer
/// until it is applied (tryLater past the deadline), a signer change holds every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_guard_waits_only_for_changes_to_the_certificates_asked_about() {
    let f = fixture(false);
    let (presigned, _, metrics) = tiers(&f, 8);
    let others: Vec<Serial> = (0x20..0x40).map(|n| Serial::from_hex(&format!("{n:x}")).unwrap()).collect();
    let list: Vec<(Serial, i64)> = others.iter().map(|s| (s.clone(), 0)).collect();
    f.store.record_issued(&f.issuer, &list, now(), AuditEntry::new(0, "t", "cert.add")).unwrap();
    let epoch = Arc::new(ChangeEpoch::default());
    let (opening, closing) = (epoch.opening(), epoch.closing());
    let guard = ChangeGuard::new(presigned.clone(), epoch.clone(), metrics.clone());
    let change = |kind, serials: Vec<Serial>| ocsp_records::Change { seq: 1, time: 0, issuer: f.issuer, kind, serials };
    // A change to 0x20..0x40 is being applied; 0x01 is asked about. Pick a serial whose stripe
    // differs (stripes are a hash; most do).
    let open = change(ocsp_records::ChangeKind::Status, others.clone());
    opening.apply(&open);
    let started = std::time::Instant::now();
    let answer = guard.answer(&request(&f, "01")).await.unwrap();
    assert_eq!(answer.status, CertStatus::Good);
    assert!(started.elapsed() < Duration::from_millis(400), "held up by another certificate's change");
    // A certificate of that change waits for it, and is tryLater past the deadline.
    let started = std::time::Instant::now();
    let held = guard.answer(&request(&f, "20")).await;
    assert!(matches!(held, Err(AnswerError::TryLater(_))), "{:?}", held.map(|a| a.status));
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Once the change is applied, it is answered at once; a waiting answer goes on when it is.
    let waiting = {
        let (guard, req) = (Arc::new(guard), Arc::new(request(&f, "21")));
        let g = guard.clone();
        let task = tokio::spawn(async move { g.answer(&req).await.map(|a| a.status) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        closing.apply(&open);
        (task.await.unwrap(), guard)
    };
    assert_eq!(waiting.0.unwrap(), CertStatus::Good);
    // A signer change holds everything.
    let signer = change(ocsp_records::ChangeKind::Signer, Vec::new());
    opening.apply(&signer);
    assert!(matches!(waiting.1.answer(&request(&f, "01")).await, Err(AnswerError::TryLater(_))));
    closing.apply(&signer);
    assert_eq!(waiting.1.answer(&request(&f, "01")).await.unwrap().status, CertStatus::Good);
}
