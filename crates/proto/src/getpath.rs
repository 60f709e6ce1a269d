//! The GET form of an OCSP request (RFC 6960 appendix A.1, RFC 5019 section 5): the DER
//! request, base64, in the URL path. Decoded as real clients send it, never normalised.

use crate::ProtoError;
use base64::Engine;

/// The largest request body (and decoded GET request) accepted. A request for 32 CertIDs with
/// a signature and a certificate fits easily; anything larger is not an OCSP request.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Decodes the base64 DER request from a GET path, as RFC 6960 appendix A and RFC 5019
/// describe and as real clients send it: percent-encoded or not, `+` sent raw or turned into a
/// space, `/` inside the base64, any number of leading slashes, padding present or not. The
/// path is never normalised: `/` is part of the base64 alphabet. A fuzzing entry point
/// (`fuzz/fuzz_targets/get_path.rs`): errors, never panics, for any path.
pub fn decode_get_path(path: &str) -> Result<Vec<u8>, ProtoError> {
    let bad = |why: &str| ProtoError::MalformedRequest(why.to_string());
    // Every DER OCSPRequest starts with 0x30, whose base64 starts with 'M', so leading
    // slashes are never part of the request.
    let encoded = path.trim_start_matches('/');
    if encoded.is_empty() {
        return Err(bad("empty GET path"));
    }
    if encoded.len() > MAX_REQUEST_BYTES * 2 {
        return Err(bad("GET path too long"));
    }
    let mut text = percent_decode(encoded).map_err(|e| bad(&e.to_string()))?;
    for b in text.iter_mut() {
        *b = match *b {
            b' ' => b'+',
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        };
    }
    while text.last() == Some(&b'=') {
        text.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text).map_err(|e| bad(&format!("bad base64: {e}")))
}

/// A `%XX` escape that is cut short or not hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad percent-encoding at byte {at}")]
pub struct PercentError {
    /// Where the escape starts.
    pub at: usize,
}

/// Decodes `%XX` escapes (RFC 3986 2.1); every other byte stands for itself. The one
/// percent-decoder of the project: GET paths, `pkcs11:` URIs, admin query strings.
pub fn percent_decode(text: &str) -> Result<Vec<u8>, PercentError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PercentError { at: i })?;
            let hex = std::str::from_utf8(hex).map_err(|_| PercentError { at: i })?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| PercentError { at: i })?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode_get_path;
    use base64::Engine;

    #[test]
    fn get_path_spellings_decode_alike() {
        // Bytes chosen so the base64 holds '+', '/' and padding.
        let der = vec![0x30, 0x00, 0x00, 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff, 0x30];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(b64.contains('+') && b64.contains('/') && b64.ends_with('='));
        let encoded = b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
        for path in [
            format!("/{b64}"),
            format!("//{b64}"),
            format!("/{encoded}"),
            format!("/{}", b64.replace('+', " ")),
            format!("/{}", b64.trim_end_matches('=')),
            format!("/{}", b64.replace('+', "-").replace('/', "_")),
        ] {
            assert_eq!(decode_get_path(&path).unwrap(), der, "path {path}");
        }
    }

    #[test]
    fn bad_get_paths_are_errors() {
        for path in ["/", "//", "/%", "/%zz", "/M!!!"] {
            assert!(decode_get_path(path).is_err(), "{path}");
        }
    }
}
