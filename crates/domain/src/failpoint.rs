//! Named points in the work of each role where a test can make this process fail, to show
//! that a crash or an outage at exactly that step loses nothing (the fleet fault matrix,
//! `tests/fault_matrix.rs`).
//!
//! Armed only by the environment variable `OCSPD_FAILPOINTS`, a comma-separated list of
//! `point=action`:
//!
//! - `abort`: the process aborts at the first pass through the point, as `kill -9` would stop
//!   it there (no destructor runs, nothing is flushed);
//! - `pause:DIR`: at the first pass it creates `DIR/<point>.hit` and waits (at most 120 s)
//!   until `DIR/<point>.go` exists, so the test can act (restart PostgreSQL) while the process
//!   stands exactly there.
//!
//! With `OCSPD_FAILPOINTS_ARM=FILE` as well, a point fires only once that file exists, so a
//! test can set a node up undisturbed and arm it when the work it means to cut begins.
//!
//! Unset, each point is one check of an initialised `OnceLock`. `ocspd` logs a warning at
//! start when any point is armed and refuses to start on a malformed list.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The points, each where a role's work can be cut.
pub const POINTS: &[&str] = &[
    // A staff change is committed (durable), not yet acknowledged.
    "admin.after_commit",
    // The signer has signed responses and not yet stored them.
    "presign.before_store",
    // A CRL shard is signed and not yet stored.
    "crl.after_sign",
    // A CRL shard is stored; the role's cursor has not moved.
    "crl.after_store",
    // A purge was accepted by its target; the target's cursor has not moved.
    "purge.after_send",
    // A fleet node read changes from PostgreSQL and has not applied them to its replica.
    "replica.before_apply",
];

#[derive(Debug)]
enum Action {
    Abort,
    Pause(PathBuf),
}

#[derive(Debug)]
struct Armed {
    point: &'static str,
    action: Action,
    fired: AtomicBool,
}

static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
static ARM_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Parses a list as `OCSPD_FAILPOINTS` holds it.
fn parse(text: &str) -> Result<Vec<Armed>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, action) = item.split_once('=').ok_or_else(|| format!("{item:?}: point=action"))?;
        let point = POINTS
            .iter()
            .find(|p| **p == name)
            .ok_or_else(|| format!("{name:?} is not a failpoint (one of {})", POINTS.join(", ")))?;
        let action = match action.split_once(':') {
            None if action == "abort" => Action::Abort,
            Some(("pause", dir)) if !dir.is_empty() => Action::Pause(PathBuf::from(dir)),
            _ => return Err(format!("{item:?}: the action is abort or pause:DIR")),
        };
        out.push(Armed { point, action, fired: AtomicBool::new(false) });
    }
    Ok(out)
}

/// Reads `OCSPD_FAILPOINTS` once; the points armed, or why the list is malformed.
pub fn arm_from_env() -> Result<Vec<&'static str>, String> {
    let text = std::env::var("OCSPD_FAILPOINTS").unwrap_or_default();
    let armed = parse(&text).map_err(|e| format!("OCSPD_FAILPOINTS: {e}"))?;
    let names = armed.iter().map(|a| a.point).collect();
    let _ = ARMED.set(armed);
    let _ = ARM_FILE.set(std::env::var_os("OCSPD_FAILPOINTS_ARM").map(PathBuf::from));
    Ok(names)
}

/// Passes through `point`: fails there if a test armed it.
pub fn hit(point: &str) {
    let Some(armed) = ARMED.get() else { return };
    let Some(a) = armed.iter().find(|a| a.point == point) else { return };
    if ARM_FILE.get().and_then(Option::as_ref).is_some_and(|f| !f.exists()) {
        return;
    }
    if a.fired.swap(true, Ordering::SeqCst) {
        return;
    }
    match &a.action {
        Action::Abort => {
            eprintln!("ocspd: failpoint {point}: aborting");
            std::process::abort();
        }
        Action::Pause(dir) => {
            let (hit, go) = (dir.join(format!("{point}.hit")), dir.join(format!("{point}.go")));
            let _ = std::fs::write(&hit, b"");
            tracing::warn!(point, "failpoint: paused until {} exists", go.display());
            let deadline = Instant::now() + Duration::from_secs(120);
            while !go.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::warn!(point, "failpoint: going on");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_list_names_known_points_and_actions_and_anything_else_is_refused() {
        let ok = parse("crl.after_sign=abort, purge.after_send=pause:/tmp/x").unwrap();
        assert_eq!(ok.len(), 2);
        assert!(matches!(ok[1].action, Action::Pause(ref d) if d == std::path::Path::new("/tmp/x")));
        assert!(parse("").unwrap().is_empty());
        for bad in ["crl.after_sign", "nowhere=abort", "crl.after_sign=explode", "crl.after_sign=pause:"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
