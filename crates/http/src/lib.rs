//! The HTTP front of ocspd: the public OCSP service (RFC 6960 appendix A, RFC 5019) on hyper 1,
//! the [`Source`] seam that answers parsed requests, and the listener loop shared with the admin
//! API.
//!
//! The service decodes GET and POST requests, asks one [`Source`] for a signed response, and
//! derives every HTTP header from that response. It never opens the database or loads keys
//! itself; it has no admin routes.

mod crl;
mod headers;
mod memory;
mod metrics;
mod prepared;
mod serve;
mod service;
mod source;

pub use crl::{crl_path, CrlDoc, CrlDocs, CRL_PATH_PREFIX};
pub use memory::MemoryTier;
pub use metrics::Metrics;
pub use prepared::{Prepared, Served, Tier};
pub use serve::{connection_budget, open_files_limit, serve, Handler, HttpResponse, ListenerLimits, ListenerStats};
pub use service::{MetricsService, OcspService, ServiceConfig, MAX_REQUEST_BYTES};
pub use source::BoxFuture;
pub use source::{
    AnswerError, Asked, ChangeEpoch, ChangeGuard, IssuerFilter, LiveConfig, LiveSource, PresignedSource, Source,
};

#[cfg(test)]
mod tests;
