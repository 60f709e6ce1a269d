//! Headers derived from a response itself (RFC 5019 section 6, Boulder's responder.go).

/// An HTTP-date (RFC 9110 IMF-fixdate) for `secs` since the epoch.
pub fn http_date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Parses an HTTP-date (IMF-fixdate only; other forms are treated as absent).
pub fn parse_http_date(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%a, %d %b %Y %H:%M:%S GMT")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// A strong ETag over the DER: the first 16 bytes of its SHA-256, quoted.
pub fn etag(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let hex = hex::encode(&d.as_ref()[..16]);
    format!("\"{hex}\"")
}

/// `Cache-Control` for an authoritative answer: never beyond nextUpdate, capped by `max_age_cap`.
pub fn cache_control(next_update: i64, now: i64, max_age_cap: i64) -> String {
    let max_age = (next_update - now).clamp(0, max_age_cap.max(0));
    format!("max-age={max_age}, public, no-transform, must-revalidate")
}

/// `Cache-Control` for error answers: never cached.
pub const NO_CACHE: &str = "max-age=0, no-cache";
