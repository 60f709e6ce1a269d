//! The parts of this process the operations drive, as `ocsp-domain` sees them.

use ocsp_domain::{HotSerials, PurgeWaiter, Resigner};
use ocsp_proto::{IssuerKey, Serial};
use std::sync::Arc;
use std::time::Duration;

/// The pre-signer, re-signing first what an identity change invalidated.
pub struct PresignerPort(pub Arc<ocsp_presign::Presigner>);

impl Resigner for PresignerPort {
    fn urgent(&self, issuer: &IssuerKey, serials: &[Serial]) {
        self.0.urgent(issuer, serials);
    }

    fn request_pass(&self, issuer: Option<IssuerKey>) {
        self.0.request_pass(issuer);
    }
}

/// The memory tier, which knows what is asked most.
pub struct MemoryPort(pub Arc<ocsp_http::MemoryTier>);

impl HotSerials for MemoryPort {
    fn serials_of(&self, issuer: &IssuerKey) -> Vec<Serial> {
        self.0.serials_of(issuer)
    }
}

/// The purge fan-out, waited on before a revocation is acknowledged.
pub struct PurgerPort(pub Arc<ocsp_purge::Purger>);

impl PurgeWaiter for PurgerPort {
    fn wait_delivered(&self, next: u64, within: Duration) -> Vec<String> {
        self.0.wait_delivered(next, within)
    }
}
