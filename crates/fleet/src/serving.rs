//! Which nodes may answer, and the acknowledgement that waits for them.
//!
//! A node answers `good` only while it holds its *serving lease*: a row in `nodes` renewed by
//! its heartbeat (`serving_until_ms`, on PostgreSQL's clock), counted on the node's own
//! monotonic clock only until two thirds of the lease after the renewal began, like the signer
//! and purger leases. A node that cannot renew (PostgreSQL unreachable, the node paused)
//! stops answering `good` before any other node can count it out.
//!
//! An acknowledged change `n` must be applied by every node that may answer: the acknowledging
//! node waits until each live node has reported `applied > n` (its in-process followers,
//! memory tier included, applied it). A node that has not after `ack_wait` is *fenced*: its
//! `must_reach` is raised past `n`, and it may not answer `good` again until it has applied
//! that far. The acknowledgement then waits until the node has confirmed the fence (its next
//! report) or its lease has lapsed, so when it returns, every node either applied `n` or
//! answers no `good` at all. A node whose lease lapsed comes back only once it has applied the
//! feed up to the head as it stood when it asked (read under the feed lock, so no change
//! acknowledged meanwhile can be missed).
//!
//! Purges follow the same accounting: a purge for change `n` is delivered only once every
//! live node is accounted for at `n` ([`watermark`]), so an edge that refetches after the purge
//! never finds an origin still answering from before the change.

use crate::pg::{Pg, NOW_MS};
use ocsp_records::StoreError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How an acknowledgement went beyond this node.
pub use ocsp_domain::Confirmed as Confirmation;

/// This node's serving lease, as the node sees it.
#[derive(Debug)]
pub struct Serving {
    node: String,
    lease: Duration,
    /// Until when this node may answer `good` (none: it may not).
    until: Mutex<Option<Instant>>,
    /// Why not, when it may not.
    why_not: Mutex<String>,
}

impl Serving {
    /// The serving lease of `node`, valid `lease` after each renewal.
    pub fn new(node: &str, lease: Duration) -> Serving {
        Serving {
            node: node.to_string(),
            lease,
            until: Mutex::new(None),
            why_not: Mutex::new("not yet in service (no heartbeat yet)".into()),
        }
    }

    /// None while this node may answer; otherwise why it may not.
    pub fn out_of_service(&self) -> Option<String> {
        let until = *self.until.lock().unwrap_or_else(|p| p.into_inner());
        match until {
            Some(t) if t > Instant::now() => None,
            Some(_) => Some(format!(
                "out of service: the serving lease was not renewed in time ({})",
                self.why_not.lock().unwrap_or_else(|p| p.into_inner())
            )),
            None => Some(format!("out of service: {}", self.why_not.lock().unwrap_or_else(|p| p.into_inner()))),
        }
    }

    fn stop(&self, why: String) {
        let was = self.until.lock().unwrap_or_else(|p| p.into_inner()).take();
        if was.is_some_and(|t| t > Instant::now()) {
            tracing::warn!(node = %self.node, why = %why, "this node stops answering good until it is back in service");
        }
        *self.why_not.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Notes a failure to reach the database (the lease then lapses by itself).
    pub(crate) fn note_unreachable(&self, e: &str) {
        *self.why_not.lock().unwrap_or_else(|p| p.into_inner()) = format!("fleet database unreachable: {e}");
    }

    /// The heartbeat: renews the lease in PostgreSQL and decides whether this node serves.
    /// `applied` is the first change its followers have not applied. A node coming (back)
    /// into service (its lease lapsed here or in the database, or the first renewal of this
    /// process) must first reach the feed's head as it stands now. A decision not to serve
    /// takes effect here before it is committed, so the database never says "out of service"
    /// while the node still answers.
    pub(crate) fn renew(&self, pg: &Pg, applied: u64, urls: &(String, String)) -> Result<bool, StoreError> {
        let started = Instant::now();
        let lease_ms = self.lease.as_millis() as i64;
        let applied = applied as i64;
        let serving_here = self.out_of_service().is_none();
        let (serves, must) = pg.with(|c| {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                &format!("SELECT serving_until_ms > {NOW_MS}, must_reach FROM nodes WHERE name = $1 FOR UPDATE"),
                &[&self.node],
            )?;
            let (live, mut must): (bool, i64) = row.map_or((false, 0), |r| (r.get(0), r.get(1)));
            if !(live && serving_here) {
                // Coming (back) into service: every change committed before now must be
                // applied first. FOR SHARE waits for a writer holding the feed lock, so a
                // change is either counted here or committed after this row says "live"
                // (and its acknowledgement then waits for this node).
                let head: i64 = tx.query_one("SELECT next FROM feed_head FOR SHARE", &[])?.get(0);
                must = must.max(head);
            }
            let serves = applied >= must;
            tx.execute(
                &format!(
                    "INSERT INTO nodes (name, public_url, admin_url, applied, seen_ms, serving_until_ms, must_reach, serves, serving_lease_ms) \
                     VALUES ($1, $2, $3, $4, {NOW_MS}, {NOW_MS} + $5, $6, $7, $5) \
                     ON CONFLICT (name) DO UPDATE SET public_url = EXCLUDED.public_url, admin_url = EXCLUDED.admin_url, \
                     applied = EXCLUDED.applied, seen_ms = EXCLUDED.seen_ms, serving_until_ms = EXCLUDED.serving_until_ms, \
                     must_reach = EXCLUDED.must_reach, serves = EXCLUDED.serves, serving_lease_ms = EXCLUDED.serving_lease_ms"
                ),
                &[&self.node, &urls.0, &urls.1, &applied, &lease_ms, &must, &serves],
            )?;
            if !serves {
                self.stop(format!("behind the fleet: applied {applied}, must reach {must} first"));
            }
            tx.commit()?;
            Ok((serves, must))
        })?;
        if serves {
            let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
            if until.is_none_or(|t| t <= Instant::now()) {
                tracing::info!(node = %self.node, applied, must, "this node is in service");
            }
            *until = Some(started + self.lease * 2 / 3);
        }
        Ok(serves)
    }

