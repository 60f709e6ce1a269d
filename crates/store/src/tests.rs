use crate::*;
use ocsp_proto::HashAlg;
use ocsp_proto::{IssuerKey, RevocationReason as R, Serial};
use proptest::prelude::*;

fn issuer(b: u8) -> IssuerKey {
    IssuerKey([b; 64])
}

fn serial(n: u32) -> Serial {
    Serial::from_hex(&format!("{n:x}")).unwrap()
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry::new(100, "tester", action)
}

#[test]
fn imports_are_idempotent_and_never_overwrite_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let certs: Vec<(Serial, i64)> = (1..=100).map(|n| (serial(n), 5000)).collect();
    assert_eq!(store.record_issued(&issuer(1), &certs, 10, audit("cert.add")).unwrap(), 100);
    store.revoke(&issuer(1), &serial(7), 20, R::KeyCompromise, 20, audit("revoke")).unwrap();
    assert_eq!(store.record_issued(&issuer(1), &certs, 30, audit("cert.add")).unwrap(), 0);
    let rec = store.status(&issuer(1), &serial(7)).unwrap().unwrap();
    assert!(matches!(rec.state, State::Revoked { reason: Some(R::KeyCompromise), .. }));
    // Another issuer's identical serial is another certificate.
    assert_eq!(store.status(&issuer(2), &serial(7)).unwrap(), None);
    assert_eq!(store.count(&issuer(1)).unwrap(), (99, 1));
    assert_eq!(store.count(&issuer(2)).unwrap(), (0, 0));
}

#[test]
fn bulk_revocation_summary_and_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let certs: Vec<(Serial, i64)> = (1..=10).map(|n| (serial(n), 0)).collect();
    store.record_issued(&issuer(1), &certs, 1, audit("cert.add")).unwrap();
    store.revoke(&issuer(1), &serial(1), 2, R::Superseded, 2, audit("revoke")).unwrap();
    store.revoke(&issuer(1), &serial(2), 2, R::CessationOfOperation, 2, audit("revoke")).unwrap();
    let batch: Vec<Serial> = (1..=12).map(serial).collect();

    let BulkRevocation { summary: dry, .. } =
        store.revoke_many(&issuer(1), &batch, 3, R::Superseded, 3, true, audit("revoke")).unwrap();
    assert_eq!((dry.revoked, dry.already_revoked, dry.refused.len(), dry.not_issued.len()), (8, 1, 1, 2));
    assert_eq!(store.count(&issuer(1)).unwrap(), (8, 2), "a dry run writes nothing");

    let BulkRevocation { summary: real, changed, .. } =
        store.revoke_many(&issuer(1), &batch, 3, R::Superseded, 3, false, audit("revoke")).unwrap();
    assert_eq!(real, dry);
    assert_eq!(changed.len(), 8);
    assert_eq!(store.count(&issuer(1)).unwrap(), (0, 10));
    let entries = store.audit(&AuditFilter { action: Some("revoke".into()), ..Default::default() }).unwrap();
    assert_eq!(entries[0].serials.len(), 8, "the audit lists what changed");
}

#[test]
fn holds_can_be_lifted_other_revocations_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.record_issued(&issuer(1), &[(serial(1), 0), (serial(2), 0)], 1, audit("cert.add")).unwrap();
    store.revoke(&issuer(1), &serial(1), 2, R::CertificateHold, 2, audit("revoke")).unwrap();
    store.revoke(&issuer(1), &serial(2), 2, R::Superseded, 2, audit("revoke")).unwrap();
    assert!(matches!(store.unhold(&issuer(1), &serial(1), 3, audit("unhold")).unwrap(), UnholdOutcome::Lifted { .. }));
    assert_eq!(store.status(&issuer(1), &serial(1)).unwrap().unwrap().state, State::Good);
    assert!(matches!(store.unhold(&issuer(1), &serial(2), 3, audit("unhold")).unwrap(), UnholdOutcome::NotOnHold(_)));
    assert!(matches!(store.unhold(&issuer(1), &serial(9), 3, audit("unhold")).unwrap(), UnholdOutcome::NotIssued));
}

