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
        let after = query.after.as_deref().map(parse_cursor).transpose()?;
        let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
        let only = query.issuer.map(|n| self.issuer(&n).map(|e| e.key)).transpose()?;
        let now = self.clock.now();
        let rows = self.store.scan_responses(after.as_ref(), limit)?;
        let next = (rows.len() == limit).then(|| rows.last().map(|r| cursor_of(&r.0))).flatten();
        let mut items = Vec::with_capacity(rows.len());
        for (answer, resp) in rows {
            let ocsp_proto::AnswerKey { issuer, serial, hash: alg } = answer;
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

/// The cursor after `answer`: `<issuer key hex>.<serial hex>.<sha1|sha256>`.
fn cursor_of(answer: &ocsp_proto::AnswerKey) -> String {
    format!("{}.{}.{}", answer.issuer.to_hex(), answer.serial.to_hex(), answer.hash.name())
}

fn parse_cursor(text: &str) -> Result<ocsp_proto::AnswerKey, DomainError> {
    let bad = || DomainError::Invalid(format!("after: {text:?} is not an export cursor (a page's `next`)"));
    let mut parts = text.split('.');
    let (Some(issuer), Some(serial), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let issuer = ocsp_proto::IssuerKey::from_hex(issuer).ok_or_else(bad)?;
    let serial = ocsp_proto::Serial::from_hex(serial).map_err(|_| bad())?;
    let hash = ocsp_proto::HashAlg::ALL.into_iter().find(|h| h.name() == hash).ok_or_else(bad)?;
    Ok(ocsp_proto::AnswerKey::new(issuer, serial, hash))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn export_cursors_name_an_answer_and_bad_ones_are_refused() {
        let answer = ocsp_proto::AnswerKey::new(
            ocsp_proto::IssuerKey([7; 64]),
            ocsp_proto::Serial::from_hex("00ff01").unwrap(),
            ocsp_proto::HashAlg::Sha256,
        );
        let text = cursor_of(&answer);
        assert!(text.starts_with(&"07".repeat(64)) && text.ends_with(".sha256"), "{text}");
        assert_eq!(parse_cursor(&text).unwrap(), answer);
        for bad in ["", "zz", &format!("{}.01", "07".repeat(64)), &format!("{}.01.md5", "07".repeat(64)), "07.01.sha1"]
        {
            assert!(matches!(parse_cursor(bad), Err(DomainError::Invalid(_))), "{bad:?}");
        }
    }
}
