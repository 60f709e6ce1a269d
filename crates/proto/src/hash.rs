use aws_lc_rs::digest;

/// The hash algorithms a CertID may use here: SHA-1 (what RFC 5019 clients send) and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA-1, id-sha1 (1.3.14.3.2.26).
    Sha1,
    /// SHA-256, id-sha256 (2.16.840.1.101.3.4.2.1).
    Sha256,
}

impl HashAlg {
    /// Both algorithms, in the order responses are pre-computed.
    pub const ALL: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];

    /// The OID arcs of the algorithm.
    pub fn oid_arcs(self) -> &'static [u32] {
        match self {
            HashAlg::Sha1 => &[1, 3, 14, 3, 2, 26],
            HashAlg::Sha256 => &[2, 16, 840, 1, 101, 3, 4, 2, 1],
        }
    }

    /// Recognises an algorithm by its OID arcs.
    pub fn from_oid_arcs(arcs: &[u32]) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|h| h.oid_arcs() == arcs)
    }

    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
        }
    }

    /// Never true; present because `len` is.
    pub fn is_empty(self) -> bool {
        false
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
        }
    }

    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}