#[test]
fn audit_survives_reopen_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut a = audit("cert.add");
        a.issuer = Some("int".into());
        store.record_issued(&issuer(1), &[(serial(1), 0)], 1, a).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let mut a = AuditEntry::new(200, "bob", "revoke");
    a.issuer = Some("int".into());
    store.revoke(&issuer(1), &serial(1), 200, R::KeyCompromise, 200, a).unwrap();
    let all = store.audit(&AuditFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].seq > all[1].seq, "newest first, sequence keeps growing across restarts");
    let bob = store.audit(&AuditFilter { admin: Some("bob".into()), ..Default::default() }).unwrap();
    assert_eq!(bob.len(), 1);
    let by_serial = store.audit(&AuditFilter { serial: Some("01".into()), ..Default::default() }).unwrap();
    assert_eq!(by_serial.len(), 2);
    let since = store.audit(&AuditFilter { since: Some(150), ..Default::default() }).unwrap();
    assert_eq!(since.len(), 1);
}

proptest! {
    #[test]
    fn keys_group_by_issuer_then_serial(a in any::<u8>(), b in any::<u8>(), s1 in 1u32.., s2 in 1u32..) {
        let (ka, kb) = (status_key(&issuer(a), &serial(s1)), status_key(&issuer(b), &serial(s2)));
        if a < b {
            prop_assert!(ka < kb, "every key of a smaller issuer sorts first");
        }
        prop_assert!(ka.starts_with(&issuer(a).0));
    }
}

#[test]
fn responses_are_written_only_while_their_status_is_current_and_vanish_on_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.record_issued(&issuer(1), &[(serial(1), 0)], 1, audit("cert.add")).unwrap();
    let good = store.status(&issuer(1), &serial(1)).unwrap().unwrap();
    let resp =
        StoredResponse { this_update: 1, next_update: 2, produced_at: 1, source: good.encode(), der: vec![0x30, 0] };
    let item = (issuer(1), serial(1), HashAlg::Sha1, resp.clone());
    assert_eq!(store.put_responses_if_current(std::slice::from_ref(&item)).unwrap(), 1);
    assert_eq!(store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap(), Some(resp));
    assert_eq!(store.response(&issuer(1), &serial(1), HashAlg::Sha256).unwrap(), None);

    store.revoke(&issuer(1), &serial(1), 5, R::KeyCompromise, 5, audit("revoke")).unwrap();
    assert_eq!(store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap(), None, "revocation drops old responses");
    // A good response signed before the revocation, written after it, is dropped.
    assert_eq!(store.put_responses_if_current(&[item]).unwrap(), 0);
    assert_eq!(store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap(), None);
    let feed: Vec<(ChangeKind, Vec<Serial>)> =
        store.changes(0, 10).unwrap().into_iter().map(|c| (c.kind, c.serials)).collect();
    assert_eq!(
        feed,
        vec![(ChangeKind::Recorded, vec![serial(1)]), (ChangeKind::Status, vec![serial(1)])],
        "the feed tells of the issuance and the revocation"
    );

    let scanned = store.scan_statuses(None, 10).unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].serial, serial(1));
    let key = StatusCursor::After(issuer(1), serial(1));
    assert!(store.scan_statuses(Some(&key), 10).unwrap().is_empty());
}

