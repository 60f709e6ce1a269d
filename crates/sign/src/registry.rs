use crate::{IdentityError, ResponderIdentity, SignError, Signer, SoftwareSigner, ValidityPolicy};
use ocsp_proto::x509::CertInfo;
use ocsp_proto::{CertId, HashAlg, IssuerHashes, IssuerKey};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Loads the signer a key reference names: `file:<path>` is a PKCS#8 PEM file; `pkcs11:...`
/// a key on a PKCS#11 token (see [`crate::Pkcs11Ref`]).
pub fn load_signer(key_ref: &str) -> Result<Arc<dyn Signer>, SignError> {
    if let Some(path) = key_ref.strip_prefix("file:") {
        return Ok(Arc::new(SoftwareSigner::from_file(std::path::Path::new(path))?));
    }
    if key_ref.starts_with("pkcs11:") {
        return Ok(Arc::new(crate::Pkcs11Signer::open(key_ref)?));
    }
    Err(SignError::BadKey {
        source_name: key_ref.to_string(),
        reason: "unknown key reference; expected file:<path to PKCS#8 PEM> or pkcs11:<RFC 7512 URI>".into(),
    })
}

/// One issuer we answer for, with the identity that signs its responses.
#[derive(Debug, Clone)]
pub struct IssuerEntry {
    /// The operator's name for it.
    pub name: String,
    /// The canonical database key.
    pub key: IssuerKey,
    /// Its hashes in both algorithms.
    pub hashes: IssuerHashes,
    /// Its certificate.
    pub cert: CertInfo,
    /// Who signs for it.
    pub identity: ResponderIdentity,
    /// The spare identity, with another key, ready to be promoted (`ocspctl issuer promote`).
    pub backup: Option<ResponderIdentity>,
}

/// Why an issuer could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A certificate does not parse.
    #[error("{what}: {source}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// Why.
        source: ocsp_proto::ProtoError,
    },
    /// The key does not load.
    #[error(transparent)]
    Key(#[from] SignError),
    /// The identity breaks rules.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl IssuerEntry {
    /// Builds and validates an entry: parses both certificates, loads the key, checks the
    /// identity rules at `now`.
    pub fn load(
        name: &str,
        issuer_der: &[u8],
        responder_der: Option<&[u8]>,
        key_ref: &str,
        now: i64,
    ) -> Result<IssuerEntry, LoadError> {
        IssuerEntry::load_with(name, issuer_der, responder_der, key_ref, now, ValidityPolicy::Require)
    }

    /// As [`IssuerEntry::load`], with the validity rule applied as `validity` says.
    pub fn load_with(
        name: &str,
        issuer_der: &[u8],
        responder_der: Option<&[u8]>,
        key_ref: &str,
        now: i64,
        validity: ValidityPolicy,
    ) -> Result<IssuerEntry, LoadError> {
        let cert = CertInfo::from_der(issuer_der)
            .map_err(|source| LoadError::Certificate { what: format!("issuer {name} certificate"), source })?;
        let responder = responder_der.map(CertInfo::from_der).transpose().map_err(|source| LoadError::Certificate {
            what: format!("issuer {name} responder certificate"),
            source,
        })?;
        let signer = load_signer(key_ref)?;
        let what = format!("of issuer {name} (key {key_ref})");
        let identity = ResponderIdentity::checked(&cert, responder, signer, now, &what, validity)?;
        let hashes = IssuerHashes::of(&cert);
        Ok(IssuerEntry { name: name.to_string(), key: hashes.key(), hashes, cert, identity, backup: None })
    }

    /// Adds the backup identity, checked by the same rules; its key must differ from the
    /// primary's (a spare with the same key is no spare when that key is compromised).
    pub fn with_backup(self, responder_der: Option<&[u8]>, key_ref: &str, now: i64) -> Result<IssuerEntry, LoadError> {
        self.with_backup_checked(responder_der, key_ref, now, ValidityPolicy::Require)
    }

    /// As [`IssuerEntry::with_backup`], with the validity rule applied as `validity` says
    /// (promotion checks it again, strictly).
    pub fn with_backup_checked(
        mut self,
        responder_der: Option<&[u8]>,
        key_ref: &str,
        now: i64,
        validity: ValidityPolicy,
    ) -> Result<IssuerEntry, LoadError> {
        let responder = responder_der.map(CertInfo::from_der).transpose().map_err(|source| LoadError::Certificate {
            what: format!("issuer {} backup responder certificate", self.name),
            source,
        })?;
        let signer = load_signer(key_ref)?;
        let what = format!("backup of issuer {} (key {key_ref})", self.name);
        let backup = ResponderIdentity::checked(&self.cert, responder, signer, now, &what, validity)?;
        if backup.signer().public_key() == self.identity.signer().public_key() {
            return Err(LoadError::Identity(crate::IdentityError {
                what,
                broken: vec![crate::IdentityRule::DistinctBackupKey],
            }));
        }
        self.backup = Some(backup);
        Ok(self)
    }

    /// The entry after promoting the backup: the backup signs; no backup is left.
    pub fn promoted(&self) -> Option<IssuerEntry> {
        let backup = self.backup.clone()?;
        Some(IssuerEntry {
            name: self.name.clone(),
            key: self.key,
            hashes: self.hashes.clone(),
            cert: self.cert.clone(),
            identity: backup,
            backup: None,
        })
    }
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<(HashAlg, Vec<u8>, Vec<u8>), Arc<IssuerEntry>>,
    by_name: HashMap<String, Arc<IssuerEntry>>,
}

