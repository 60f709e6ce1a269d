//! The records a change carries in its row of the shared feed (`changes.records`): the status
//! records a `Recorded` or `Status` change wrote, the responses a `Signed` change wrote. A
//! replica applies them straight from the feed, which it reads in order by number, instead of
//! looking each certificate up again in `statuses` or `responses` (three nodes re-reading
//! 50,000 statuses by index per bulk-revocation batch was most of the fleet's cost in
//! `fleet_mass_revocation_3m`). Rows written before schema version 2 carry nothing and are
//! brought from the tables as before.
//!
//! Layout: a tag byte (1 statuses, 2 responses), then per record the serial's length (one
//! byte) and bytes, then for statuses the fixed-size status record, for responses the
//! hash-algorithm code (one byte), the length (four bytes, big-endian) and the encoded
//! [`StoredResponse`].

use crate::responses::alg_of;
use ocsp_proto::{HashAlg, Serial};
use ocsp_records::{StatusRecord, StoreError, StoredResponse, RECORD_LEN};

const STATUSES: u8 = 1;
const RESPONSES: u8 = 2;

/// What a change's row carries.
#[derive(Debug, PartialEq)]
pub(crate) enum Carried {
    /// Status records, as the change wrote them.
    Statuses(Vec<(Serial, StatusRecord)>),
    /// Signed responses, as the change wrote them.
    Responses(Vec<(Serial, HashAlg, StoredResponse)>),
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("records carried by a change of the fleet's feed: {what}"))
}

fn put_serial(out: &mut Vec<u8>, serial: &[u8]) {
    // A serial is at most 20 octets (RFC 5280 4.1.2.2) plus a sign octet.
    out.push(serial.len() as u8);
    out.extend_from_slice(serial);
}

/// Encodes status records for a `Recorded` or `Status` change.
pub(crate) fn statuses<'a>(items: impl IntoIterator<Item = (&'a Serial, &'a StatusRecord)>) -> Vec<u8> {
    let mut out = vec![STATUSES];
    for (serial, record) in items {
        put_serial(&mut out, serial.as_bytes());
        out.extend_from_slice(&record.encode());
    }
    out
}

/// Encodes signed responses for a `Signed` change: (serial bytes, algorithm code, encoded
/// [`StoredResponse`]).
pub(crate) fn responses<'a>(items: impl IntoIterator<Item = (&'a [u8], i16, &'a [u8])>) -> Vec<u8> {
    let mut out = vec![RESPONSES];
    for (serial, alg, response) in items {
        put_serial(&mut out, serial);
        out.push(alg as u8);
        out.extend_from_slice(&(response.len() as u32).to_be_bytes());
        out.extend_from_slice(response);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn serial(&mut self) -> Result<Serial, StoreError> {
        let n = self.take(1)?[0] as usize;
        Serial::from_int_bytes(self.take(n)?).map_err(|e| corrupt(&e.to_string()))
    }
}

/// Decodes what a change's row carries.
pub(crate) fn decode(bytes: &[u8]) -> Result<Carried, StoreError> {
    let Some((&tag, rest)) = bytes.split_first() else { return Err(corrupt("empty")) };
    let mut r = Reader(rest);
    match tag {
        STATUSES => {
            let mut out = Vec::new();
            while !r.0.is_empty() {
                let serial = r.serial()?;
                let record = StatusRecord::decode(r.take(RECORD_LEN)?)?;
                out.push((serial, record));
            }
            Ok(Carried::Statuses(out))
        }
        RESPONSES => {
            let mut out = Vec::new();
            while !r.0.is_empty() {
                let serial = r.serial()?;
                let alg = alg_of(i16::from(r.take(1)?[0])).ok_or_else(|| corrupt("hash algorithm"))?;
                let len = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| corrupt("length"))?) as usize;
                out.push((serial, alg, StoredResponse::decode(r.take(len)?)?));
            }
            Ok(Carried::Responses(out))
        }
        _ => Err(corrupt("unknown kind")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn serial(n: u64) -> Serial {
        Serial::from_int_bytes(&n.to_be_bytes()[2..]).unwrap()
    }

    #[test]
    fn status_records_come_back_as_written() {
        let good = StatusRecord::issued(1_900_000_000, 1_700_000_000, false);
        let mut revoked = good;
        revoked.state = ocsp_records::State::Revoked {
            time: 1_700_000_100,
            reason: Some(ocsp_proto::RevocationReason::KeyCompromise),
        };
        let items = [(serial(1), good), (serial(0x0102_0304_0506), revoked)];
        let bytes = statuses(items.iter().map(|(s, r)| (s, r)));
        assert_eq!(decode(&bytes).unwrap(), Carried::Statuses(items.to_vec()));
    }

    #[test]
    fn responses_come_back_as_written() {
        let good = StatusRecord::issued(1_900_000_000, 1_700_000_000, false);
        let response = StoredResponse {
            this_update: 1_700_000_000,
            next_update: 1_700_300_000,
            produced_at: 1_700_000_000,
            source: good.encode(),
            der: vec![0x30, 0x03, 0x0a, 0x01, 0x00],
        };
        let encoded = response.encode();
        let (s1, s2) = (serial(7), serial(0x00ff_ffff_ffff));
        let bytes = responses([(s1.as_bytes(), 1i16, &encoded[..]), (s2.as_bytes(), 2i16, &encoded[..])]);
        assert_eq!(
            decode(&bytes).unwrap(),
            Carried::Responses(vec![(s1, HashAlg::Sha1, response.clone()), (s2, HashAlg::Sha256, response)])
        );
    }

    #[test]
    fn a_cut_or_unknown_row_is_refused_not_guessed() {
        let good = StatusRecord::issued(1_900_000_000, 1_700_000_000, false);
        let bytes = statuses([(&serial(9), &good)]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 1, 2]).is_err());
    }
}
