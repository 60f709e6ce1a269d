//! The fleet's truth in PostgreSQL: every admin change is one transaction (status, invalidated
//! responses, change record, audit entry), acknowledged only after commit.
//!
//! Every writing transaction first locks the one row of `feed_head`, then takes its change
//! numbers from it: writers are serialised, so changes commit in number order, a reader never
//! sees change n+1 before change n, and a rolled-back transaction leaves no gap. The read-
//! modify-write of statuses is then as safe as under the single node's write lock. A bulk
//! revocation may read before it takes the lock, and then uses what it read only if no change
//! committed since names one of its certificates (see `untouched_since`).

use crate::carried;
use crate::pg::{Pg, NOW_MS};
use ocsp_domain::storage::StatusStore;
use ocsp_proto::{AnswerKey, IssuerKey, RevocationReason, Serial};
use ocsp_records::{
    AuditEntry, AuditFilter, BulkRevocation, Change, ChangeKind, Issued, IssuerRecord, ResponseEntry, Revocation,
    RevokeOutcome, StatusRecord, StoreError, UnholdOutcome,
};
use ocsp_store::Store;
use postgres::{Client, GenericClient, IsolationLevel, Transaction};
use std::sync::Arc;

/// The `kind` column of a change (as the store encodes it).
pub(crate) fn kind_code(kind: ChangeKind) -> i16 {
    i16::from(kind.code())
}

/// A writing transaction holding the feed lock.
pub(crate) struct Writer<'a> {
    pub(crate) tx: Transaction<'a>,
    /// The number the next change gets (read under the lock).
    next: i64,
    appended: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn begin(c: &'a mut Client) -> Result<Writer<'a>, postgres::Error> {
        let mut tx = c.transaction()?;
        let next: i64 = tx.query_one("SELECT next FROM feed_head FOR UPDATE", &[])?.get(0);
        Ok(Writer { tx, next, appended: false })
    }

    /// Adds a change; returns it with its number.
    pub(crate) fn change(
        &mut self,
        issuer: &IssuerKey,
        kind: ChangeKind,
        serials: Vec<Serial>,
        time: i64,
    ) -> Result<Change, postgres::Error> {
        self.change_carrying(issuer, kind, serials, time, None)
    }

    /// Adds a change that carries the records it wrote (encoded by [`crate::carried`]).
    pub(crate) fn change_carrying(
        &mut self,
        issuer: &IssuerKey,
        kind: ChangeKind,
        serials: Vec<Serial>,
        time: i64,
        records: Option<Vec<u8>>,
    ) -> Result<Change, postgres::Error> {
        let change = Change { seq: self.next as u64, time, issuer: *issuer, kind, serials };
        self.tx.execute(
            &format!(
                "INSERT INTO changes (seq, issuer_key, kind, at_ms, body, records) VALUES ($1, $2, $3, {NOW_MS}, $4, $5)"
            ),
            &[&self.next, &&issuer.0[..], &kind_code(kind), &change.encode(), &records],
        )?;
        self.next += 1;
        self.appended = true;
        Ok(change)
    }

    pub(crate) fn audit(&mut self, entry: &AuditEntry) -> Result<(), postgres::Error> {
        let body = entry.encode().unwrap_or_default();
        self.tx.execute("INSERT INTO audit (at, entry) VALUES ($1, $2)", &[&entry.time, &body])?;
        Ok(())
    }

    /// Commits: durable (synchronous_commit, see deploy/) when this returns.
    pub(crate) fn commit(mut self) -> Result<(), postgres::Error> {
        if self.appended {
            self.tx.execute("UPDATE feed_head SET next = $1", &[&self.next])?;
            self.tx.execute("SELECT pg_notify('ocspd_feed', $1)", &[&self.next.to_string()])?;
        }
        self.tx.commit()
    }
}