/// The issuers this responder answers for, found by either CertID hash form or by name.
///
/// Reads take a snapshot (`Arc`) so a request never waits on a registration for long.
#[derive(Default)]
pub struct IssuerRegistry {
    inner: RwLock<Arc<Inner>>,
}

impl std::fmt::Debug for IssuerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerRegistry").field("issuers", &self.len()).finish()
    }
}

impl IssuerRegistry {
    fn snapshot(&self) -> Arc<Inner> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The issuer a CertID names, matched on its name hash and key hash together.
    pub fn find(&self, id: &CertId) -> Option<Arc<IssuerEntry>> {
        self.snapshot().by_hash.get(&(id.hash, id.name_hash.clone(), id.key_hash.clone())).cloned()
    }

    /// The issuer with this operator name.
    pub fn by_name(&self, name: &str) -> Option<Arc<IssuerEntry>> {
        self.snapshot().by_name.get(name).cloned()
    }

    /// The issuer with this database key.
    pub fn by_key(&self, key: &IssuerKey) -> Option<Arc<IssuerEntry>> {
        self.snapshot().by_hash.get(&(HashAlg::Sha256, key.0[..32].to_vec(), key.0[32..].to_vec())).cloned()
    }

    /// Every issuer, by name.
    pub fn all(&self) -> Vec<Arc<IssuerEntry>> {
        let mut v: Vec<_> = self.snapshot().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of issuers.
    pub fn len(&self) -> usize {
        self.snapshot().by_name.len()
    }

    /// True when no issuer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the snapshot with `change` applied to a copy of it.
    fn update<T>(&self, change: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = Inner { by_hash: guard.by_hash.clone(), by_name: guard.by_name.clone() };
        let out = change(&mut next);
        *guard = Arc::new(next);
        out
    }

    /// Removes an issuer by name (it then answers unauthorized). Returns it if it was there.
    pub fn remove(&self, name: &str) -> Option<Arc<IssuerEntry>> {
        self.update(|next| next.remove(name))
    }

    /// Adds or replaces an issuer (replacing by name and by hashes).
    pub fn insert(&self, entry: IssuerEntry) {
        let entry = Arc::new(entry);
        self.update(|next| {
            next.remove(&entry.name);
            for alg in HashAlg::ALL {
                let (n, k) = entry.hashes.pair(alg);
                next.by_hash.insert((alg, n.to_vec(), k.to_vec()), entry.clone());
            }
            next.by_name.insert(entry.name.clone(), entry.clone());
        })
    }
}

impl Inner {
    fn remove(&mut self, name: &str) -> Option<Arc<IssuerEntry>> {
        let old = self.by_name.remove(name)?;
        for alg in HashAlg::ALL {
            let (n, k) = old.hashes.pair(alg);
            self.by_hash.remove(&(alg, n.to_vec(), k.to_vec()));
        }
        Some(old)
    }
}
