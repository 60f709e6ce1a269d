//! Following the shared feed into this node's replica, and copying the whole state when the
//! replica is new (or fell behind what the shared feed still holds).

use crate::carried::Carried;
use crate::pg::Pg;
use crate::responses::alg_of;
use ocsp_domain::runtime::{
    Applied, Consumer, Cursor, Kind, Read as RuntimeRead, RealTime, Retry, Runner, Source, Spec,
};
use ocsp_proto::{IssuerKey, Serial};
use ocsp_records::{Change, ChangeKind, IssuerRecord, Mirrored, StatusRecord, StoreError, StoredCrl, StoredResponse};
use ocsp_store::Store;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Changes read from PostgreSQL at a time.
const BATCH: i64 = 256;
/// Bytes of changes read at a time (past the first change).
const READ_BYTES: i64 = 32 << 20;
/// Rows per page of a copy.
const PAGE: i64 = 20_000;

/// What one read of the shared feed found.
pub(crate) enum Read {
    /// Changes to apply, in order from the replica's head.
    Changes(Vec<Mirrored>),
    /// Nothing new; the shared head.
    UpToDate(u64),
    /// The shared feed no longer holds the replica's next change: copy everything again.
    Behind,
}

fn key_of(b: &[u8]) -> Result<IssuerKey, StoreError> {
    b.try_into().map(IssuerKey).map_err(|_| StoreError::Corrupt("issuer key in the fleet database".into()))
}

fn serial_of(b: &[u8]) -> Result<Serial, StoreError> {
    Serial::from_int_bytes(b).map_err(|e| StoreError::Corrupt(format!("serial in the fleet database: {e}")))
}

/// Reads the changes from `from` on with the records they bring.
pub(crate) fn read(pg: &Pg, from: u64) -> Result<Read, StoreError> {
    pg.with(|c| Ok(read_with(c, from)))?
}

fn read_with(c: &mut Client, from: u64) -> Result<Read, StoreError> {
    let pg = |e: postgres::Error| crate::pg::unreachable(e);
    let head: i64 = c.query_one("SELECT next FROM feed_head", &[]).map_err(pg)?.get(0);
    if head as u64 <= from {
        return Ok(Read::UpToDate(head as u64));
    }
    // Up to BATCH changes, and past the first no more than READ_BYTES of them.
    let rows = c
        .query(
            "SELECT seq, body, records FROM ( \
               SELECT seq, body, records, \
                 sum(octet_length(body) + coalesce(octet_length(records), 0)) OVER (ORDER BY seq) AS upto \
               FROM changes WHERE seq >= $1 ORDER BY seq LIMIT $2) t \
             WHERE seq = $1 OR upto <= $3 ORDER BY seq",
            &[&(from as i64), &BATCH, &READ_BYTES],
        )
        .map_err(pg)?;
    if rows.first().map(|r| r.get::<_, i64>(0)) != Some(from as i64) {
        return Ok(Read::Behind);
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let change = Change::decode(row.get::<_, i64>(0) as u64, row.get::<_, &[u8]>(1))?;
        out.push(match row.get::<_, Option<&[u8]>>(2) {
            Some(records) => carried(change, records)?,
            None => bring(c, change)?,
        });
    }
    Ok(Read::Changes(out))
}

/// A change with the records its row carries.
fn carried(change: Change, records: &[u8]) -> Result<Mirrored, StoreError> {
    let mut m = Mirrored::default();
    match crate::carried::decode(records)? {
        Carried::Statuses(statuses) if matches!(change.kind, ChangeKind::Recorded | ChangeKind::Status) => {
            m.statuses = statuses;
        }
        Carried::Responses(responses) if change.kind == ChangeKind::Signed => m.responses = responses,
        _ => return Err(StoreError::Corrupt(format!("change {} carries records of another kind", change.seq))),
    }
    m.change = Some(change);
    Ok(m)
}

