//! Per-issuer policies: which revocation reasons an issuer may state (its reason profile) and
//! what it does with request nonces. Pure rules; the configuration names them per issuer.

use crate::RevocationReason;
use std::collections::BTreeMap;
use std::fmt;

/// The revocation reasons an issuer may state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasonProfile {
    /// CA/Browser Forum TLS Baseline Requirements 4.9.1 and 7.2.2: subscriber certificates
    /// take keyCompromise, affiliationChanged, superseded, cessationOfOperation,
    /// privilegeWithdrawn or no reason (unspecified, never encoded); certificateHold is refused
    /// (BR 4.9.13); a CA certificate must carry one of those reasons or cACompromise.
    #[default]
    TlsBr,
    /// Every RFC 5280 reason, holds included (private PKIs).
    Private,
}

/// The reasons BR 7.2.2 permits in a TLS CA's CRLs and OCSP responses.
pub const BR_REASONS: [RevocationReason; 5] = [
    RevocationReason::KeyCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::PrivilegeWithdrawn,
];

/// Why a reason was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReasonRefused {
    /// The profile does not permit this reason at all.
    #[error("{reason} is not permitted under the {profile} profile ({why})")]
    NotPermitted {
        /// The reason asked for.
        reason: RevocationReason,
        /// The issuer's profile.
        profile: ReasonProfile,
        /// The rule, for the operator.
        why: &'static str,
    },
    /// A CA certificate revoked with no reason.
    #[error("a CA certificate must be revoked with a reason under the {0} profile (BR 7.2.2: keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn)")]
    CaNeedsReason(ReasonProfile),
    /// removeFromCRL is a delta-CRL marker, never a revocation.
    #[error("removeFromCRL is not a revocation reason; `ocspctl unhold` lifts a certificateHold")]
    RemoveFromCrl,
}

impl ReasonProfile {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            ReasonProfile::TlsBr => "tls-br",
            ReasonProfile::Private => "private",
        }
    }

    /// Parses `tls-br` or `private`.
    pub fn parse(text: &str) -> Result<ReasonProfile, String> {
        match text {
            "tls-br" => Ok(ReasonProfile::TlsBr),
            "private" => Ok(ReasonProfile::Private),
            _ => Err(format!("unknown reason profile {text:?}; use tls-br or private")),
        }
    }

    /// The reason to record for a revocation with `reason` (none when unspecified) of a
    /// certificate that is (`ca`) or is not a CA certificate, or why it is refused.
    pub fn admit(self, reason: RevocationReason, ca: bool) -> Result<Option<RevocationReason>, ReasonRefused> {
        use RevocationReason as R;
        if reason == R::RemoveFromCrl {
            return Err(ReasonRefused::RemoveFromCrl);
        }
        match self {
            ReasonProfile::Private => Ok((reason != R::Unspecified).then_some(reason)),
            ReasonProfile::TlsBr => match reason {
                R::Unspecified if ca => Err(ReasonRefused::CaNeedsReason(self)),
                R::Unspecified => Ok(None),
                r if BR_REASONS.contains(&r) => Ok(Some(r)),
                R::CaCompromise if ca => Ok(Some(reason)),
                R::CertificateHold => Err(ReasonRefused::NotPermitted {
                    reason,
                    profile: self,
                    why: "BR 4.9.13: certificates are never suspended",
                }),
                _ => Err(ReasonRefused::NotPermitted {
                    reason,
                    profile: self,
                    why: "BR 7.2.2 permits keyCompromise, affiliationChanged, superseded, cessationOfOperation and privilegeWithdrawn; cACompromise only for CA certificates",
                }),
            },
        }
    }
}

impl fmt::Display for ReasonProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an issuer does with a nonce in a request (RFC 8954).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoncePolicy {
    /// The nonce is ignored and the pre-signed, cacheable answer served (RFC 5019).
    #[default]
    Ignore,
    /// A request with a nonce gets a live-signed answer echoing it, never cached; a nonce
    /// outside 1 to 32 octets gets malformedRequest.
    Echo,
}

impl NoncePolicy {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            NoncePolicy::Ignore => "ignore",
            NoncePolicy::Echo => "echo",
        }
    }

    /// Parses `ignore` or `echo`.
    pub fn parse(text: &str) -> Result<NoncePolicy, String> {
        match text {
            "ignore" => Ok(NoncePolicy::Ignore),
            "echo" => Ok(NoncePolicy::Echo),
            _ => Err(format!("unknown nonce policy {text:?}; use ignore or echo")),
        }
    }
}

/// One issuer's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IssuerPolicy {
    /// Which revocation reasons it may state.
    pub reasons: ReasonProfile,
    /// What it does with nonces.
    pub nonces: NoncePolicy,
}

/// Every issuer's policies: a default and overrides by issuer name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    /// For issuers not named below.
    pub default: IssuerPolicy,
    /// By the issuer's registered name.
    pub by_issuer: BTreeMap<String, IssuerPolicy>,
}

impl Policies {
    /// The policy of the issuer registered as `name`.
    pub fn of(&self, name: &str) -> IssuerPolicy {
        self.by_issuer.get(name).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RevocationReason as R;

    #[test]
    fn tls_br_admits_the_br_reasons_and_drops_unspecified() {
        let p = ReasonProfile::TlsBr;
        for r in BR_REASONS {
            assert_eq!(p.admit(r, false), Ok(Some(r)));
            assert_eq!(p.admit(r, true), Ok(Some(r)));
        }
        assert_eq!(p.admit(R::Unspecified, false), Ok(None));
        assert_eq!(p.admit(R::Unspecified, true), Err(ReasonRefused::CaNeedsReason(p)));
        assert_eq!(p.admit(R::CaCompromise, true), Ok(Some(R::CaCompromise)));
        for r in [R::CertificateHold, R::CaCompromise, R::AaCompromise, R::RemoveFromCrl] {
            assert!(p.admit(r, false).is_err(), "{r}");
        }
    }

    #[test]
    fn private_admits_every_reason_but_remove_from_crl() {
        let p = ReasonProfile::Private;
        for r in RevocationReason::ALL {
            match r {
                R::RemoveFromCrl => assert!(p.admit(r, false).is_err()),
                R::Unspecified => assert_eq!(p.admit(r, true), Ok(None)),
                _ => assert_eq!(p.admit(r, false), Ok(Some(r))),
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for p in [ReasonProfile::TlsBr, ReasonProfile::Private] {
            assert_eq!(ReasonProfile::parse(p.name()), Ok(p));
        }
        for n in [NoncePolicy::Ignore, NoncePolicy::Echo] {
            assert_eq!(NoncePolicy::parse(n.name()), Ok(n));
        }
        assert!(ReasonProfile::parse("strict").is_err());
        assert!(NoncePolicy::parse("always").is_err());
    }
}