    /// Reports how far this node's followers applied the feed (often: acknowledgements wait
    /// for it), and takes the node out of service if an acknowledgement fenced it, before the
    /// report that says so is committed.
    pub(crate) fn report(&self, pg: &Pg, applied: u64) -> Result<(), StoreError> {
        let applied = applied as i64;
        pg.with(|c| {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                "UPDATE nodes SET applied = GREATEST(applied, $2), serves = serves AND GREATEST(applied, $2) >= must_reach \
                 WHERE name = $1 RETURNING serves, must_reach",
                &[&self.node, &applied],
            )?;
            if let Some(r) = row {
                let (serves, must): (bool, i64) = (r.get(0), r.get(1));
                if !serves {
                    self.stop(format!("fenced by an acknowledgement: applied {applied}, must reach {must} first"));
                }
            }
            tx.commit()
        })
    }

    /// Leaves service (at shutdown): acknowledgements stop waiting for this node at once.
    pub(crate) fn release(&self, pg: &Pg) {
        self.stop("stopped".into());
        let _ = pg.with(|c| {
            c.execute("UPDATE nodes SET serving_until_ms = 0, serves = false WHERE name = $1", &[&self.node])
        });
    }
}

/// One node as an acknowledgement or the purge watermark counts it.
struct NodeRow {
    name: String,
    applied: i64,
    must_reach: i64,
    serves: bool,
    /// Its serving lease runs.
    live: bool,
    /// An ocspd from before serving leases (it never wrote one), seen lately: it answers
    /// from its replica whenever it is up, and cannot be fenced.
    legacy: bool,
}

impl NodeRow {
    /// Whether this node may still answer from before change `seq`, and whether it can be
    /// fenced.
    fn behind(&self, seq: i64) -> Option<bool> {
        if self.legacy {
            return (self.applied <= seq).then_some(false);
        }
        let confirmed_out = !self.serves && self.must_reach > seq;
        (self.live && self.applied <= seq && !confirmed_out).then_some(true)
    }

    /// The first change this node may answer from before, if it answers at all.
    fn bound(&self) -> Option<i64> {
        if self.legacy {
            return Some(self.applied);
        }
        self.live.then(|| if self.serves { self.applied } else { self.applied.max(self.must_reach) })
    }
}

/// Every node, read FOR SHARE: a renewal in progress (its row locked FOR UPDATE) is waited
/// for, so a node coming into service is never missed between its read and its commit.
fn nodes(pg: &Pg) -> Result<Vec<NodeRow>, StoreError> {
    pg.with(|c| {
        let mut tx = c.transaction()?;
        let rows = tx.query(
            &format!(
                "SELECT name, applied, must_reach, serves, serving_until_ms > {NOW_MS}, \
                   serving_lease_ms = 0 AND seen_ms > {NOW_MS} - {LEGACY_SEEN_MS} \
                 FROM nodes ORDER BY name FOR SHARE"
            ),
            &[],
        )?;
        tx.commit()?;
        Ok(rows
            .iter()
            .map(|r| NodeRow {
                name: r.get(0),
                applied: r.get(1),
                must_reach: r.get(2),
                serves: r.get(3),
                live: r.get(4),
                legacy: r.get(5),
            })
            .collect())
    })
}

/// How recently a node from before serving leases must have reported to be counted.
const LEGACY_SEEN_MS: i64 = 60_000;

