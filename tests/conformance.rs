//! One storage contract, both backends: the same checks of the domain's `StatusStore` against
//! the embedded RocksDB store and against a real PostgreSQL (fleet mode's truth). Each step is
//! an operation the domain performs; after each, the backend must have written exactly one
//! change (numbered right after the last, no gap) and one audit entry for it, or none when
//! nothing changed, and the records must follow the rules (`ocsp-records`).

use crate::fleet::Postgres;
use ocsp_domain::StatusStore;
use ocsp_proto::{IssuerKey, RevocationReason as R, Serial};
use ocsp_records::{AuditEntry, AuditFilter, ChangeKind, Issued, IssuerRecord, RevokeOutcome, State, UnholdOutcome};
use std::sync::Arc;

/// A backend under test: the store, its CRL store and durable cursors, and how to read its
/// feed (number, kind, serials).
struct Backend {
    name: &'static str,
    store: Arc<dyn StatusStore>,
    crls: Arc<dyn ocsp_domain::CrlStore>,
    /// Durable cursors, and the same cursors as a restarted process reads them.
    cursors: Arc<dyn ocsp_domain::ChangeFeed>,
    reopened_cursors: Box<dyn Fn() -> Arc<dyn ocsp_domain::ChangeFeed>>,
    feed: Box<dyn Fn() -> Vec<(u64, ChangeKind, usize)>>,
    _keep: Box<dyn std::any::Any>,
}

fn rocksdb() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ocsp_store::Store::open(&dir.path().join("db")).unwrap());
    let reader = store.clone();
    Backend {
        name: "RocksDB",
        crls: store.clone(),
        cursors: store.clone(),
        // The same process (RocksDB holds its own lock): the cursor was written synced.
        reopened_cursors: {
            let s = store.clone();
            Box::new(move || s.clone() as Arc<dyn ocsp_domain::ChangeFeed>)
        },
        store,
        feed: Box::new(move || {
            reader.changes(0, 10_000).unwrap().iter().map(|c| (c.seq, c.kind, c.serials.len())).collect()
        }),
        _keep: Box::new(dir),
    }
}

fn postgresql(pg: Arc<Postgres>) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(ocsp_store::Store::open(&dir.path().join("db")).unwrap());
    let config = ocsp_fleet::FleetConfig {
        database: ocsp_fleet::PgSettings::plain(&pg.url),
        node: "conformance".into(),
        lease: std::time::Duration::from_secs(3),
        serving_lease: std::time::Duration::from_secs(10),
        ack_wait: std::time::Duration::from_secs(2),
    };
    let fleet = ocsp_fleet::Fleet::open(config, local.clone()).unwrap();
    let store = fleet.status_store().unwrap();
    // The node's parts run, so it takes the signer lease (CRLs are stored only under it).
    let runtime = ocsp_domain::runtime::Runtime::new();
    let followers = ocsp_domain::Followers::start_on(&runtime, local, Vec::new()).unwrap();
    let threads = fleet.spawn(&runtime, followers.clone()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !fleet.signs() {
        assert!(std::time::Instant::now() < deadline, "the node never took the signer lease");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let reader = pg.clone();
    let (f2, cursor_fleet) = (fleet.clone(), fleet.clone());
    Backend {
        name: "PostgreSQL",
        crls: fleet.crl_store().unwrap(),
        cursors: fleet.purge_feed().unwrap(),
        // Another node's view of the same fleet database.
        reopened_cursors: Box::new(move || cursor_fleet.purge_feed().unwrap() as Arc<dyn ocsp_domain::ChangeFeed>),
        store,
        feed: Box::new(move || {
            // Kind codes as stored (ChangeKind::code), serial counts from the change body (a u32
            // after the version, kind, time and issuer key: docs/store.md).
            reader
                .sql("SELECT seq, kind, (get_byte(body, 74)::bigint << 24) | (get_byte(body, 75) << 16) | (get_byte(body, 76) << 8) | get_byte(body, 77) FROM changes ORDER BY seq")
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let f: Vec<&str> = l.split('|').collect();
                    let kind = ChangeKind::from_byte(f[1].parse().unwrap()).unwrap();
                    (f[0].parse().unwrap(), kind, f[2].parse::<usize>().unwrap())
                })
                .collect()
        }),
        _keep: Box::new((dir, f2, pg, followers, threads, runtime)),
    }
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry::new(1_900_000_000, "conformance", action)
}

