//! A fleet node's replica: this database holds what the node serves, copied from the fleet's
//! shared database (PostgreSQL) by following its change feed in order.
//!
//! A replica never numbers changes of its own: each change is written here under the number
//! it has in the shared feed, in the same atomic batch as the records it brought, so the local
//! feed is a copy of the shared one. Cursors (purge targets, CRLs) then mean the same on every
//! node, and the in-process followers (memory tier, flights, pre-signer) apply a change only
//! once the records it names are here.

use crate::error::Db;
use crate::responses::{response_key, response_key_of};
use crate::{
    status_key, ChangeKind, IssuerRecord, Mirrored, StatusRecord, Store, StoreError, StoredCrl, StoredResponse,
    CF_CRLS, CF_ISSUERS, CF_META, CF_OUTBOX, CF_RESPONSES, CF_STATUS,
};
use ocsp_proto::{HashAlg, IssuerKey, Serial};
use rocksdb::WriteBatch;
use std::sync::atomic::Ordering;

const MIRROR_KEY: &[u8] = b"fleet-mirror";

/// A range delete of everything whose key starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

impl Store {
    /// Whether this database is a fleet replica.
    pub fn is_mirror(&self) -> bool {
        self.mirror.load(Ordering::SeqCst)
    }

    /// Refuses a write of this node's own on a replica: the fleet's database takes them.
    pub(crate) fn own_write(&self) -> Result<(), StoreError> {
        if self.is_mirror() {
            return Err(StoreError::Replica(
                "this node's database is a fleet replica; changes are made in the fleet's database".into(),
            ));
        }
        Ok(())
    }

