//! Export: every current pre-signed response with the GET path it answers, for an
//! object-store origin.

use crate::api;
use crate::{Domain, DomainError};
use base64::Engine;

/// Which page of the export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportQuery {
    /// The cursor a previous page returned as `next`; the first page when absent.
    pub after: Option<String>,
    /// Responses scanned per page (1 to 10,000; 1,000 when absent).
    pub limit: Option<usize>,
    /// Only this issuer (by name).
    pub issuer: Option<String>,
}

/// How close to nextUpdate a response may be and still be exported.
const EXPORT_MARGIN: i64 = 60;

impl Domain {
    /// A page of current pre-signed responses with their GET paths. Responses of retired
    /// issuers (which answer unauthorized) and those within a minute of nextUpdate are left out.
    pub fn export(&self, query: ExportQuery) -> Result<api::ExportPage, DomainError> {
        let after = query
            .after
            .map(|a| hex::decode(a).map_err(|_| DomainError::Invalid("after is not an export cursor".into())))
            .transpose()?;
        let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
        let only = query.issuer.map(|n| self.issuer(&n).map(|e| e.key)).transpose()?;
        let now = self.clock.now();
        let rows = self.store.scan_responses(after.as_deref(), limit)?;
        let next = (rows.len() == limit).then(|| rows.last().map(|r| hex::encode(&r.0))).flatten();
        let mut items = Vec::with_capacity(rows.len());
        for (_, issuer, serial, alg, resp) in rows {
            if only.is_some_and(|k| k != issuer) || resp.next_update <= now + EXPORT_MARGIN {
                continue;
            }
            let Some(entry) = self.registry.by_key(&issuer) else { continue };
            let request = ocsp_proto::encode_request(&[entry.hashes.cert_id(alg, serial)])
                .map_err(|e| DomainError::Internal(e.to_string()))?;
            items.push(api::ExportItem {
                path: base64::engine::general_purpose::STANDARD.encode(request),
                der: base64::engine::general_purpose::STANDARD.encode(&resp.der),
                next_update: resp.next_update,
                issuer_key: issuer.to_hex(),
            });
        }
        Ok(api::ExportPage { items, next })
    }
}