fn serial(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap()
}

/// The contract, step by step; every failure names the backend.
fn contract(b: &Backend) {
    let s = &b.store;
    let n = b.name;
    let pki = ocsp_testpki::Issued::root("conformance", ocsp_testpki::KeyAlg::P256).unwrap();
    let key = IssuerKey([7u8; 64]);
    let record = IssuerRecord {
        name: "int".into(),
        cert_der: pki.der.clone(),
        responder_cert_der: None,
        responder_key: "file:/nonexistent".into(),
        backup_responder_cert_der: None,
        backup_responder_key: None,
        added_at: 1,
        retired_at: None,
        crl_key: None,
        crl_shards: None,
    };
    let audits = || s.audit(&AuditFilter { limit: 1000, ..Default::default() }).unwrap().len();
    // (change kinds expected so far, audit entries expected so far)
    let mut kinds: Vec<ChangeKind> = Vec::new();
    let mut entries = 0;
    let check = |step: &str, kinds: &[ChangeKind], entries: usize| {
        let feed = (b.feed)();
        let got: Vec<ChangeKind> = feed.iter().map(|(_, k, _)| *k).collect();
        assert_eq!(got, kinds, "{n}, {step}: the feed's changes");
        let numbers: Vec<u64> = feed.iter().map(|(seq, _, _)| *seq).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{n}, {step}: numbers without a gap: {numbers:?}");
        assert_eq!(s.committed_head().unwrap(), numbers.last().map_or(0, |l| l + 1), "{n}, {step}: the head");
        assert_eq!(audits(), entries, "{n}, {step}: one audit entry per change made or refused");
    };

    s.put_issuer(&key, &record, audit("issuer.add")).unwrap();
    entries += 1;
    // What loads issuers (the registry, the CRL publisher, other nodes) follows the feed.
    kinds.push(ChangeKind::Issuer);
    check("register", &kinds, entries);
    assert_eq!(s.issuers().unwrap().iter().filter(|r| r.name == "int").count(), 1, "{n}: the issuer");

    let issued: Vec<Issued> = ["0a", "0b", "0c", "0d"]
        .iter()
        .map(|h| Issued { serial: serial(h), not_after: 2_000_000_000, ca: false })
        .collect();
    let (added, change) = s.record_certificates(&key, &issued, 10, audit("cert.add")).unwrap();
    assert_eq!((added, change.is_some()), (4, true), "{n}: recorded");
    kinds.push(ChangeKind::Recorded);
    entries += 1;
    check("record", &kinds, entries);
    let (again, _) = s.record_certificates(&key, &issued[..2], 11, audit("cert.add")).unwrap();
    assert_eq!(again, 0, "{n}: recording never overwrites");
    assert_eq!(s.status(&key, &serial("0a")).unwrap().unwrap().state, State::Good, "{n}");

    // A revocation: one change, one entry; the same again: nothing; another reason: refused.
    let (out, change) = s.revoke(&key, &serial("0a"), 20, R::KeyCompromise, 20, audit("revoke")).unwrap();
    assert!(matches!(out, RevokeOutcome::Revoked(_)) && change.is_some(), "{n}: {out:?}");
    kinds.push(ChangeKind::Status);
    entries += 1;
    check("revoke", &kinds, entries);
    let (out, change) = s.revoke(&key, &serial("0a"), 20, R::KeyCompromise, 21, audit("revoke")).unwrap();
    assert!(matches!(out, RevokeOutcome::AlreadyRevoked(_)) && change.is_none(), "{n}: {out:?}");
    let (out, change) = s.revoke(&key, &serial("0a"), 20, R::Superseded, 22, audit("revoke")).unwrap();
    assert!(matches!(out, RevokeOutcome::Refused { .. }) && change.is_none(), "{n}: a revocation is final: {out:?}");
    let (out, _) = s.revoke(&key, &serial("ff"), 20, R::KeyCompromise, 22, audit("revoke")).unwrap();
    assert_eq!(out, RevokeOutcome::NotIssued, "{n}");
    check("refused revocations", &kinds, entries);

    // A hold, lifted; a good certificate is not on hold.
    let (out, _) = s.revoke(&key, &serial("0b"), 30, R::CertificateHold, 30, audit("revoke")).unwrap();
    assert!(matches!(out, RevokeOutcome::Revoked(_)), "{n}: {out:?}");
    kinds.push(ChangeKind::Status);
    entries += 1;
    match s.unhold(&key, &serial("0b"), 31, audit("unhold")).unwrap() {
        UnholdOutcome::Lifted { record, .. } => assert_eq!(record.state, State::Good, "{n}"),
        other => panic!("{n}: {other:?}"),
    }
    kinds.push(ChangeKind::Status);
    entries += 1;
    assert!(matches!(s.unhold(&key, &serial("0c"), 32, audit("unhold")).unwrap(), UnholdOutcome::NotOnHold(_)), "{n}");
    assert_eq!(s.unhold(&key, &serial("fe"), 32, audit("unhold")).unwrap(), UnholdOutcome::NotIssued, "{n}");
    check("hold and unhold", &kinds, entries);

    // A bulk revocation: one change naming what changed; a dry run writes nothing.
    let list = [serial("0a"), serial("0c"), serial("0d"), serial("fd")];
    let dry = s.revoke_many(&key, &list, 40, R::KeyCompromise, 40, true, audit("revoke")).unwrap();
    assert_eq!((dry.summary.revoked, dry.summary.already_revoked, dry.change), (2, 1, None), "{n}: dry run");
    check("dry run", &kinds, entries);
    let bulk = s.revoke_many(&key, &list, 40, R::KeyCompromise, 41, false, audit("revoke")).unwrap();
    assert_eq!(
        (bulk.summary.revoked, bulk.summary.already_revoked, bulk.summary.not_issued.len(), bulk.change.is_some()),
        (2, 1, 1, true),
        "{n}: bulk"
    );
    kinds.push(ChangeKind::Status);
    entries += 1;
    check("bulk revocation", &kinds, entries);
    let feed = (b.feed)();
    assert_eq!(feed.last().map(|(_, _, serials)| *serials), Some(2), "{n}: the change names what changed");
    let now: Vec<bool> = s
        .statuses(&list.iter().map(|x| (key, x.clone())).collect::<Vec<_>>())
        .unwrap()
        .iter()
        .map(|r| r.is_some_and(|r| matches!(r.state, State::Revoked { .. })))
        .collect();
    assert_eq!(now, vec![true, true, true, false], "{n}: statuses after");

    // A refused call writes its audit entry alone.
    s.record_audit(audit("refused")).unwrap();
    entries += 1;
    check("refused call", &kinds, entries);

    // CRL numbers only go up, whoever writes: each stored shard is a change in the feed.
    let crl = |number: u64| ocsp_records::StoredCrl {
        shard: 1,
        number,
        this_update: 50,
        next_update: 60,
        entries: 0,
        der: vec![0x30, 0x00],
    };
    let stored = |w: ocsp_records::CrlWrite| matches!(w, ocsp_records::CrlWrite::Stored { .. });
    assert!(stored(b.crls.put_crl(&key, &crl(5), 50).unwrap()), "{n}: first CRL");
    kinds.push(ChangeKind::Crl);
    for (number, why) in [(5, "the same number"), (4, "a lower number")] {
        assert_eq!(
            b.crls.put_crl(&key, &crl(number), 51).unwrap(),
            ocsp_records::CrlWrite::Stale { current: 5 },
            "{n}: {why} is refused"
        );
    }
    assert!(stored(b.crls.put_crl(&key, &crl(6), 52).unwrap()), "{n}: a higher number");
    kinds.push(ChangeKind::Crl);
    check("CRL numbers", &kinds, entries);

    // A durable cursor reads back, also from a process that starts afresh, and only moves on.
    let head = s.committed_head().unwrap();
    b.cursors.set_cursor("conformance", head - 2).unwrap();
    assert_eq!((b.reopened_cursors)().cursor("conformance").unwrap(), head - 2, "{n}: a durable cursor");
    b.cursors.set_cursor("conformance", head).unwrap();
    assert_eq!((b.reopened_cursors)().cursor("conformance").unwrap(), head, "{n}: a cursor moved on");
}

#[test]
fn the_storage_contract_holds_on_rocksdb() {
    contract(&rocksdb());
}

#[test]
fn the_storage_contract_holds_on_postgresql() {
    contract(&postgresql(Arc::new(Postgres::start())));
}