#[test]
fn every_status_change_queues_a_durable_purge_and_cursors_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.feed_cursor("edge").unwrap(), 0, "a new target starts at the head");
        let certs: Vec<(Serial, i64)> = (1..=5).map(|n| (serial(n), 0)).collect();
        store.record_issued(&issuer(1), &certs, 1, audit("cert.add")).unwrap();
        let recorded = store.changes(0, 10).unwrap();
        assert_eq!(recorded.len(), 1);
        assert!(!recorded[0].needs_purge(), "a new certificate has nothing cached to purge");
        assert_eq!(store.wait_for_changes(0, std::time::Duration::ZERO), 1, "the head moved past it");
        let batch = [serial(1), serial(2), serial(9)];
        store.revoke_many(&issuer(1), &batch, 5, R::KeyCompromise, 5, false, audit("revoke")).unwrap();
        store.revoke_many(&issuer(1), &[serial(3)], 6, R::Superseded, 6, true, audit("dry")).unwrap();
        store.revoke(&issuer(1), &serial(4), 7, R::CertificateHold, 7, audit("hold")).unwrap();
        store.unhold(&issuer(1), &serial(4), 8, audit("unhold")).unwrap();
        store.purge_issuer(&issuer(2), 9, audit("issuer.retire")).unwrap();
        let events: Vec<Change> = store.changes(1, 10).unwrap();
        let got: Vec<(u64, i64, Vec<Serial>)> = events.iter().map(|e| (e.seq, e.time, e.serials.clone())).collect();
        assert_eq!(
            got,
            vec![(1, 5, vec![serial(1), serial(2)]), (2, 7, vec![serial(4)]), (3, 8, vec![serial(4)]), (4, 9, vec![]),],
            "unissued serials and dry runs purge nothing"
        );
        assert!(events.iter().all(|e| e.needs_purge()));
        assert!(events[3].issuer_wide() && events[3].issuer == issuer(2));
        assert_eq!(store.wait_for_changes(4, std::time::Duration::ZERO), 5, "the head is past every change");
        assert_eq!(store.changes(3, 10).unwrap().len(), 2);
        store.set_feed_cursor("edge", 4).unwrap();
        store.hold_feed(3);
        store.trim_feed(4).unwrap();
        assert_eq!(store.changes(0, 10).unwrap().len(), 2, "in-process followers still need change 3");
        store.hold_feed(4);
        store.trim_feed(4).unwrap();
        assert_eq!(store.changes(0, 10).unwrap().len(), 1);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.feed_cursor("edge").unwrap(), 4);
    assert_eq!(store.feed_head(), 5, "sequence numbers are never reused");
    store.trim_feed(5).unwrap();
    let store2 = {
        drop(store);
        Store::open(dir.path()).unwrap()
    };
    assert_eq!(store2.feed_head(), 5, "not even after the feed was emptied");
}

#[test]
fn an_issuer_record_change_and_its_purge_are_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.record_issued(&issuer(1), &[(serial(1), 0)], 1, audit("cert.add")).unwrap();
    let good = store.status(&issuer(1), &serial(1)).unwrap().unwrap();
    let resp =
        StoredResponse { this_update: 1, next_update: 2, produced_at: 1, source: good.encode(), der: vec![0x30, 0] };
    store.put_responses_if_current(&[(issuer(1), serial(1), HashAlg::Sha1, resp)]).unwrap();
    let record = IssuerRecord {
        name: "int".into(),
        cert_der: vec![1],
        responder_cert_der: None,
        responder_key: "file:/k".into(),
        backup_responder_cert_der: None,
        backup_responder_key: None,
        added_at: 1,
        retired_at: Some(5),
        crl_key: None,
        crl_shards: None,
    };
    // Retired: record and purge, responses kept.
    store.put_issuer_and_purge(&issuer(1), &record, false, 5, audit("issuer.retire")).unwrap();
    assert_eq!(store.issuer(&issuer(1)).unwrap().unwrap().retired_at, Some(5));
    assert!(store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap().is_some());
    // Identity changed: the issuer's responses go in the same batch; other issuers' stay.
    store.record_issued(&issuer(2), &[(serial(1), 0)], 1, audit("cert.add")).unwrap();
    let good2 = store.status(&issuer(2), &serial(1)).unwrap().unwrap();
    let resp2 =
        StoredResponse { this_update: 1, next_update: 2, produced_at: 1, source: good2.encode(), der: vec![0x30, 0] };
    store.put_responses_if_current(&[(issuer(2), serial(1), HashAlg::Sha1, resp2)]).unwrap();
    store.put_issuer_and_purge(&issuer(1), &record, true, 6, audit("issuer.promote")).unwrap();
    assert!(store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap().is_none());
    assert!(store.response(&issuer(2), &serial(1), HashAlg::Sha1).unwrap().is_some());
    let events: Vec<Change> = store.changes(0, 10).unwrap().into_iter().filter(|c| c.needs_purge()).collect();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.issuer_wide() && e.issuer == issuer(1)));
    let actions: Vec<String> = store.audit(&AuditFilter::default()).unwrap().into_iter().map(|a| a.action).collect();
    assert!(actions.contains(&"issuer.retire".to_string()) && actions.contains(&"issuer.promote".to_string()));
}

