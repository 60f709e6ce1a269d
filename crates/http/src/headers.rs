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

/// Whether an `If-None-Match` list names `etag`, by the weak comparison RFC 9110 13.1.2 asks
/// for there: `W/"x"` matches `"x"` and `W/"x"`; `*` matches anything.
pub fn none_match(list: &str, etag: &[u8]) -> bool {
    fn opaque(t: &[u8]) -> &[u8] {
        t.strip_prefix(b"W/").unwrap_or(t)
    }
    let ours = opaque(etag);
    list.split(',').map(str::trim).any(|t| t == "*" || opaque(t.as_bytes()) == ours)
}

/// `Cache-Control` for an authoritative answer: never beyond nextUpdate, capped by `max_age_cap`.
pub fn cache_control(next_update: i64, now: i64, max_age_cap: i64) -> String {
    let max_age = (next_update - now).clamp(0, max_age_cap.max(0));
    format!("max-age={max_age}, public, no-transform, must-revalidate")
}

/// `Cache-Control` for error answers: never cached.
pub const NO_CACHE: &str = "max-age=0, no-cache";

#[cfg(test)]
mod none_match_tests {
    use super::none_match;

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = br#""abc""#;
        assert!(none_match(r#""abc""#, etag));
        assert!(none_match(r#"W/"abc""#, etag));
        assert!(none_match(r#""x", W/"abc""#, etag));
        assert!(none_match("*", etag));
        assert!(!none_match(r#""abd""#, etag));
        assert!(!none_match(r#"W/"ab""#, etag));
        assert!(!none_match("", etag));
    }
}
