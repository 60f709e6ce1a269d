//! What the operations did, and the rules that decide it, written once above every store.

use crate::{RevokeOutcome, State, StatusRecord};
use ocsp_proto::{RevocationReason, Serial};

/// What a bulk revocation did (or, dry-run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkSummary {
    /// Good before, revoked now.
    pub revoked: usize,
    /// Revoked before, reason changed (to keyCompromise, or a hold made final).
    pub changed: usize,
    /// Already revoked with this reason: untouched.
    pub already_revoked: usize,
    /// Already revoked with a reason that may not change to this one: untouched.
    pub refused: Vec<Serial>,
    /// Never recorded as issued: untouched.
    pub not_issued: Vec<Serial>,
}

/// What a bulk revocation did, as a store reports it.
#[derive(Debug, Clone, Default)]
pub struct BulkRevocation {
    /// Counts, and the serials left untouched.
    pub summary: BulkSummary,
    /// The certificates that changed, with their records now.
    pub changed: Vec<(Serial, StatusRecord)>,
    /// The change written to the feed, if anything changed (never on a dry run).
    pub change: Option<u64>,
}

/// Everything one revocation batch did (or, planned, will do once written).
#[derive(Debug, Clone)]
pub struct Revocation {
    /// Counts, and the serials left untouched.
    pub summary: BulkSummary,
    /// The certificates that change, with their records after.
    pub changed: Vec<(Serial, StatusRecord)>,
    /// What happened to the first serial.
    pub first: RevokeOutcome,
    /// The change written to the feed, if anything changed.
    pub change: Option<u64>,
}

impl Revocation {
    /// Applies the rules of [`StatusRecord::revoke`] to `serials`, whose records as they stand
    /// are `current` (in the same order; `None`: never recorded). Nothing is written: every
    /// store writes the `changed` records, drops their responses, and adds one change and the
    /// audit entry in one atomic write.
    pub fn plan(
        serials: &[Serial],
        current: Vec<Option<StatusRecord>>,
        time: i64,
        reason: RevocationReason,
        now: i64,
    ) -> Revocation {
        let mut summary = BulkSummary::default();
        let mut changed = Vec::new();
        let mut first = None;
        for (serial, found) in serials.iter().zip(current) {
            let Some(current) = found else {
                summary.not_issued.push(serial.clone());
                first.get_or_insert(RevokeOutcome::NotIssued);
                continue;
            };
            let outcome = current.revoke(time, reason, now);
            first.get_or_insert(outcome);
            match outcome {
                RevokeOutcome::Revoked(rec) | RevokeOutcome::Changed(rec) => {
                    if matches!(current.state, State::Good) {
                        summary.revoked += 1;
                    } else {
                        summary.changed += 1;
                    }
                    changed.push((serial.clone(), rec));
                }
                RevokeOutcome::AlreadyRevoked(_) => summary.already_revoked += 1,
                RevokeOutcome::Refused { .. } => summary.refused.push(serial.clone()),
                RevokeOutcome::NotIssued => summary.not_issued.push(serial.clone()),
            }
        }
        Revocation { summary, changed, first: first.unwrap_or(RevokeOutcome::NotIssued), change: None }
    }
}

/// What lifting a certificateHold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnholdOutcome {
    /// The hold is lifted: the certificate is good again.
    Lifted {
        /// The record now.
        record: StatusRecord,
        /// The change written to the feed.
        change: u64,
    },
    /// The certificate is not on hold (good, or revoked for another reason).
    NotOnHold(StatusRecord),
    /// Never recorded as issued.
    NotIssued,
}
