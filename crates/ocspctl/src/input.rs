//! Reading staff's input files as streams: serial lists, CSV, OpenSSL `index.txt`, folders of
//! certificates. Each reader checks every line first (nothing is sent if one is bad), then
//! yields batches, holding at most one batch in memory.

use ocsp_proto::{RevocationReason, Serial};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A line that could not be read: where and why.
#[derive(Debug)]
pub struct LineError(pub String);

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LineError {}

/// One certificate read from a file: its serial (hex, as written), notAfter when the file
/// says, and its revocation for imports of a CA's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The serial, hex, as the file spells it (checked to be a valid serial).
    pub serial: String,
    /// notAfter, seconds since the epoch.
    pub not_after: Option<i64>,
    /// Already revoked.
    pub revocation: Option<Revoked>,
}

/// A revocation read from an `index.txt` `R` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// When, seconds since the epoch.
    pub time: i64,
    /// The RFC 5280 reason name.
    pub reason: String,
}

/// Which kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One hex serial per line; `#` comments and blank lines ignored.
    Serials,
    /// `serial[,notAfter]` per line, notAfter RFC 3339 or epoch seconds; a header line is allowed.
    Csv,
    /// OpenSSL CA database: V, R and E lines.
    Index,
}

fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp())
}

/// OpenSSL's `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ`.
fn openssl_time(text: &str) -> Option<i64> {
    let t = text.trim().strip_suffix('Z')?;
    // Digits only, so the slicing below is on character boundaries (found by fuzzing: a
    // non-ASCII byte in the expiry field panicked).
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match t.len() {
        12 => {
            let yy: i32 = t[..2].parse().ok()?;
            format!("{}{t}", if yy >= 50 { "19" } else { "20" })
        }
        14 => t.to_string(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S").ok().map(|d| d.and_utc().timestamp())
}

/// Reads one line of `format` into a certificate spec (`None` for lines to skip).
///
/// This is the fuzzing entry point for staff input (`fuzz/fuzz_targets/import_line.rs`): it
/// must return an error, never panic, whatever the line holds.
pub fn parse_line(format: Format, line: &str, first: bool) -> Result<Option<Entry>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    match format {
        Format::Serials => {
            let s = line.trim();
            Serial::from_hex(s)?;
            Ok(Some(Entry { serial: s.to_string(), not_after: None, revocation: None }))
        }
        Format::Csv => {
            let mut fields = line.split(',');
            let serial = fields.next().unwrap_or("").trim();
            if first && Serial::from_hex(serial).is_err() {
                return Ok(None); // a header
            }
            Serial::from_hex(serial)?;
            let not_after = match fields.next().map(str::trim).filter(|s| !s.is_empty()) {
                Some(t) => {
                    Some(parse_time(t).ok_or_else(|| format!("notAfter {t:?} is neither RFC 3339 nor epoch seconds"))?)
                }
                None => None,
            };
            Ok(Some(Entry { serial: serial.to_string(), not_after, revocation: None }))
        }
        Format::Index => {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 4 {
                return Err(format!("expected 6 tab-separated fields, found {}", f.len()));
            }
            let not_after = openssl_time(f[1]).ok_or_else(|| format!("expiry {:?} is not YYMMDDHHMMSSZ", f[1]))?;
            let serial = f[3].trim();
            Serial::from_hex(serial)?;
            let revocation = match f[0] {
                "V" | "E" => None,
                "R" => {
                    let mut parts = f[2].split(',');
                    let when = parts.next().unwrap_or("");
                    let mut time =
                        openssl_time(when).ok_or_else(|| format!("revocation time {when:?} is not YYMMDDHHMMSSZ"))?;
                    let reason = match parts.next() {
                        None => RevocationReason::Unspecified,
                        // `openssl ca -crl_compromise` writes keyTime,<compromise time>.
                        Some("keyTime") => {
                            if let Some(t) = parts.next().and_then(openssl_time) {
                                time = t;
                            }
                            RevocationReason::KeyCompromise
                        }
                        Some("CAkeyTime") => RevocationReason::CaCompromise,
                        Some("holdInstruction") => RevocationReason::CertificateHold,
                        Some(r) => RevocationReason::parse(r)?,
                    };
                    Some(Revoked { time, reason: reason.name().to_string() })
                }
                other => return Err(format!("status {other:?} is not V, R or E")),
            };
            Ok(Some(Entry { serial: serial.to_string(), not_after: Some(not_after), revocation }))
        }
    }
}

/// Checks every line of a file; returns the number of entries.
pub fn check_file(path: &Path, format: Format) -> Result<u64, LineError> {
    let file = std::fs::File::open(path).map_err(|e| LineError(format!("{}: {e}", path.display())))?;
    let mut n = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| LineError(format!("{}:{}: {e}", path.display(), i + 1)))?;
        match parse_line(format, &line, i == 0) {
            Ok(Some(_)) => n += 1,
            Ok(None) => {}
            Err(e) => return Err(LineError(format!("{}:{}: {e}; nothing was sent", path.display(), i + 1))),
        }
    }
    Ok(n)
}

