//! CRLs on the public listener: `GET /crl/<issuer name>/<shard>.crl`, DER, with the caching
//! headers derived from the CRL itself (Last-Modified thisUpdate, Expires nextUpdate, a
//! strong ETag over the bytes, 304s) and the cache tags purges use.

use crate::headers;
use bytes::Bytes;
use http::HeaderValue;
use ocsp_proto::IssuerKey;
use std::sync::Arc;

/// The path prefix of every CRL. OCSP GET paths are base64 of a DER SEQUENCE (they start
/// with `M`), so they never begin with it.
pub const CRL_PATH_PREFIX: &str = "/crl/";

/// The path a shard is served at.
pub fn crl_path(issuer_name: &str, shard: u32) -> String {
    format!("{CRL_PATH_PREFIX}{issuer_name}/{shard}.crl")
}

/// One signed CRL with its headers, prepared once when it is published.
#[derive(Debug)]
pub struct CrlDoc {
    /// The CertificateList DER.
    pub der: Bytes,
    /// thisUpdate.
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// Strong ETag over the DER.
    pub etag: HeaderValue,
    /// `Last-Modified`: thisUpdate.
    pub last_modified: HeaderValue,
    /// `Expires`: nextUpdate.
    pub expires: HeaderValue,
    /// `Cache-Tag`: the issuer's tag and the shard's.
    pub cache_tag: HeaderValue,
    /// `Surrogate-Key`: the same, space-separated.
    pub surrogate_key: HeaderValue,
}

impl CrlDoc {
    /// Prepares the CRL `der` of `issuer`'s `shard`.
    pub fn new(der: Vec<u8>, this_update: i64, next_update: i64, issuer: &IssuerKey, shard: u32) -> CrlDoc {
        let tags = [issuer.cache_tag(), issuer.crl_cache_tag(shard)];
        let value = |s: String| HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""));
        CrlDoc {
            etag: value(headers::etag(&der)),
            last_modified: value(headers::http_date(this_update)),
            expires: value(headers::http_date(next_update)),
            cache_tag: value(tags.join(",")),
            surrogate_key: value(tags.join(" ")),
            der: Bytes::from(der),
            this_update,
            next_update,
        }
    }
}

/// Where the public listener finds the CRL served at a path.
pub trait CrlDocs: Send + Sync {
    /// The CRL served at `path` (starting with [`CRL_PATH_PREFIX`]), if there is one.
    fn get(&self, path: &str) -> Option<Arc<CrlDoc>>;
}
