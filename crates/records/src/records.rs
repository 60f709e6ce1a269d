use crate::StoreError;
use base64::Engine;
use ocsp_proto::{CertStatus, RevocationReason};
use serde::{Deserialize, Serialize};

/// A registered issuer: its certificate and the identity that signs for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerRecord {
    /// The operator's name for it, unique.
    pub name: String,
    /// The issuer certificate, DER.
    #[serde(with = "b64")]
    pub cert_der: Vec<u8>,
    /// The delegated responder certificate, DER; none when the issuer signs itself.
    #[serde(with = "b64_opt", default)]
    pub responder_cert_der: Option<Vec<u8>>,
    /// Where the signing key is: `file:<absolute path>` or a `pkcs11:` URI.
    pub responder_key: String,
    /// The backup responder certificate, DER (none when the issuer's own backup key signs).
    #[serde(with = "b64_opt", default, skip_serializing_if = "Option::is_none")]
    pub backup_responder_cert_der: Option<Vec<u8>>,
    /// The backup signing key, if a backup identity is provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_responder_key: Option<String>,
    /// When it was registered.
    pub added_at: i64,
    /// When it was retired (it then answers unauthorized); its records are kept.
    #[serde(default)]
    pub retired_at: Option<i64>,
    /// Where the issuer's own key is, to sign its CRLs (`file:` or `pkcs11:`); none: no CRLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_key: Option<String>,
    /// How many shards its CRL is cut into, fixed when the CRL key is first set (a
    /// certificate names its shard's URL, so the count never changes afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_shards: Option<u32>,
}

impl IssuerRecord {
    /// The stored form of the issuer record (JSON).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Reads the stored form of the issuer record.
    pub fn decode(bytes: &[u8]) -> Result<IssuerRecord, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("issuer record: {e}")))
    }
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

mod b64_opt {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// An issued certificate to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Its serial.
    pub serial: ocsp_proto::Serial,
    /// Its notAfter (0 when unknown).
    pub not_after: i64,
    /// It is a CA certificate.
    pub ca: bool,
}

/// Whether a recorded certificate is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Issued, not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// Revocation time, seconds since the epoch.
        time: i64,
        /// Reason, if given.
        reason: Option<RevocationReason>,
    },
}

/// The stored status of one issued certificate.
///
/// Encoded in 27 bytes: version (1), state (0 good, 1 revoked; bit 7 set for a CA
/// certificate), notAfter (i64 BE), revocation time (i64 BE), reason (u8, 255 none), last
/// change (i64 BE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRecord {
    /// Current state.
    pub state: State,
    /// The certificate's notAfter (0 when unknown).
    pub not_after: i64,
    /// When this record last changed.
    pub updated_at: i64,
    /// The certificate is a CA certificate (basicConstraints cA, or recorded as one): under
    /// the tls-br reason profile its revocation must carry a reason.
    pub ca: bool,
}

const CA_BIT: u8 = 0x80;
/// The length of an encoded [`StatusRecord`].
pub const RECORD_LEN: usize = 27;
const NO_REASON: u8 = 255;

/// What a revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The certificate was good and is now revoked.
    Revoked(StatusRecord),
    /// The certificate was revoked and its reason changed (to keyCompromise, or a hold lifted
    /// into a final revocation).
    Changed(StatusRecord),
    /// Already revoked with this reason: nothing changed.
    AlreadyRevoked(StatusRecord),
    /// Already revoked with another reason that may not be changed to this one.
    Refused {
        /// The record as it stands.
        current: StatusRecord,
    },
    /// The serial was never recorded as issued under that issuer.
    NotIssued,
}

impl StatusRecord {
    /// The rule for lifting a hold: only certificateHold can be lifted, and the certificate
    /// is then good again (as recorded, keeping its expiry and CA flag); `None` otherwise.
    pub fn unheld(&self, now: i64) -> Option<StatusRecord> {
        matches!(self.state, State::Revoked { reason: Some(RevocationReason::CertificateHold), .. })
            .then(|| StatusRecord::issued(self.not_after, now, self.ca))
    }

    /// A freshly issued certificate.
    pub fn good(not_after: i64, now: i64) -> StatusRecord {
        StatusRecord { state: State::Good, not_after, updated_at: now, ca: false }
    }

    /// A freshly issued certificate that is (`ca`) or is not a CA certificate.
    pub fn issued(not_after: i64, now: i64, ca: bool) -> StatusRecord {
        StatusRecord { ca, ..StatusRecord::good(not_after, now) }
    }

