//! How long responses are valid and when they are signed again (CA/B Forum BR 4.9.9 and 4.9.10).

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// Why a cadence breaks the Baseline Requirements: every rule broken, in words naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct CadenceError(pub Vec<String>);

/// The validity and refresh schedule of pre-signed responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// nextUpdate - thisUpdate.
    pub validity: i64,
    /// How far thisUpdate is set before the signing time, against client clock skew.
    pub backdate: i64,
}

impl Cadence {
    /// Checks the BR bounds: validity from 8 hours to 10 days; backdate from 0 to 1 hour.
    /// Errors name the rule broken.
    pub fn new(validity: i64, backdate: i64) -> Result<Cadence, CadenceError> {
        let mut problems = Vec::new();
        if validity < 8 * HOUR {
            problems.push(format!(
                "validity of {validity} s is under 8 hours; CA/B Forum BR 4.9.9 requires at least 8 hours"
            ));
        }
        if validity > 10 * DAY {
            problems
                .push(format!("validity of {validity} s is over 10 days; CA/B Forum BR 4.9.9 allows at most 10 days"));
        }
        if !(0..=HOUR).contains(&backdate) {
            problems.push(format!(
                "backdate of {backdate} s must be between 0 and 1 hour (it only absorbs client clock skew)"
            ));
        }
        if problems.is_empty() {
            Ok(Cadence { validity, backdate })
        } else {
            Err(CadenceError(problems))
        }
    }

    /// thisUpdate and nextUpdate of a response signed at `now`.
    pub fn window(&self, now: i64) -> (i64, i64) {
        let this_update = now - self.backdate;
        (this_update, this_update + self.validity)
    }

    /// When a response with this window must be signed again. BR 4.9.10: with a validity under
    /// 16 hours, before half of it has passed; otherwise at least 8 hours before nextUpdate and
    /// no later than 4 days after thisUpdate. We refresh an hour (or a tenth of the validity,
    /// whichever is less) ahead of those limits so a busy pass still meets them.
    pub fn refresh_at(&self, this_update: i64, next_update: i64) -> i64 {
        let validity = next_update - this_update;
        let margin = HOUR.min(validity / 10);
        if validity < 16 * HOUR {
            this_update + validity / 2 - margin
        } else {
            (next_update - 8 * HOUR).min(this_update + 4 * DAY) - margin
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_the_rule() {
        assert!(Cadence::new(8 * HOUR, 0).is_ok());
        assert!(Cadence::new(10 * DAY, HOUR).is_ok());
        assert!(Cadence::new(7 * HOUR, 0).unwrap_err().to_string().contains("at least 8 hours"));
        assert!(Cadence::new(11 * DAY, 0).unwrap_err().to_string().contains("at most 10 days"));
        assert!(Cadence::new(DAY, 2 * HOUR).unwrap_err().to_string().contains("backdate"));
    }

    #[test]
    fn refresh_meets_the_br_schedule() {
        for validity in [8 * HOUR, 12 * HOUR, 16 * HOUR, DAY, 3 * DAY, 7 * DAY, 10 * DAY] {
            let c = Cadence::new(validity, HOUR).unwrap();
            let (t, n) = c.window(1_000_000);
            let r = c.refresh_at(t, n);
            assert!(r > t, "{validity}: refresh after signing");
            if validity < 16 * HOUR {
                assert!(r < t + validity / 2, "{validity}: before half has passed");
            } else {
                assert!(r <= n - 8 * HOUR, "{validity}: at least 8 hours before nextUpdate");
                assert!(r <= t + 4 * DAY, "{validity}: no later than 4 days after thisUpdate");
            }
        }
    }
}
