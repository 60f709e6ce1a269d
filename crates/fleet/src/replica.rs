//! Following the shared feed into this node's replica, and copying the whole state when the
//! replica is new (or fell behind what the shared feed still holds).

use crate::carried::Carried;
use crate::pg::Pg;
use crate::responses::alg_of;
use ocsp_proto::{IssuerKey, Serial};
use ocsp_records::{Change, ChangeKind, IssuerRecord, Mirrored, StatusRecord, StoreError, StoredCrl, StoredResponse};
use ocsp_store::Store;
use postgres::{Client, IsolationLevel};

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