#[test]
fn responses_of_explicit_unspecified_revocations_are_dropped_once_after_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.record_issued(&issuer(1), &[(serial(1), 0), (serial(2), 0), (serial(3), 0)], 1, audit("cert.add")).unwrap();
    store.revoke(&issuer(1), &serial(1), 2, R::Unspecified, 2, audit("revoke")).unwrap();
    store.revoke(&issuer(1), &serial(2), 2, R::KeyCompromise, 2, audit("revoke")).unwrap();
    let stored = |store: &Store, s: u32| {
        let status = store.status(&issuer(1), &serial(s)).unwrap().unwrap();
        let resp = StoredResponse {
            this_update: 1,
            next_update: 9,
            produced_at: 1,
            source: status.encode(),
            der: vec![s as u8],
        };
        (issuer(1), serial(s), HashAlg::Sha1, resp)
    };
    // As an older ocspd left it: responses stored, the migration not yet run.
    assert_eq!(store.put_responses_if_current(&[stored(&store, 1), stored(&store, 2), stored(&store, 3)]).unwrap(), 3);
    store.db.delete_cf(store.cf(CF_META).unwrap(), MIGRATION_UNSPECIFIED).unwrap();
    let head = store.feed_head();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert!(
        store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap().is_none(),
        "signed again, without the reason"
    );
    assert!(store.response(&issuer(1), &serial(2), HashAlg::Sha1).unwrap().is_some());
    assert!(store.response(&issuer(1), &serial(3), HashAlg::Sha1).unwrap().is_some());
    let events = store.changes(head, 10).unwrap();
    assert_eq!(events.len(), 1, "cached copies are purged");
    assert_eq!(events[0].serials, vec![serial(1)]);
    // The status itself is untouched; and the migration runs once.
    assert!(matches!(store.status(&issuer(1), &serial(1)).unwrap().unwrap().state, State::Revoked { .. }));
    let again = stored(&store, 1);
    store.put_responses_if_current(&[again]).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.response(&issuer(1), &serial(1), HashAlg::Sha1).unwrap().is_some(), "runs once");
}

#[test]
fn purge_events_written_by_an_older_ocspd_read_as_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Version 1 of the outbox: no kind byte; serials mean a status change, none the issuer.
    let v1 = |time: i64, serials: &[Serial]| {
        let mut v = vec![1u8];
        v.extend_from_slice(&time.to_be_bytes());
        v.extend_from_slice(&issuer(1).0);
        v.extend_from_slice(&(serials.len() as u32).to_be_bytes());
        for s in serials {
            v.push(s.as_bytes().len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v
    };
    let cf = store.cf(CF_OUTBOX).unwrap();
    store.db.put_cf(cf, 0u64.to_be_bytes(), v1(7, &[serial(3), serial(4)])).unwrap();
    store.db.put_cf(cf, 1u64.to_be_bytes(), v1(8, &[])).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.feed_head(), 2, "numbering goes on after the old events");
    let got = store.changes(0, 10).unwrap();
    assert_eq!(
        got,
        vec![
            Change {
                seq: 0,
                time: 7,
                issuer: issuer(1),
                kind: ChangeKind::Status,
                serials: vec![serial(3), serial(4)]
            },
            Change { seq: 1, time: 8, issuer: issuer(1), kind: ChangeKind::Signer, serials: vec![] },
        ]
    );
}