fn bytes_of(serials: &[Serial]) -> Vec<Vec<u8>> {
    serials.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn serial_of(b: &[u8]) -> Result<Serial, StoreError> {
    Serial::from_int_bytes(b).map_err(|e| StoreError::Corrupt(format!("serial in the fleet database: {e}")))
}

/// From this many serials on, a bulk revocation reads their statuses before it takes the feed
/// lock (see [`FleetStore::revoke_batch`]).
const READ_AHEAD_FROM: usize = 1_000;
/// Changes committed between that read and the lock that are checked for overlap; past this
/// many the statuses are read again under the lock.
const READ_AHEAD_CHANGES: i64 = 64;

/// The status records of `serials` as they stand, with the feed's head they stand at (one
/// snapshot), read outside the feed lock.
fn read_ahead(c: &mut Client, issuer: &IssuerKey, serials: &[Serial]) -> Result<(i64, Found), postgres::Error> {
    let mut tx = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    let head: i64 = tx.query_one("SELECT next FROM feed_head", &[])?.get(0);
    let found = current(&mut tx, issuer, serials)?;
    tx.commit()?;
    Ok((head, found))
}

/// Whether no change committed from `head` to the writer's own position touched a status of
/// `serials` of `issuer` (so what was read at `head` is what stands now). Every write of a
/// status names its serials in a `Recorded` or `Status` change, in the same transaction.
fn untouched_since(
    w: &mut Writer<'_>,
    head: i64,
    issuer: &IssuerKey,
    serials: &[Serial],
) -> Result<bool, postgres::Error> {
    if w.next == head {
        return Ok(true);
    }
    if head > w.next || w.next - head > READ_AHEAD_CHANGES {
        return Ok(false);
    }
    let rows =
        w.tx.query("SELECT seq, issuer_key, kind, body FROM changes WHERE seq >= $1 AND seq < $2", &[&head, &w.next])?;
    if rows.len() as i64 != w.next - head {
        return Ok(false);
    }
    let ours: std::collections::HashSet<&[u8]> = serials.iter().map(Serial::as_bytes).collect();
    let statuses = [kind_code(ChangeKind::Recorded), kind_code(ChangeKind::Status)];
    for row in rows {
        if row.get::<_, &[u8]>(1) != &issuer.0[..] || !statuses.contains(&row.get::<_, i16>(2)) {
            continue;
        }
        let Ok(change) = Change::decode(row.get::<_, i64>(0) as u64, row.get::<_, &[u8]>(3)) else { return Ok(false) };
        if change.serials.iter().any(|s| ours.contains(s.as_bytes())) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Encoded status records, in the order of the serials asked for (None: not recorded).
type Found = Vec<Option<Vec<u8>>>;

/// The status records of `serials` of `issuer` as they stand, in order.
fn current(c: &mut impl GenericClient, issuer: &IssuerKey, serials: &[Serial]) -> Result<Found, postgres::Error> {
    let rows = c.query(
        // A join with the list, not `serial = ANY(list)`: PostgreSQL then probes the primary
        // key once per serial (see `pg::SESSION`).
        "SELECT st.serial, st.record FROM unnest($2::bytea[]) AS t(s) \
         JOIN statuses st ON st.issuer_key = $1 AND st.serial = t.s",
        &[&&issuer.0[..], &bytes_of(serials)],
    )?;
    let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(serials.iter().map(|s| found.get(s.as_bytes()).cloned()).collect())
}

fn decode_all(found: Vec<Option<Vec<u8>>>) -> Result<Vec<Option<StatusRecord>>, StoreError> {
    found.into_iter().map(|r| r.map(|b| StatusRecord::decode(&b)).transpose()).collect()
}

/// Writes changed status records and drops their responses.
fn write_statuses(
    tx: &mut Transaction<'_>,
    issuer: &IssuerKey,
    changed: &[(Serial, StatusRecord)],
) -> Result<(), postgres::Error> {
    let serials: Vec<Vec<u8>> = changed.iter().map(|(s, _)| s.as_bytes().to_vec()).collect();
    let records: Vec<Vec<u8>> = changed.iter().map(|(_, r)| r.encode().to_vec()).collect();
    tx.execute(
        "UPDATE statuses SET record = t.r FROM unnest($2::bytea[], $3::bytea[]) AS t(s, r) \
         WHERE statuses.issuer_key = $1 AND statuses.serial = t.s",
        &[&&issuer.0[..], &serials, &records],
    )?;
    tx.execute(
        "DELETE FROM responses r USING unnest($2::bytea[]) AS t(s) WHERE r.issuer_key = $1 AND r.serial = t.s",
        &[&&issuer.0[..], &serials],
    )?;
    Ok(())
}

/// The statuses, issuers and audit record in PostgreSQL, with this node's replica for what
/// may be read locally (counts, export).
pub struct FleetStore {
    pg: Pg,
    /// Reads outside a writing transaction: a connection of their own, so they never wait
    /// for a write (nor a write for them).
    reads: Pg,
    local: Arc<Store>,
    /// Set when the last status read came from the replica (PostgreSQL unreachable).
    read_note: std::sync::Mutex<Option<String>>,
}

impl FleetStore {
    pub(crate) fn new(pg: Pg, reads: Pg, local: Arc<Store>) -> FleetStore {
        FleetStore { pg, reads, local, read_note: std::sync::Mutex::new(None) }
    }

    /// Runs one writing transaction; a failure changes nothing (the transaction rolls back).
    fn write<T>(&self, mut f: impl FnMut(&mut Writer<'_>) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        self.pg.with(|c| {
            let mut w = Writer::begin(c)?;
            let out = f(&mut w)?;
            w.commit()?;
            Ok(out)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn revoke_batch(
        &self,
        issuer: &IssuerKey,
        serials: &[Serial],
        time: i64,
        reason: RevocationReason,
        now: i64,
        dry_run: bool,
        audit: AuditEntry,
    ) -> Result<Revocation, StoreError> {
        // A bulk batch reads its statuses before taking the feed lock, while the batch before
        // it is being written (a third of the time it held the lock in fleet_mass_revocation_3m);
        // under the lock it checks that no change since touched them, else reads again.
        let mut ahead = if serials.len() >= READ_AHEAD_FROM {
            self.reads.with(|c| read_ahead(c, issuer, serials)).ok()
        } else {
            None
        };
        self.pg.with(|c| {
            let mut w = Writer::begin(c)?;
            let mut audit = audit.clone();
            let found = match ahead.take() {
                Some((head, found)) if untouched_since(&mut w, head, issuer, serials)? => found,
                _ => current(&mut w.tx, issuer, serials)?,
            };
            let mut plan = match decode_all(found) {
                Ok(cur) => Revocation::plan(serials, cur, time, reason, now),
                Err(e) => return Ok(Err(e)),
            };
            if dry_run || plan.changed.is_empty() {
                return Ok(Ok(plan));
            }
            write_statuses(&mut w.tx, issuer, &plan.changed)?;
            audit.serials.extend(plan.changed.iter().map(|(s, _)| s.to_string()));
            let changed: Vec<Serial> = plan.changed.iter().map(|(s, _)| s.clone()).collect();
            let records = carried::statuses(plan.changed.iter().map(|(s, r)| (s, r)));
            let change = w.change_carrying(issuer, ChangeKind::Status, changed, now, Some(records))?;
            w.audit(&audit)?;
            w.commit()?;
            plan.change = Some(change.seq);
            Ok(Ok(plan))
        })?
    }
}

fn decode_issuer(b: &[u8]) -> Result<IssuerRecord, StoreError> {
    IssuerRecord::decode(b)
}

fn upsert_issuer(tx: &mut Transaction<'_>, key: &IssuerKey, record: &IssuerRecord) -> Result<(), postgres::Error> {
    let body = record.encode().unwrap_or_default();
    tx.execute(
        "INSERT INTO issuers (issuer_key, name, record) VALUES ($1, $2, $3) \
         ON CONFLICT (issuer_key) DO UPDATE SET name = EXCLUDED.name, record = EXCLUDED.record",
        &[&&key.0[..], &record.name, &body],
    )?;
    Ok(())
}

impl StatusStore for FleetStore {
    fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        let rows = self.pg.with(|c| c.query("SELECT record FROM issuers ORDER BY name", &[]))?;
        rows.iter().map(|r| decode_issuer(r.get::<_, &[u8]>(0))).collect()
    }

    fn put_issuer(&self, key: &IssuerKey, record: &IssuerRecord, audit: AuditEntry) -> Result<Change, StoreError> {
        self.write(|w| {
            upsert_issuer(&mut w.tx, key, record)?;
            let change = w.change(key, ChangeKind::Issuer, Vec::new(), audit.time)?;
            w.audit(&audit)?;
            Ok(change)
        })
    }

    fn put_issuer_and_purge(
        &self,
        key: &IssuerKey,
        record: &IssuerRecord,
        drop_responses: bool,
        time: i64,
        audit: AuditEntry,
    ) -> Result<Change, StoreError> {
        self.write(|w| {
            upsert_issuer(&mut w.tx, key, record)?;
            if drop_responses {
                w.tx.execute("DELETE FROM responses WHERE issuer_key = $1", &[&&key.0[..]])?;
            }
            let change = w.change(key, ChangeKind::Signer, Vec::new(), time)?;
            w.audit(&audit)?;
            Ok(change)
        })
    }

    fn record_certificates(
        &self,
        issuer: &IssuerKey,
        certs: &[Issued],
        now: i64,
        mut audit: AuditEntry,
    ) -> Result<(usize, Option<u64>), StoreError> {
        let serials: Vec<Vec<u8>> = certs.iter().map(|c| c.serial.as_bytes().to_vec()).collect();
        let records: Vec<Vec<u8>> =
            certs.iter().map(|c| StatusRecord::issued(c.not_after, now, c.ca).encode().to_vec()).collect();
        self.pg.with(|c| {
            let mut w = Writer::begin(c)?;
            let rows = w.tx.query(
                "INSERT INTO statuses (issuer_key, serial, record) \
                 SELECT $1, t.s, t.r FROM unnest($2::bytea[], $3::bytea[]) AS t(s, r) \
                 ON CONFLICT DO NOTHING RETURNING serial, record",
                &[&&issuer.0[..], &serials, &records],
            )?;
            let mut new = Vec::with_capacity(rows.len());
            for row in rows {
                if let (Ok(s), Ok(r)) =
                    (serial_of(row.get::<_, &[u8]>(0)), StatusRecord::decode(row.get::<_, &[u8]>(1)))
                {
                    new.push((s, r));
                }
            }
            if new.is_empty() {
                return Ok((0, None));
            }
            let count = new.len();
            audit.serials.extend(new.iter().map(|(s, _)| s.to_string()));
            let records = carried::statuses(new.iter().map(|(s, r)| (s, r)));
            let new = new.into_iter().map(|(s, _)| s).collect();
            let change = w.change_carrying(issuer, ChangeKind::Recorded, new, now, Some(records))?;
            w.audit(&audit)?;
            w.commit()?;
            Ok((count, Some(change.seq)))
        })
    }

    fn revoke(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        time: i64,
        reason: RevocationReason,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(RevokeOutcome, Option<u64>), StoreError> {
        let r = self.revoke_batch(issuer, std::slice::from_ref(serial), time, reason, now, false, audit)?;
        Ok((r.first, r.change))
    }

    fn revoke_many(
        &self,
        issuer: &IssuerKey,
        serials: &[Serial],
        time: i64,
        reason: RevocationReason,
        now: i64,
        dry_run: bool,
        audit: AuditEntry,
    ) -> Result<BulkRevocation, StoreError> {
        let r = self.revoke_batch(issuer, serials, time, reason, now, dry_run, audit)?;
        Ok(BulkRevocation { summary: r.summary, changed: r.changed, change: r.change })
    }

    fn unhold(
        &self,
        issuer: &IssuerKey,
        serial: &Serial,
        now: i64,
        mut audit: AuditEntry,
    ) -> Result<UnholdOutcome, StoreError> {
        self.pg.with(|c| {
            let mut w = Writer::begin(c)?;
            let found = current(&mut w.tx, issuer, std::slice::from_ref(serial))?;
            let current = match decode_all(found) {
                Ok(mut v) => v.pop().flatten(),
                Err(e) => return Ok(Err(e)),
            };
            let Some(current) = current else { return Ok(Ok(UnholdOutcome::NotIssued)) };
            match current.unheld(now) {
                Some(record) => {
                    write_statuses(&mut w.tx, issuer, &[(serial.clone(), record)])?;
                    audit.serials.push(serial.to_string());
                    let records = carried::statuses([(serial, &record)]);
                    let change =
                        w.change_carrying(issuer, ChangeKind::Status, vec![serial.clone()], now, Some(records))?;
                    w.audit(&audit)?;
                    w.commit()?;
                    Ok(Ok(UnholdOutcome::Lifted { record, change: change.seq }))
                }
                None => Ok(Ok(UnholdOutcome::NotOnHold(current))),
            }
        })?
    }

    fn status(&self, issuer: &IssuerKey, serial: &Serial) -> Result<Option<StatusRecord>, StoreError> {
        Ok(self.statuses(&[(*issuer, serial.clone())])?.pop().flatten())
    }

    fn statuses(&self, items: &[(IssuerKey, Serial)]) -> Result<Vec<Option<StatusRecord>>, StoreError> {
        // Grouped by issuer: one query each.
        let mut out = vec![None; items.len()];
        let mut issuers: Vec<IssuerKey> = items.iter().map(|(i, _)| *i).collect();
        issuers.sort();
        issuers.dedup();
        for issuer in issuers {
            let idx: Vec<usize> = (0..items.len()).filter(|i| items[*i].0 == issuer).collect();
            let serials: Vec<Serial> = idx.iter().map(|i| items[*i].1.clone()).collect();
            let found = match self.reads.with(|c| current(c, &issuer, &serials)) {
                Ok(found) => decode_all(found)?,
                // PostgreSQL is out of reach: the replica answers, and says so.
                Err(StoreError::Unreachable(e)) => {
                    let local = self.local.statuses(&idx.iter().map(|i| items[*i].clone()).collect::<Vec<_>>())?;
                    *self.read_note.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                        "read from this node's replica, which has applied the fleet's changes up to {}: the fleet database is unreachable ({e}), so later changes may be missing",
                        self.local.feed_head()
                    ));
                    local
                }
                Err(e) => return Err(e),
            };
            for (i, rec) in idx.into_iter().zip(found) {
                out[i] = rec;
            }
        }
        Ok(out)
    }

    fn read_note(&self) -> Option<String> {
        self.read_note.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn count(&self, issuer: &IssuerKey) -> Result<(u64, u64), StoreError> {
        self.local.count(issuer)
    }

    fn revoked_serials(&self, issuer: &IssuerKey) -> Result<Vec<Serial>, StoreError> {
        self.local.revoked_serials(issuer)
    }

    fn record_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.pg.with(|c| {
            let body = audit.encode().unwrap_or_default();
            c.execute("INSERT INTO audit (at, entry) VALUES ($1, $2)", &[&audit.time, &body])?;
            Ok(())
        })
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        let mut before = filter.before.map_or(i64::MAX, |b| b as i64);
        loop {
            let rows = self.pg.with(|c| {
                // Pages of 100 rows: an entry is stored whole (a reason may be kilobytes).
                c.query("SELECT seq, entry FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT 100", &[&before])
            })?;
            let Some(last) = rows.last() else { return Ok(out) };
            before = last.get(0);
            for row in &rows {
                let mut entry = AuditEntry::decode(row.get::<_, &[u8]>(1))?;
                entry.seq = row.get::<_, i64>(0) as u64;
                if filter.since.is_some_and(|s| entry.time < s) {
                    return Ok(out);
                }
                if filter.matches(&entry) {
                    if filter.limit > 0 {
                        entry.clip_for_listing();
                    }
                    out.push(entry);
                    if filter.limit > 0 && out.len() >= filter.limit {
                        return Ok(out);
                    }
                }
            }
        }
    }

    fn scan_responses(&self, after: Option<&AnswerKey>, limit: usize) -> Result<Vec<ResponseEntry>, StoreError> {
        self.local.scan_responses(after, limit)
    }

    fn feed_head(&self) -> u64 {
        self.local.feed_head()
    }

    fn committed_head(&self) -> Result<u64, StoreError> {
        let row = self.reads.with(|c| c.query_one("SELECT next FROM feed_head", &[]))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}
