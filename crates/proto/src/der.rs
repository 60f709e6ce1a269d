//! A minimal DER reader and writer for the few places where the exact bytes matter: hashing an
//! issuer's name and key as they stand in its certificate, and wrapping an already-encoded,
//! already-signed `ResponseData` without decoding and re-encoding it.

/// One DER element: its tag byte, its content, and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet (only low tag numbers are supported).
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
    /// Tag, length and content together.
    pub raw: &'a [u8],
}

/// Why DER bytes do not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DerError {
    /// The bytes end inside an element.
    #[error("truncated DER ({0})")]
    Truncated(&'static str),
    /// A form DER forbids or this reader does not take (indefinite, non-minimal or oversized
    /// lengths, high tag numbers).
    #[error("not DER: {0}")]
    Form(&'static str),
    /// An element with another tag than the one expected.
    #[error("expected tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag {
        /// The tag wanted.
        expected: u8,
        /// The tag found.
        found: u8,
    },
}

/// Reads DER elements one after another from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag, without reading it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let bytes = self.rest;
        let (&tag, after_tag) = bytes.split_first().ok_or(DerError::Truncated("unexpected end of data"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::Form("high tag numbers are not supported"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(DerError::Truncated("missing length"))?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return Err(DerError::Form("indefinite or oversized length"));
            }
            if after_len.len() < n {
                return Err(DerError::Truncated("truncated length"));
            }
            let mut len = 0usize;
            for &b in &after_len[..n] {
                len = (len << 8) | b as usize;
            }
            if len < 0x80 || (n > 1 && after_len[0] == 0) {
                return Err(DerError::Form("non-minimal length"));
            }
            after_len = &after_len[n..];
            len
        };
        if after_len.len() < len {
            return Err(DerError::Truncated("truncated element"));
        }
        let header = bytes.len() - after_len.len();
        let raw = &bytes[..header + len];
        self.rest = &bytes[header + len..];
        Ok(Tlv { tag, value: &raw[header..], raw })
    }

    /// Reads the next element and checks its tag.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        let tlv = self.any()?;
        if tlv.tag != tag {
            return Err(DerError::UnexpectedTag { expected: tag, found: tlv.tag });
        }
        Ok(tlv)
    }

    /// Reads the next element if it has `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// DER tag numbers used here.
pub mod tag {
    /// BOOLEAN
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// ENUMERATED
    pub const ENUMERATED: u8 = 0x0a;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE
    pub const SEQUENCE: u8 = 0x30;
    /// SET
    pub const SET: u8 = 0x31;
    /// [n] EXPLICIT (constructed, context-specific)
    pub const fn explicit(n: u8) -> u8 {
        0xa0 | n
    }
}

/// Appends one element with `tag` and the content written by `content`.
pub fn write(out: &mut Vec<u8>, tag: u8, content: &[&[u8]]) {
    let len: usize = content.iter().map(|c| c.len()).sum();
    out.push(tag);
    write_len(out, len);
    for c in content {
        out.extend_from_slice(c);
    }
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one element and returns it.
pub fn element(tag: u8, content: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.iter().map(|c| c.len()).sum::<usize>() + 6);
    write(&mut out, tag, content);
    out
}

/// A DER INTEGER of the unsigned big-endian `value`: leading zeros dropped, one added back
/// when the top bit is set (RSA moduli, ECDSA r and s).
pub fn unsigned_integer(value: &[u8]) -> Vec<u8> {
    let start = value.iter().position(|b| *b != 0).unwrap_or(value.len().saturating_sub(1));
    let trimmed = &value[start..];
    let pad: &[u8] = if trimmed.first().is_some_and(|b| b & 0x80 != 0) { &[0] } else { &[] };
    element(tag::INTEGER, &[pad, trimmed])
}

/// Decodes the arcs of an OBJECT IDENTIFIER's content octets.
pub fn oid_arcs(content: &[u8]) -> Option<Vec<u32>> {
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        if acc == 0 && b == 0x80 {
            return None;
        }
        acc = (acc << 7) | (b & 0x7f) as u64;
        if acc > u32::MAX as u64 {
            return None;
        }
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first as u32);
                arcs.push((acc - first * 40) as u32);
            } else {
                arcs.push(acc as u32);
            }
            acc = 0;
        } else if i == content.len() - 1 {
            return None;
        }
    }
    (!arcs.is_empty()).then_some(arcs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unsigned_integers_are_minimal_and_positive() {
        use super::unsigned_integer;
        assert_eq!(unsigned_integer(&[0, 0, 0x7f]), vec![0x02, 0x01, 0x7f]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![0x02, 0x01, 0x00]);
        assert_eq!(unsigned_integer(&[0x01, 0x00, 0x01]), vec![0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536] {
            let content = vec![7u8; len];
            let enc = element(tag::OCTET_STRING, &[&content]);
            let mut r = Reader::new(&enc);
            let tlv = r.expect(tag::OCTET_STRING).expect("decodes");
            assert_eq!(tlv.value.len(), len);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn rejects_truncation_and_indefinite_length() {
        assert!(Reader::new(&[0x30, 0x05, 1, 2]).any().is_err());
        assert!(Reader::new(&[0x30, 0x80, 0, 0]).any().is_err());
        assert!(Reader::new(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).any().is_err());
        assert!(Reader::new(&[]).any().is_err());
    }

    #[test]
    fn oid_decoding() {
        assert_eq!(oid_arcs(&[0x2b, 0x0e, 0x03, 0x02, 0x1a]), Some(vec![1, 3, 14, 3, 2, 26]));
        assert_eq!(oid_arcs(&[0x2b, 0x86]), None);
    }
}
