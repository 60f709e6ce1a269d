//! A change of a fleet's shared feed with the records it brings to a replica.

use crate::{Change, IssuerRecord, StatusRecord, StoredCrl, StoredResponse};
use ocsp_proto::{HashAlg, Serial};

/// One change of the shared feed with the records it brings, as they stand in the shared
/// database when read (never older than the change).
#[derive(Debug, Clone, Default)]
pub struct Mirrored {
    /// The change, numbered as in the shared feed.
    pub change: Option<Change>,
    /// Status records of the certificates it names (Recorded, Status).
    pub statuses: Vec<(Serial, StatusRecord)>,
    /// The issuer's record (Signer, Issuer).
    pub issuer: Option<IssuerRecord>,
    /// Every stored response of the issuer goes (its signer changed).
    pub drop_responses: bool,
    /// Signed responses (Signed); each is kept only if the status here is the one it was
    /// signed from.
    pub responses: Vec<(Serial, HashAlg, StoredResponse)>,
    /// A signed CRL shard (Crl); kept only if its number is above the stored one.
    pub crl: Option<StoredCrl>,
}