/// The lines of a file whose revocation `profile` refuses, each as `path:line: serial S:
/// why`. Lines are read as imports read them (index.txt revocations are recorded as
/// subscriber certificates').
pub fn refused_reasons(
    path: &Path,
    format: Format,
    profile: ocsp_proto::ReasonProfile,
) -> Result<Vec<String>, LineError> {
    let file = std::fs::File::open(path).map_err(|e| LineError(format!("{}: {e}", path.display())))?;
    let mut refused = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| LineError(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let entry =
            parse_line(format, &line, i == 0).map_err(|e| LineError(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let Some(Entry { serial, revocation: Some(rev), .. }) = entry else { continue };
        let reason = RevocationReason::parse(&rev.reason)
            .map_err(|e| LineError(format!("{}:{}: {e}", path.display(), i + 1)))?;
        if let Err(e) = profile.admit(reason, false) {
            refused.push(format!("{}:{}: serial {serial}: {e}", path.display(), i + 1));
        }
    }
    Ok(refused)
}

/// Calls `send` with batches of at most `batch` entries, in file order, with the bytes read so
/// far (for a progress bar).
pub fn for_each_batch<E>(
    path: &Path,
    format: Format,
    batch: usize,
    mut send: impl FnMut(Vec<Entry>, u64) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<LineError>,
{
    let file = std::fs::File::open(path).map_err(|e| LineError(format!("{}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut pending = Vec::with_capacity(batch);
    let (mut line, mut read, mut i) = (String::new(), 0u64, 0usize);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| LineError(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if let Some(spec) =
            parse_line(format, &line, i == 0).map_err(|e| LineError(format!("{}:{}: {e}", path.display(), i + 1)))?
        {
            pending.push(spec);
        }
        i += 1;
        if pending.len() >= batch {
            send(std::mem::replace(&mut pending, Vec::with_capacity(batch)), read)?;
        }
    }
    if !pending.is_empty() {
        send(pending, read)?;
    }
    Ok(())
}

/// The certificate files directly in `dir` (`.pem`, `.crt`, `.cer`, `.der`), sorted.
pub fn cert_files(dir: &Path) -> Result<Vec<PathBuf>, LineError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LineError(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(|e| LineError(format!("{}: {e}", dir.display())))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if path.is_file() && ["pem", "crt", "cer", "der"].contains(&ext.as_str()) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_txt_lines() {
        let v = parse_line(Format::Index, "V\t271231235959Z\t\t1A2B\tunknown\t/CN=a", false).unwrap().unwrap();
        assert_eq!(v.serial, "1A2B");
        assert!(v.revocation.is_none());
        assert_eq!(v.not_after, Some(1_830_297_599));
        let r = parse_line(Format::Index, "R\t271231235959Z\t240102030405Z,keyCompromise\t0C\tunknown\t/CN=b", false)
            .unwrap()
            .unwrap();
        let rev = r.revocation.unwrap();
        assert_eq!(rev.reason, "keyCompromise");
        assert_eq!(rev.time, 1_704_164_645);
        let hold = parse_line(
            Format::Index,
            "R\t271231235959Z\t240102030405Z,holdInstruction,1.2.840.10040.2.2\t0D\tunknown\t/CN=c",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(hold.revocation.unwrap().reason, "certificateHold");
        let ca = parse_line(Format::Index, "R\t271231235959Z\t240102030405Z,CACompromise\t0E\tunknown\t/CN=d", false)
            .unwrap()
            .unwrap();
        assert_eq!(ca.revocation.unwrap().reason, "cACompromise");
        assert!(parse_line(Format::Index, "X\t271231235959Z\t\t1A\tunknown\t/CN=a", false).is_err());
        assert!(parse_line(Format::Index, "V\tsoon\t\t1A\tunknown\t/CN=a", false).is_err());
    }

    #[test]
    fn non_ascii_times_are_errors_not_panics() {
        // fuzz/artifacts/import_line/crash-188210ad...: an expiry field with a multi-byte
        // character where two digits were expected.
        assert!(parse_line(Format::Index, "V\t\u{fffd}\u{0}12312359Z\t\t1A2B\tunknown\t/CN=a", false).is_err());
        assert!(parse_line(Format::Index, "R\t271231235959Z\t2\u{e9}010203045Z\t0C\tunknown\t/CN=b", false).is_err());
    }

    #[test]
    fn csv_and_serial_lines() {
        assert!(parse_line(Format::Csv, "serial,not_after", true).unwrap().is_none());
        let c = parse_line(Format::Csv, "0a0b,2030-01-01T00:00:00Z", false).unwrap().unwrap();
        assert_eq!(c.not_after, Some(1_893_456_000));
        assert!(parse_line(Format::Csv, "0a0b,later", false).is_err());
        assert!(parse_line(Format::Serials, "# comment", false).unwrap().is_none());
        assert!(parse_line(Format::Serials, "xyz", false).is_err());
    }
}
