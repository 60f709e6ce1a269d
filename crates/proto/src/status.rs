use std::fmt;

/// A revocation reason (RFC 5280 CRLReason). Value 7 is unused in the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum RevocationReason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 10] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::RemoveFromCrl,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason with this code, if any.
    pub fn from_code(code: u8) -> Option<RevocationReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::RemoveFromCrl => "removeFromCRL",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// Parses an RFC 5280 name (any case, `-` and `_` ignored) or a numeric code.
    pub fn parse(text: &str) -> Result<RevocationReason, String> {
        let folded: String = text.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
        if let Ok(code) = folded.parse::<u8>() {
            return Self::from_code(code).ok_or_else(|| format!("revocation reason code {code} does not exist"));
        }
        Self::ALL.into_iter().find(|r| r.name().to_lowercase() == folded).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|r| r.name()).collect();
            format!("unknown revocation reason {text:?}; expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The status of one certificate, as an OCSP SingleResponse states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked at `time` (seconds since the epoch), optionally with a reason.
    Revoked {
        /// When the certificate was revoked.
        time: i64,
        /// Why, if a reason was given.
        reason: Option<RevocationReason>,
    },
    /// Not known to this responder (never issued, as far as the database says).
    Unknown,
}

impl CertStatus {
    /// `good`, `revoked` or `unknown`.
    pub fn label(&self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked { .. } => "revoked",
            CertStatus::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_by_name_and_code() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(r.name()), Ok(r));
            assert_eq!(RevocationReason::parse(&r.code().to_string()), Ok(r));
        }
        assert_eq!(RevocationReason::parse("key-compromise"), Ok(RevocationReason::KeyCompromise));
        assert!(RevocationReason::parse("7").is_err());
        assert!(RevocationReason::parse("stolen").unwrap_err().contains("keyCompromise"));
    }
}