/// The records a change names, as they stand now (a change written before schema version 2,
/// which carries none).
fn bring(c: &mut Client, change: Change) -> Result<Mirrored, StoreError> {
    let pg = |e: postgres::Error| crate::pg::unreachable(e);
    let issuer = &change.issuer.0[..];
    let serials: Vec<Vec<u8>> = change.serials.iter().map(|s| s.as_bytes().to_vec()).collect();
    let mut m = Mirrored::default();
    match change.kind {
        ChangeKind::Recorded | ChangeKind::Status => {
            let rows = c
                .query(
                    "SELECT st.serial, st.record FROM unnest($2::bytea[]) AS t(s) \
                     JOIN statuses st ON st.issuer_key = $1 AND st.serial = t.s",
                    &[&issuer, &serials],
                )
                .map_err(pg)?;
            for r in rows {
                m.statuses.push((serial_of(r.get::<_, &[u8]>(0))?, StatusRecord::decode(r.get::<_, &[u8]>(1))?));
            }
        }
        ChangeKind::Signer | ChangeKind::Issuer => {
            let row = c.query_opt("SELECT record FROM issuers WHERE issuer_key = $1", &[&issuer]).map_err(pg)?;
            m.issuer = row.map(|r| IssuerRecord::decode(r.get::<_, &[u8]>(0))).transpose()?;
            m.drop_responses = change.kind == ChangeKind::Signer;
        }
        ChangeKind::Signed => {
            let rows = c
                .query(
                    "SELECT r.serial, r.alg, r.response FROM unnest($2::bytea[]) AS t(s) \
                     JOIN responses r ON r.issuer_key = $1 AND r.serial = t.s",
                    &[&issuer, &serials],
                )
                .map_err(pg)?;
            for r in rows {
                let Some(alg) = alg_of(r.get(1)) else { continue };
                m.responses.push((
                    serial_of(r.get::<_, &[u8]>(0))?,
                    alg,
                    StoredResponse::decode(r.get::<_, &[u8]>(2))?,
                ));
            }
        }
        ChangeKind::Crl => {
            if let Some(shard) = change.crl_shard() {
                let row = c
                    .query_opt(
                        "SELECT record FROM crls WHERE issuer_key = $1 AND shard = $2",
                        &[&issuer, &(shard as i32)],
                    )
                    .map_err(pg)?;
                m.crl = row.map(|r| StoredCrl::decode(shard, r.get::<_, &[u8]>(0))).transpose()?;
            }
        }
    }
    m.change = Some(change);
    Ok(m)
}

/// Copies the whole shared state into an emptied replica, from one snapshot; returns the
/// shared feed's head at that snapshot (the replica follows the feed from there) and how
/// many certificates it copied.
pub(crate) fn copy(pg: &Pg, local: &Store) -> Result<(u64, u64), StoreError> {
    local.mirror_clear()?;
    let head = pg.with(|c| Ok(copy_with(c, local)))??;
    local.mirror_copied(head.0)?;
    Ok(head)
}

fn copy_with(c: &mut Client, local: &Store) -> Result<(u64, u64), StoreError> {
    let pg = |e: postgres::Error| crate::pg::unreachable(e);
    let mut tx =
        c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().map_err(pg)?;
    let head: i64 = tx.query_one("SELECT next FROM feed_head", &[]).map_err(pg)?.get(0);
    let mut issuers = Vec::new();
    for r in tx.query("SELECT issuer_key, record FROM issuers", &[]).map_err(pg)? {
        issuers.push((key_of(r.get::<_, &[u8]>(0))?, IssuerRecord::decode(r.get::<_, &[u8]>(1))?));
    }
    local.mirror_load(&issuers, &[], &[], &[])?;
    // Statuses, page by page in key order.
    let (mut after_key, mut after_serial) = (Vec::<u8>::new(), Vec::<u8>::new());
    let mut certificates = 0u64;
    loop {
        let rows = tx
            .query(
                "SELECT issuer_key, serial, record FROM statuses WHERE (issuer_key, serial) > ($1, $2) \
                 ORDER BY issuer_key, serial LIMIT $3",
                &[&after_key, &after_serial, &PAGE],
            )
            .map_err(pg)?;
        let Some(last) = rows.last() else { break };
        after_key = last.get(0);
        after_serial = last.get(1);
        let mut page = Vec::with_capacity(rows.len());
        for r in &rows {
            page.push((
                key_of(r.get::<_, &[u8]>(0))?,
                serial_of(r.get::<_, &[u8]>(1))?,
                StatusRecord::decode(r.get::<_, &[u8]>(2))?,
            ));
        }
        certificates += page.len() as u64;
        local.mirror_load(&[], &page, &[], &[])?;
    }
    let (mut after_key, mut after_serial, mut after_alg) = (Vec::<u8>::new(), Vec::<u8>::new(), 0i16);
    loop {
        let rows = tx
            .query(
                "SELECT issuer_key, serial, alg, response FROM responses WHERE (issuer_key, serial, alg) > ($1, $2, $3) \
                 ORDER BY issuer_key, serial, alg LIMIT $4",
                &[&after_key, &after_serial, &after_alg, &PAGE],
            )
            .map_err(pg)?;
        let Some(last) = rows.last() else { break };
        after_key = last.get(0);
        after_serial = last.get(1);
        after_alg = last.get(2);
        let mut page = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(alg) = alg_of(r.get(2)) else { continue };
            page.push((
                key_of(r.get::<_, &[u8]>(0))?,
                serial_of(r.get::<_, &[u8]>(1))?,
                alg,
                StoredResponse::decode(r.get::<_, &[u8]>(3))?,
            ));
        }
        local.mirror_load(&[], &[], &page, &[])?;
    }
    let mut crls = Vec::new();
    for r in tx.query("SELECT issuer_key, shard, record FROM crls", &[]).map_err(pg)? {
        let shard = r.get::<_, i32>(1) as u32;
        crls.push((key_of(r.get::<_, &[u8]>(0))?, StoredCrl::decode(shard, r.get::<_, &[u8]>(2))?));
    }
    local.mirror_load(&[], &[], &[], &crls)?;
    tx.commit().map_err(pg)?;
    Ok((head as u64, certificates))
}