    /// The OCSP status this record states.
    pub fn cert_status(&self) -> CertStatus {
        match self.state {
            State::Good => CertStatus::Good,
            State::Revoked { time, reason } => CertStatus::Revoked { time, reason },
        }
    }

    /// Applies a revocation request to this record.
    pub fn revoke(&self, time: i64, reason: RevocationReason, now: i64) -> RevokeOutcome {
        let revoked = StatusRecord {
            state: State::Revoked { time, reason: Some(reason) },
            not_after: self.not_after,
            updated_at: now,
            ca: self.ca,
        };
        match self.state {
            State::Good => RevokeOutcome::Revoked(revoked),
            State::Revoked { reason: Some(current), .. } if current == reason => RevokeOutcome::AlreadyRevoked(*self),
            State::Revoked { time: old_time, reason: current } => {
                let from_hold = current == Some(RevocationReason::CertificateHold);
                if reason == RevocationReason::KeyCompromise {
                    // keyCompromise may move the time earlier, never later.
                    let t = time.min(old_time);
                    let rec = StatusRecord { state: State::Revoked { time: t, reason: Some(reason) }, ..revoked };
                    RevokeOutcome::Changed(rec)
                } else if from_hold && reason != RevocationReason::RemoveFromCrl {
                    RevokeOutcome::Changed(revoked)
                } else {
                    RevokeOutcome::Refused { current: *self }
                }
            }
        }
    }

    /// Encodes the record.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0] = 1;
        let (state, time, reason) = match self.state {
            State::Good => (0, 0, NO_REASON),
            State::Revoked { time, reason } => (1, time, reason.map_or(NO_REASON, |r| r.code())),
        };
        b[1] = state | if self.ca { CA_BIT } else { 0 };
        b[2..10].copy_from_slice(&self.not_after.to_be_bytes());
        b[10..18].copy_from_slice(&time.to_be_bytes());
        b[18] = reason;
        b[19..27].copy_from_slice(&self.updated_at.to_be_bytes());
        b
    }

    /// Decodes a record.
    pub fn decode(b: &[u8]) -> Result<StatusRecord, StoreError> {
        if b.len() != RECORD_LEN || b[0] != 1 {
            return Err(StoreError::Corrupt(format!("status record of {} bytes, version {:?}", b.len(), b.first())));
        }
        let i64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        let state = match b[1] & !CA_BIT {
            0 => State::Good,
            1 => State::Revoked {
                time: i64_at(10),
                reason: if b[18] == NO_REASON {
                    None
                } else {
                    Some(
                        RevocationReason::from_code(b[18])
                            .ok_or_else(|| StoreError::Corrupt(format!("reason code {}", b[18])))?,
                    )
                },
            },
            s => return Err(StoreError::Corrupt(format!("state {s}"))),
        };
        Ok(StatusRecord { state, not_after: i64_at(2), updated_at: i64_at(19), ca: b[1] & CA_BIT != 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason() -> impl Strategy<Value = Option<RevocationReason>> {
        prop_oneof![Just(None), proptest::sample::select(RevocationReason::ALL.to_vec()).prop_map(Some)]
    }

    proptest! {
        #[test]
        fn record_round_trip(revoked in any::<bool>(), t in any::<i64>(), na in any::<i64>(), up in any::<i64>(), r in reason(), ca in any::<bool>()) {
            let state = if revoked { State::Revoked { time: t, reason: r } } else { State::Good };
            let rec = StatusRecord { state, not_after: na, updated_at: up, ca };
            prop_assert_eq!(StatusRecord::decode(&rec.encode()).unwrap(), rec);
        }
    }

    #[test]
    fn revocation_rules() {
        use RevocationReason as R;
        let good = StatusRecord::good(100, 1);
        let RevokeOutcome::Revoked(superseded) = good.revoke(50, R::Superseded, 2) else { panic!("good revokes") };
        assert!(matches!(superseded.revoke(50, R::Superseded, 3), RevokeOutcome::AlreadyRevoked(_)));
        assert!(matches!(superseded.revoke(50, R::CessationOfOperation, 3), RevokeOutcome::Refused { .. }));
        let RevokeOutcome::Changed(kc) = superseded.revoke(10, R::KeyCompromise, 3) else { panic!("to keyCompromise") };
        assert_eq!(kc.state, State::Revoked { time: 10, reason: Some(R::KeyCompromise) });
        let RevokeOutcome::Revoked(hold) = good.revoke(50, R::CertificateHold, 2) else { panic!() };
        assert!(matches!(hold.revoke(60, R::Superseded, 3), RevokeOutcome::Changed(_)));
        assert!(StatusRecord::decode(&[0u8; 5]).is_err());
    }
}
