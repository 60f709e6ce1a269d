//! Purge fan-out: tells peer responders and edge caches (Varnish, CDN purge APIs) that answers
//! changed, following the change feed the store writes with every status change.
//!
//! One deliverer per target reads the feed from its own durable cursor, sends the tags of each change that needs a purge, and
//! moves the cursor only when the target accepted them. A target that is down is retried with
//! exponential backoff, for as long as it takes: nothing is dropped, and the purges reach it
//! when it is back. Events every target has are trimmed.
//!
//! Requests are bounded by tag count and by bytes (`max_tags`, `max_bytes`); a request a target
//! refuses as too large (400, 413, 414, 431) is split in halves and sent again. A single tag that
//! is still refused can never be delivered: it is reported (log, metric, `ocspctl purge status`)
//! and does not hold up the purges behind it. Each attempt has one deadline for the whole
//! exchange and reads at most a few KiB of the answer.

mod config;
#[cfg(feature = "deliver")]
mod deliver;

pub use config::{fill, PurgeConfig, TargetConfig, VarnishMode, DEFAULT_MAX_BYTES, DEFAULT_MAX_TAGS};
#[cfg(feature = "deliver")]
pub use deliver::{Bound, PendingCert, Purger, SetupError, TargetStatus};

#[cfg(test)]
#[cfg(feature = "deliver")]
mod tests;