/// The replicator: the consumer `replica` of the feed-consumer runtime. Its source is the
/// fleet's shared feed in PostgreSQL (woken by NOTIFY, polled without one), its cursor the
/// replica's own head (which moves in the same write as the records), and a replica the shared
/// feed has moved past is copied whole again.
pub(crate) fn runner(fleet: Arc<crate::Fleet>, pg: Pg) -> Runner<Mirrored> {
    let replicator = Arc::new(Replicator { fleet, pg, listener: Mutex::new(None) });
    let mut spec = Spec::new("replica", Kind::Replica);
    spec.batch = BATCH as usize;
    spec.retry = Retry { first: Duration::from_millis(500), max: Duration::from_millis(500) };
    spec.idle = Duration::from_millis(250);
    let cursor = Arc::new(ReplicaHead(replicator.fleet.local.clone()));
    Runner::new(spec, replicator.clone(), cursor, None, replicator, Arc::new(RealTime))
}

struct Replicator {
    fleet: Arc<crate::Fleet>,
    pg: Pg,
    /// The connection that LISTENs for the shared feed's NOTIFY.
    listener: Mutex<Option<Client>>,
}

impl Source<Mirrored> for Replicator {
    fn head(&self) -> Result<u64, StoreError> {
        Ok(self.fleet.shared_head.load(Ordering::SeqCst).max(self.fleet.local.feed_head()))
    }

    fn read(&self, from: u64, _limit: usize) -> Result<RuntimeRead<Mirrored>, StoreError> {
        let fleet = &self.fleet;
        match read(&self.pg, from) {
            Ok(Read::Changes(items)) => {
                fleet.note_ok();
                if let Some(last) = items.last().and_then(|m| m.change.as_ref()) {
                    fleet.shared_head.fetch_max(last.seq + 1, Ordering::SeqCst);
                }
                Ok(RuntimeRead::Items(items))
            }
            Ok(Read::UpToDate(head)) => {
                fleet.note_ok();
                fleet.shared_head.store(head, Ordering::SeqCst);
                if fleet.local.feed_head() >= head && !fleet.caught_up.swap(true, Ordering::SeqCst) {
                    tracing::info!(head, "replica caught up with the fleet");
                }
                Ok(RuntimeRead::UpToDate(head))
            }
            Ok(Read::Behind) => Ok(RuntimeRead::Gone(fleet.shared_head.load(Ordering::SeqCst))),
            Err(e) => {
                if fleet.connected.load(Ordering::SeqCst) {
                    tracing::warn!(error = %e, "fleet database unreachable; serving this node's replica");
                }
                fleet.note_error(&e.to_string());
                *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(e)
            }
        }
    }

    fn wait(&self, _from: u64, within: Duration) {
        // A NOTIFY wakes early; without one, poll again after a while.
        let within = within.min(Duration::from_millis(250));
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if listener.is_none() {
            *listener = self.pg.connect().ok().and_then(|mut c| c.batch_execute("LISTEN ocspd_feed").ok().map(|_| c));
        }
        match listener.as_mut() {
            Some(l) => {
                if l.notifications().timeout_iter(within).next().is_err() {
                    *listener = None;
                }
            }
            None => std::thread::sleep(within),
        }
    }
}

impl Consumer<Mirrored> for Replicator {
    fn apply(&self, items: &[Mirrored]) -> Result<Applied, String> {
        if items.is_empty() {
            return Ok(Applied::Done);
        }
        ocsp_domain::failpoint::hit("replica.before_apply");
        self.fleet
            .local
            .apply_mirrored(items)
            .map_err(|e| format!("cannot apply the fleet's changes to the replica: {e}"))?;
        self.fleet.applied_changes.fetch_add(items.len() as u64, Ordering::Relaxed);
        Ok(Applied::Done)
    }

    fn resync(&self, _head: u64) -> Result<u64, String> {
        let fleet = &self.fleet;
        tracing::warn!(
            at = fleet.local.feed_head(),
            "the fleet database no longer holds this node's next change; copying everything"
        );
        match copy(&self.pg, &fleet.local) {
            Ok((head, certificates)) => {
                fleet.copies.fetch_add(1, Ordering::Relaxed);
                tracing::info!(head, certificates, "copied the fleet's state");
                Ok(fleet.local.feed_head())
            }
            Err(e) => {
                fleet.note_error(&e.to_string());
                Err(format!("copying the fleet's state: {e}"))
            }
        }
    }
}

/// The replica's cursor is its own head: it moves in the same write as what it applies.
struct ReplicaHead(Arc<Store>);

impl Cursor for ReplicaHead {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.0.feed_head()))
    }

    fn commit(&self, _next: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
}