    /// Opens this database as a fleet replica: from now on only [`Store::apply_mirrored`]
    /// adds changes. A database that served alone before cannot become a replica (its own
    /// changes would collide with the shared numbers): it must be empty or a replica already.
    pub fn become_mirror(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        if self.db.get_cf(meta, MIRROR_KEY).db()?.is_none() {
            let has_data = [CF_ISSUERS, CF_STATUS, CF_OUTBOX]
                .iter()
                .map(|cf| Ok(self.db.iterator_cf(self.cf(cf)?, rocksdb::IteratorMode::Start).next().is_some()))
                .collect::<Result<Vec<bool>, StoreError>>()?;
            if has_data.iter().any(|b| *b) || self.feed_head() > 0 {
                return Err(StoreError::Replica(
                    "this data folder served on its own; a fleet node needs an empty one (it copies the fleet's state)"
                        .into(),
                ));
            }
            self.noted(self.db.put_cf_opt(meta, MIRROR_KEY, b"1", &crate::synced()))?;
        }
        self.mirror.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the replica holds a copy (false: empty, or a copy was interrupted).
    pub fn mirror_ready(&self) -> Result<bool, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_META)?, b"fleet-copied").db()?.is_some())
    }

    /// Empties the replica before a copy of the shared state (a new node, or one that fell
    /// behind what the shared feed still holds).
    pub fn mirror_clear(&self) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = WriteBatch::default();
        for cf in [CF_ISSUERS, CF_STATUS, CF_RESPONSES, CF_OUTBOX, CF_CRLS] {
            batch.delete_range_cf(self.cf(cf)?, [0u8].as_slice(), [0xffu8; 80].as_slice());
        }
        batch.delete_cf(self.cf(CF_META)?, b"fleet-copied");
        self.commit(batch, true)
    }

    /// Writes part of a copy of the shared state (not synced; [`Store::mirror_copied`] is).
    pub fn mirror_load(
        &self,
        issuers: &[(IssuerKey, IssuerRecord)],
        statuses: &[(IssuerKey, Serial, StatusRecord)],
        responses: &[(IssuerKey, Serial, HashAlg, StoredResponse)],
        crls: &[(IssuerKey, StoredCrl)],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, record) in issuers {
            batch.put_cf(self.cf(CF_ISSUERS)?, key.0, record.encode()?);
        }
        let status_cf = self.cf(CF_STATUS)?;
        for (issuer, serial, record) in statuses {
            batch.put_cf(status_cf, status_key(issuer, serial), record.encode());
        }
        let resp_cf = self.cf(CF_RESPONSES)?;
        for (issuer, serial, alg, resp) in responses {
            batch.put_cf(resp_cf, response_key(issuer, serial, *alg), resp.encode());
        }
        for (issuer, crl) in crls {
            batch.put_cf(self.cf(CF_CRLS)?, crate::crls::crl_key(issuer, crl.shard), crl.encode());
        }
        self.commit(batch, false)
    }

    /// Ends a copy: everything up to change `next` (exclusive) of the shared feed is here;
    /// the feed goes on from `next`. Synced, with everything written before it.
    pub fn mirror_copied(&self, next: u64) -> Result<(), StoreError> {
        self.db.flush_wal(true).db()?;
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, b"fleet-copied", next.to_be_bytes());
        batch.put_cf(self.cf(CF_META)?, b"purge-next", next.to_be_bytes());
        self.commit(batch, true)?;
        self.feed_seq.store(next, Ordering::SeqCst);
        let mut head = self.head.next.lock().unwrap_or_else(|p| p.into_inner());
        *head = next;
        Ok(())
    }

    /// Applies changes of the shared feed, in order, starting exactly at this replica's head,
    /// in one durable batch; then wakes the followers.
    pub fn apply_mirrored(&self, items: &[Mirrored]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut next = self.feed_seq.load(Ordering::SeqCst);
        let mut batch = WriteBatch::default();
        let (status_cf, resp_cf, outbox) = (self.cf(CF_STATUS)?, self.cf(CF_RESPONSES)?, self.cf(CF_OUTBOX)?);
        // Status records as they stand in this batch, for the responses' source check.
        let mut pending: std::collections::HashMap<Vec<u8>, [u8; crate::RECORD_LEN]> = std::collections::HashMap::new();
        // Only a batch with responses in it checks their sources against it.
        let responses_follow = items.iter().any(|i| !i.responses.is_empty());
        let mut last = None;
        for item in items {
            let Some(change) = &item.change else { continue };
            if change.seq != next {
                return Err(StoreError::Replica(format!("change {} applied where {next} is next", change.seq)));
            }
            let issuer = change.issuer;
            let statuses = item.statuses.iter().map(|(s, r)| (s, r));
            let written =
                self.put_statuses_in_order(&mut batch, &issuer, statuses, change.kind == ChangeKind::Status)?;
            if responses_follow {
                pending.extend(written);
            }
            if let Some(record) = &item.issuer {
                batch.put_cf(self.cf(CF_ISSUERS)?, issuer.0, record.encode()?);
            }
            if item.drop_responses {
                batch.delete_range_cf(resp_cf, issuer.0.as_slice(), prefix_end(&issuer.0).as_slice());
            }
            // In key order, as the statuses (see `put_statuses_in_order`).
            let mut puts = Vec::with_capacity(item.responses.len());
            for (serial, alg, resp) in &item.responses {
                let key = status_key(&issuer, serial);
                let current = match pending.get(&key) {
                    Some(r) => Some(*r),
                    None => self.db.get_pinned_cf(status_cf, &key).db()?.and_then(|v| v.as_ref().try_into().ok()),
                };
                if current.is_some_and(|c| c == resp.source) {
                    puts.push((response_key_of(key, *alg), resp));
                }
            }
            puts.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, resp) in puts {
                batch.put_cf(resp_cf, key, resp.encode());
            }
            if let Some(crl) = &item.crl {
                let stored = self.crl(&issuer, crl.shard)?;
                if stored.is_none_or(|s| s.number < crl.number) {
                    batch.put_cf(self.cf(CF_CRLS)?, crate::crls::crl_key(&issuer, crl.shard), crl.encode());
                }
            }
            batch.put_cf(outbox, change.seq.to_be_bytes(), change.encode());
            next = change.seq + 1;
            last = Some(change);
        }
        self.commit(batch, true)?;
        self.feed_seq.store(next, Ordering::SeqCst);
        if let Some(change) = last {
            self.published(change);
        }
        Ok(())
    }

    /// Every issuer record with its key (for a copy).
    pub fn issuer_records(&self) -> Result<Vec<(IssuerKey, IssuerRecord)>, StoreError> {
        let cf = self.cf(CF_ISSUERS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.db()?;
            let key = IssuerKey(k.as_ref().try_into().map_err(|_| StoreError::Corrupt("issuer key".into()))?);
            out.push((key, IssuerRecord::decode(&v)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::AuditEntry;
    use crate::Change;

    fn issuer() -> IssuerKey {
        IssuerKey([7; 64])
    }

    fn serial(n: u8) -> Serial {
        Serial::from_int_bytes(&[n]).unwrap()
    }

    fn change(seq: u64, kind: ChangeKind, serials: Vec<Serial>) -> Option<Change> {
        Some(Change { seq, time: 1, issuer: issuer(), kind, serials })
    }

    #[test]
    fn a_replica_takes_changes_in_shared_order_and_keeps_only_current_responses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.become_mirror().unwrap();
        store.mirror_copied(10).unwrap();
        let good = StatusRecord::good(100, 1);
        let revoked = match good.revoke(5, ocsp_proto::RevocationReason::KeyCompromise, 6) {
            crate::RevokeOutcome::Revoked(r) => r,
            other => panic!("{other:?}"),
        };
        let signed_from = |rec: &StatusRecord| StoredResponse {
            this_update: 1,
            next_update: 2,
            produced_at: 1,
            source: rec.encode(),
            der: vec![1],
        };
        // A gap is refused.
        let early = Mirrored { change: change(11, ChangeKind::Recorded, vec![serial(1)]), ..Default::default() };
        assert!(matches!(store.apply_mirrored(&[early]), Err(StoreError::Replica(_))));
        let items = vec![
            Mirrored {
                change: change(10, ChangeKind::Recorded, vec![serial(1)]),
                statuses: vec![(serial(1), good)],
                ..Default::default()
            },
            Mirrored {
                change: change(11, ChangeKind::Signed, vec![serial(1)]),
                responses: vec![(serial(1), HashAlg::Sha1, signed_from(&good))],
                ..Default::default()
            },
            Mirrored {
                change: change(12, ChangeKind::Status, vec![serial(1)]),
                statuses: vec![(serial(1), revoked)],
                ..Default::default()
            },
            // Signed from the superseded status: never kept.
            Mirrored {
                change: change(13, ChangeKind::Signed, vec![serial(1)]),
                responses: vec![(serial(1), HashAlg::Sha256, signed_from(&good))],
                ..Default::default()
            },
        ];
        store.apply_mirrored(&items).unwrap();
        assert_eq!(store.feed_head(), 14);
        assert_eq!(store.status(&issuer(), &serial(1)).unwrap(), Some(revoked));
        assert!(store.response(&issuer(), &serial(1), HashAlg::Sha1).unwrap().is_none(), "dropped by the revocation");
        assert!(store.response(&issuer(), &serial(1), HashAlg::Sha256).unwrap().is_none(), "signed from an old status");
        assert_eq!(store.changes(10, 10).unwrap().len(), 4);
        // Its own writes are refused: the numbers belong to the shared feed.
        let own = store.record_issued(&issuer(), &[(serial(2), 100)], 7, AuditEntry::default());
        assert!(matches!(own, Err(StoreError::Replica(_))), "{own:?}");
        assert!(store.status(&issuer(), &serial(2)).unwrap().is_none());
    }

    #[test]
    fn records_written_in_key_order_keep_the_feed_order_of_each_certificate() {
        // Serials out of key order, one of them twice in one change: the later record wins
        // (as it would unsorted), and every revoked certificate loses both its responses.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.become_mirror().unwrap();
        store.mirror_copied(0).unwrap();
        let good = StatusRecord::good(100, 1);
        let revoked = |at| match good.revoke(at, ocsp_proto::RevocationReason::KeyCompromise, at) {
            crate::RevokeOutcome::Revoked(r) => r,
            other => panic!("{other:?}"),
        };
        let serials: Vec<Serial> = [9u8, 3, 200, 1, 77].iter().map(|n| serial(*n)).collect();
        let signed = |s: &Serial, alg| {
            (
                s.clone(),
                alg,
                StoredResponse { this_update: 1, next_update: 2, produced_at: 1, source: good.encode(), der: vec![1] },
            )
        };
        let items = vec![
            Mirrored {
                change: change(0, ChangeKind::Recorded, serials.clone()),
                statuses: serials.iter().map(|s| (s.clone(), good)).collect(),
                ..Default::default()
            },
            Mirrored {
                change: change(1, ChangeKind::Signed, serials.clone()),
                responses: serials.iter().rev().flat_map(|s| HashAlg::ALL.map(|a| signed(s, a))).collect(),
                ..Default::default()
            },
            Mirrored {
                change: change(2, ChangeKind::Status, vec![serial(200), serial(3), serial(200)]),
                statuses: vec![(serial(200), revoked(5)), (serial(3), revoked(6)), (serial(200), revoked(7))],
                ..Default::default()
            },
        ];
        store.apply_mirrored(&items).unwrap();
        assert_eq!(store.status(&issuer(), &serial(200)).unwrap(), Some(revoked(7)));
        assert_eq!(store.status(&issuer(), &serial(3)).unwrap(), Some(revoked(6)));
        for s in &serials {
            for alg in HashAlg::ALL {
                let kept = store.response(&issuer(), s, alg).unwrap().is_some();
                let revoked = *s == serial(200) || *s == serial(3);
                assert_eq!(kept, !revoked, "serial {s} {alg:?}");
            }
        }
        assert_eq!(store.status(&issuer(), &serial(77)).unwrap(), Some(good));
    }

    #[test]
    fn a_data_folder_that_served_alone_cannot_become_a_replica() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.record_issued(&issuer(), &[(serial(1), 100)], 1, AuditEntry::default()).unwrap();
        assert!(matches!(store.become_mirror(), Err(StoreError::Replica(_))));
    }
}
