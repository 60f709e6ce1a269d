//! An answer ready to send: the signed DER and every header derived from it, computed once
//! when the answer is made, so that a memory-tier hit formats nothing but `max-age`.

use crate::headers;
use bytes::Bytes;
use http::HeaderValue;
use ocsp_proto::{CertStatus, IssuerKey, Serial, SignedResponse};
use std::sync::Arc;

/// The tier that produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The in-memory cache.
    Memory,
    /// A response the pre-signer stored in the database.
    Presigned,
    /// Signed on request.
    Live,
    /// Signed on request to echo the request's nonce (RFC 8954); never cached anywhere.
    Echo,
}

impl Tier {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Presigned => "presigned",
            Tier::Live => "live",
            Tier::Echo => "echo",
        }
    }
}

/// A signed response with its headers.
#[derive(Debug)]
pub struct Prepared {
    /// The OCSPResponse DER.
    pub der: Bytes,
    /// thisUpdate.
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// producedAt.
    pub produced_at: i64,
    /// The status stated (of the first SingleResponse).
    pub status: CertStatus,
    /// Strong ETag over the DER.
    pub etag: HeaderValue,
    /// `Last-Modified`: thisUpdate.
    pub last_modified: HeaderValue,
    /// `Expires`: nextUpdate.
    pub expires: HeaderValue,
    /// `Cache-Tag` (comma-separated, Cloudflare and Akamai style).
    pub cache_tag: HeaderValue,
    /// `Surrogate-Key` (space-separated, Fastly and Varnish xkey style).
    pub surrogate_key: HeaderValue,
}

impl Prepared {
    /// Prepares `resp`, tagged with the issuer's tag and one tag per certificate.
    pub fn new(resp: SignedResponse, issuer: &IssuerKey, serials: &[&Serial]) -> Prepared {
        let mut tags = Vec::with_capacity(1 + serials.len());
        tags.push(issuer.cache_tag());
        tags.extend(serials.iter().map(|s| issuer.cert_cache_tag(s)));
        let value = |s: String| HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""));
        Prepared {
            etag: value(headers::etag(&resp.der)),
            last_modified: value(headers::http_date(resp.this_update)),
            expires: value(headers::http_date(resp.next_update)),
            cache_tag: value(tags.join(",")),
            surrogate_key: value(tags.join(" ")),
            der: Bytes::from(resp.der),
            this_update: resp.this_update,
            next_update: resp.next_update,
            produced_at: resp.produced_at,
            status: resp.status,
        }
    }

    /// Bytes this entry costs in memory, for the memory tier's bound: its own allocations plus
    /// the cache's bookkeeping per entry (moka's map, deques and timer wheel) and allocator
    /// slack, measured as process RSS over entries held with `make bench-http` (about 1.6 KB
    /// per entry in all, of which about 1 KB are the allocations below).
    pub fn weight(&self) -> usize {
        const FIXED: usize = std::mem::size_of::<Prepared>() + 16 + 600;
        FIXED
            + self.der.len()
            + self.etag.len()
            + self.last_modified.len()
            + self.expires.len()
            + self.cache_tag.len()
            + self.surrogate_key.len()
    }
}

/// An answer and the tier it came from.
#[derive(Debug, Clone)]
pub struct Served {
    /// The answer.
    pub answer: Arc<Prepared>,
    /// Where it came from.
    pub tier: Tier,
}

impl std::ops::Deref for Served {
    type Target = Prepared;
    fn deref(&self) -> &Prepared {
        &self.answer
    }
}
