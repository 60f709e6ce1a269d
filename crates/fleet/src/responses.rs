//! Signed responses in fleet mode, and the feed the purge fan-out follows.
//!
//! The node holding the signer lease pre-signs from its replica and writes the responses to
//! PostgreSQL, each only while the status it was signed from is still the current one there
//! and only while the lease is still this node's (both checked in the writing transaction,
//! under the feed lock, so no revocation can commit in between). A `Signed` change names
//! them, and every node copies them into its replica from the feed: every node serves the
//! same bytes.

use crate::carried;
use crate::lease::{Lease, SIGNER};
use crate::pg::{Pg, NOW_MS};
use crate::truth::{kind_code, Writer};
use ocsp_domain::storage::{ResponseStore, SignedResponse};
use ocsp_domain::ChangeFeed;
use ocsp_proto::{AnswerKey, HashAlg, IssuerKey, Serial};
use ocsp_records::{
    crl_shard_serial, Change, ChangeKind, CrlWrite, StatusCursor, StatusEntry, StatusRecord, StoreError, StoredCrl,
    StoredResponse,
};
use ocsp_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn alg_code(alg: HashAlg) -> i16 {
    match alg {
        HashAlg::Sha1 => 1,
        HashAlg::Sha256 => 2,
    }
}

pub(crate) fn alg_of(code: i16) -> Option<HashAlg> {
    match code {
        1 => Some(HashAlg::Sha1),
        2 => Some(HashAlg::Sha256),
        _ => None,
    }
}

/// Responses read from the replica, written to PostgreSQL by the signer.
pub struct FleetResponses {
    pg: Pg,
    local: Arc<Store>,
    lease: Arc<Lease>,
    node: String,
}

impl FleetResponses {
    pub(crate) fn new(pg: Pg, local: Arc<Store>, lease: Arc<Lease>, node: &str) -> FleetResponses {
        FleetResponses { pg, local, lease, node: node.to_string() }
    }
}

impl ResponseStore for FleetResponses {
    fn response(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        alg: HashAlg,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.local.response(issuer, serial, alg)
    }

    fn responses(&self, answers: &[AnswerKey]) -> Result<Vec<Option<StoredResponse>>, StoreError> {
        self.local.responses(answers)
    }

    fn put_responses_if_current(&self, items: &[SignedResponse]) -> Result<usize, StoreError> {
        self.put_responses_checked(items, &|_| true)
    }

    fn put_responses_checked(
        &self,
        items: &[SignedResponse],
        signer_current: &dyn Fn(&IssuerKey) -> bool,
    ) -> Result<usize, StoreError> {
        if items.is_empty() || !self.lease.held() {
            return Ok(0);
        }
        // One row per answer (the last one signed), grouped by issuer.
        let mut groups: HashMap<IssuerKey, HashMap<(Vec<u8>, i16), &StoredResponse>> = HashMap::new();
        for (issuer, serial, alg, resp) in items {
            groups.entry(*issuer).or_default().insert((serial.as_bytes().to_vec(), alg_code(*alg)), resp);
        }
        let applied = self.local.feed_head() as i64;
        let now = items.iter().map(|(_, _, _, r)| r.produced_at).max().unwrap_or(0);
        self.pg.with(|c| {
            let mut w = Writer::begin(c)?;
            let holds = w
                .tx
                .query_opt(
                    &format!("SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND expires_ms > {NOW_MS}"),
                    &[&SIGNER, &self.node],
                )?
                .is_some();
            if !holds {
                return Ok(0);
            }
            let mut written = 0;
            for (issuer, answers) in &groups {
                // The identity that signed is the one PostgreSQL names: no signer change of the
                // issuer is newer than what this node has applied.
                let last_signer: i64 = w
                    .tx
                    .query_one(
                        "SELECT coalesce(max(seq), -1) FROM changes WHERE issuer_key = $1 AND kind = $2",
                        &[&&issuer.0[..], &kind_code(ChangeKind::Signer)],
                    )?
                    .get(0);
                if last_signer >= applied || !signer_current(issuer) {
                    continue;
                }
                let (mut serials, mut algs, mut ders, mut sources) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for ((serial, alg), resp) in answers {
                    serials.push(serial.clone());
                    algs.push(*alg);
                    ders.push(resp.encode());
                    sources.push(resp.source.to_vec());
                }
                let rows = w.tx.query(
                    "INSERT INTO responses (issuer_key, serial, alg, response) \
                     SELECT $1, t.s, t.a, t.r FROM unnest($2::bytea[], $3::int2[], $4::bytea[], $5::bytea[]) AS t(s, a, r, src) \
                     JOIN statuses st ON st.issuer_key = $1 AND st.serial = t.s AND st.record = t.src \
                     ON CONFLICT (issuer_key, serial, alg) DO UPDATE SET response = EXCLUDED.response \
                     RETURNING serial, alg",
                    &[&&issuer.0[..], &serials, &algs, &ders, &sources],
                )?;
                written += rows.len();
                // The change carries what was written, so replicas need not read it back.
                let sent: HashMap<(&[u8], i16), &[u8]> = serials
                    .iter()
                    .zip(&algs)
                    .zip(&ders)
                    .map(|((s, a), d)| ((s.as_slice(), *a), d.as_slice()))
                    .collect();
                let mut kept = Vec::with_capacity(rows.len());
                for r in &rows {
                    let key: (&[u8], i16) = (r.get(0), r.get(1));
                    if let Some((&(serial, alg), &der)) = sent.get_key_value(&key) {
                        kept.push((serial, alg, der));
                    }
                }
                let mut named: Vec<Serial> =
                    kept.iter().filter_map(|(s, _, _)| Serial::from_int_bytes(s).ok()).collect();
                named.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                named.dedup();
                if !named.is_empty() {
                    let records = carried::responses(kept);
                    w.change_carrying(issuer, ChangeKind::Signed, named, now, Some(records))?;
                }
            }
            w.commit()?;
            Ok(written)
        })
    }

    fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError> {
        self.local.status(issuer, serial)
    }

    fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError> {
        self.local.statuses(items)
    }

    fn scan_statuses(&self, from: Option<&StatusCursor>, limit: usize) -> Result<Vec<StatusEntry>, StoreError> {
        self.local.scan_statuses(from, limit)
    }

    fn estimated_statuses(&self) -> u64 {
        self.local.estimated_statuses()
    }
}

/// The feed as the purge fan-out follows it in fleet mode: the replica's copy of the shared
/// feed, with each target's cursor kept in PostgreSQL (so whichever node delivers next goes
/// on where the last one stopped) and on the node as well.
pub struct FleetFeed {
    pg: Pg,
    local: Arc<Store>,
}

impl FleetFeed {
    pub(crate) fn new(pg: Pg, local: Arc<Store>) -> FleetFeed {
        FleetFeed { pg, local }
    }
}

impl ChangeFeed for FleetFeed {
    fn head(&self) -> u64 {
        self.local.feed_head()
    }

    fn changes(&self, from: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let local = self.local.changes(from, limit)?;
        if local.first().is_none_or(|c| c.seq == from) && (!local.is_empty() || self.local.feed_head() <= from) {
            return Ok(local);
        }
        // This replica does not hold the changes from `from` (copied afresh, or trimmed past
        // them): the fleet's feed keeps every change from the lowest purge cursor on.
        let rows = self.pg.with(|c| {
            c.query(
                "SELECT seq, body FROM changes WHERE seq >= $1 ORDER BY seq LIMIT $2",
                &[&(from as i64), &(limit as i64)],
            )
        })?;
        rows.iter().map(|r| Change::decode(r.get::<_, i64>(0) as u64, r.get::<_, &[u8]>(1))).collect()
    }

    fn wait_for_changes(&self, from: u64, timeout: Duration) -> u64 {
        self.local.wait_for_changes(from, timeout)
    }

    fn hold(&self, from: u64) {
        self.local.hold_feed(from)
    }

    fn cursor(&self, name: &str) -> Result<u64, StoreError> {
        let key = format!("purge/{name}");
        // Only the fleet's cursor says what was delivered: a node's own is what it delivered
        // itself, if anything, and a guess from it could skip purges (the database being out
        // of reach is an error here, never "this node's head").
        let shared = self.pg.with(|c| c.query_opt("SELECT next FROM cursors WHERE name = $1", &[&key]))?;
        match shared {
            Some(row) => Ok(row.get::<_, i64>(0).max(0) as u64),
            // Never delivered by any node: a target added now owes nothing from before.
            None => {
                let next = self.local.feed_head();
                self.set_cursor(name, next)?;
                Ok(next)
            }
        }
    }

    fn set_cursor(&self, name: &str, next: u64) -> Result<(), StoreError> {
        self.local.set_feed_cursor(name, next)?;
        let key = format!("purge/{name}");
        self.pg.with(|c| {
            c.execute(
                "INSERT INTO cursors (name, next) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET next = GREATEST(cursors.next, EXCLUDED.next)",
                &[&key, &(next as i64)],
            )
        })?;
        Ok(())
    }

    fn trim(&self, before: u64) -> Result<(), StoreError> {
        self.local.trim_feed(before)
    }
}

/// CRL shards in fleet mode: the signing node stores them in PostgreSQL, under the signer
/// lease and only above the stored number (checked under the feed lock); a `Crl` change
/// brings them to every replica.
pub struct FleetCrls {
    pg: Pg,
    lease: Arc<Lease>,
    node: String,
}

impl FleetCrls {
    pub(crate) fn new(pg: Pg, lease: Arc<Lease>, node: &str) -> FleetCrls {
        FleetCrls { pg, lease, node: node.to_string() }
    }
}

impl ocsp_domain::CrlStore for FleetCrls {
    fn put_crl(&self, issuer: &IssuerKey, crl: &StoredCrl, now: i64) -> Result<CrlWrite, StoreError> {
        let refused =
            || StoreError::Replica("this node does not hold the signer lease; another node signs CRLs".into());
        if !self.lease.held() {
            return Err(refused());
        }
        let shard = crl_shard_serial(crl.shard)?;
        self.pg.with(|c| {
            let mut w = Writer::begin(c)?;
            let holds =
                w.tx.query_opt(
                    &format!("SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND expires_ms > {NOW_MS}"),
                    &[&SIGNER, &self.node],
                )?
                .is_some();
            if !holds {
                return Ok(Err(refused()));
            }
            let stored = w.tx.query_opt(
                "SELECT record FROM crls WHERE issuer_key = $1 AND shard = $2 FOR UPDATE",
                &[&&issuer.0[..], &(crl.shard as i32)],
            )?;
            if let Some(row) = stored {
                match StoredCrl::decode(crl.shard, row.get::<_, &[u8]>(0)) {
                    Ok(current) => {
                        if let Some(stale) = crl.refused_over(Some(&current)) {
                            return Ok(Ok(stale));
                        }
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            w.tx.execute(
                "INSERT INTO crls (issuer_key, shard, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (issuer_key, shard) DO UPDATE SET record = EXCLUDED.record",
                &[&&issuer.0[..], &(crl.shard as i32), &crl.encode()],
            )?;
            let change = w.change(issuer, ChangeKind::Crl, vec![shard.clone()], now)?;
            w.commit()?;
            Ok(Ok(CrlWrite::Stored { change: change.seq }))
        })?
    }
}