/// Waits until every node that may answer has applied change `seq`, or is out of service
/// until it has. Nodes still behind after `grace` are fenced; the whole wait is bounded by
/// `grace` plus the serving lease (a fenced node confirms at its next report, or its lease
/// lapses).
pub fn confirm(pg: &Pg, seq: u64, grace: Duration, lease: Duration) -> Confirmation {
    let started = Instant::now();
    let bound = grace + lease + lease / 2;
    let seq = seq as i64;
    let mut fenced: Vec<String> = Vec::new();
    let mut pause = Duration::from_millis(2);
    // The database may be restarting: keep asking until the bound, then say what is known.
    let mut last_error: Option<String>;
    loop {
        let behind = nodes(pg).map(|rows| {
            rows.into_iter().filter_map(|n| n.behind(seq).map(|fenceable| (n.name, fenceable))).collect::<Vec<_>>()
        });
        let elapsed = started.elapsed();
        match behind {
            Ok(behind) if behind.is_empty() => return Confirmation { fenced, unconfirmed: None },
            Ok(behind) => {
                last_error = None;
                if elapsed >= grace {
                    let new: Vec<String> = behind
                        .iter()
                        .filter(|(n, fenceable)| *fenceable && !fenced.contains(n))
                        .map(|(n, _)| n.clone())
                        .collect();
                    let fence = if new.is_empty() {
                        Ok(0)
                    } else {
                        pg.with(|c| {
                            c.execute(
                                "UPDATE nodes SET must_reach = GREATEST(must_reach, $1::bigint + 1) WHERE name = ANY($2)",
                                &[&seq, &new],
                            )
                        })
                    };
                    match fence {
                        Ok(_) if !new.is_empty() => {
                            tracing::warn!(change = seq, nodes = ?new, "nodes had not applied an acknowledged change in time: taken out of service until they have");
                            fenced.extend(new);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            last_error = Some(format!("could not take lagging nodes {new:?} out of service: {e}"))
                        }
                    }
                }
                if elapsed >= bound {
                    let why = last_error.unwrap_or_else(|| {
                        format!("nodes {behind:?} neither applied change {seq} nor left service in time")
                    });
                    return Confirmation { fenced, unconfirmed: Some(why) };
                }
            }
            Err(e) => {
                last_error = Some(e.to_string());
                if elapsed >= bound {
                    return Confirmation {
                        fenced,
                        unconfirmed: Some(format!(
                            "could not confirm that every node applied change {seq} ({e}); a node that has not applied it may answer from before it until it does, or until {} s after its last contact with the fleet database",
                            lease.as_secs()
                        )),
                    };
                }
            }
        }
        std::thread::sleep(pause);
        pause =
            if last_error.is_some() { Duration::from_millis(100) } else { (pause * 2).min(Duration::from_millis(25)) };
    }
}

/// The first change not yet accounted for by every live node: purges for changes before it
/// may be delivered (an edge refetching then gets no answer from before the change).
pub fn watermark(pg: &Pg) -> Result<u64, StoreError> {
    let low = nodes(pg)?.iter().filter_map(NodeRow::bound).min();
    Ok(low.map_or(u64::MAX, |v| v.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::NodeRow;

    fn row(applied: i64, must_reach: i64, serves: bool, live: bool, legacy: bool) -> NodeRow {
        NodeRow { name: "n".into(), applied, must_reach, serves, live, legacy }
    }

    #[test]
    fn a_node_is_accounted_for_once_it_applied_the_change_or_confirmed_it_is_out_until_it_has() {
        // Change 10: a live serving node that applied up to 10 (not 10 itself) is behind, and
        // may be fenced.
        assert_eq!(row(10, 0, true, true, false).behind(10), Some(true));
        assert_eq!(row(11, 0, true, true, false).behind(10), None);
        // Fenced past 10 and confirmed out: accounted for; fenced for less: not.
        assert_eq!(row(5, 11, false, true, false).behind(10), None);
        assert_eq!(row(5, 10, false, true, false).behind(10), Some(true));
        // A lapsed lease: it answers nothing good, whatever it applied.
        assert_eq!(row(0, 0, true, false, false).behind(10), None);
        // An older ocspd without serving leases: behind until it applied it, and unfenceable.
        assert_eq!(row(10, 0, false, false, true).behind(10), Some(false));
        assert_eq!(row(11, 0, false, false, true).behind(10), None);
    }

    #[test]
    fn the_purge_watermark_is_the_lowest_position_any_answering_node_may_answer_from() {
        assert_eq!(row(7, 0, true, true, false).bound(), Some(7));
        assert_eq!(row(7, 12, false, true, false).bound(), Some(12));
        assert_eq!(row(7, 0, true, false, false).bound(), None);
        assert_eq!(row(3, 0, false, false, true).bound(), Some(3));
    }
}
