//! Keys in an HSM, through PKCS#11 (cryptoki). The private key never leaves the token: we
//! find it by token label and key label or id, and ask the token to sign.
//!
//! A key reference is an RFC 7512 PKCS#11 URI:
//!
//! ```text
//! pkcs11:token=ocspd;object=responder-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/ocspd/hsm.pin
//! pkcs11:token=ocspd;id=%01%02?module-path=...&pin-env=OCSPD_HSM_PIN&sessions=4
//! ```
//!
//! P-256 and P-384 keys: the SHA-256 (SHA-384) digest is computed here and signed with CKM_ECDSA (SoftHSM2 and
//! several HSMs refuse CKM_ECDSA_SHA256); RSA keys sign with CKM_SHA256_RSA_PKCS. A pool of
//! sessions (one per core by default) lets every core sign at once. A token error (wrong PIN,
//! closed session, token gone) fails the signature as `Unavailable` (the responder answers
//! tryLater) and drops the connection; the next signature reconnects (at most once a second),
//! re-reading the PIN.

use crate::{SignError, Signer};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use ocsp_proto::SignatureAlgorithm;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where the PIN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (trailing newline ignored).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// A parsed `pkcs11:` key reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Ref {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The token label.
    pub token: String,
    /// The key label (CKA_LABEL), if given.
    pub object: Option<String>,
    /// The key id (CKA_ID), if given.
    pub id: Option<Vec<u8>>,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Sessions in the pool.
    pub sessions: usize,
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    ocsp_proto::percent_decode(s).map_err(|e| format!("{e} in {s:?}"))
}

impl Pkcs11Ref {
    /// Parses a `pkcs11:` URI (see the module documentation).
    pub fn parse(uri: &str) -> Result<Pkcs11Ref, SignError> {
        let bad = |reason: String| SignError::BadKey { source_name: uri.to_string(), reason };
        let rest = uri.strip_prefix("pkcs11:").ok_or_else(|| bad("not a pkcs11: URI".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (mut token, mut object, mut id) = (None, None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| bad(format!("attribute {attr:?} has no '='")))?;
            let text =
                || String::from_utf8(percent_decode(v).map_err(&bad)?).map_err(|_| bad(format!("{k} is not UTF-8")));
            match k {
                "token" => token = Some(text()?),
                "object" => object = Some(text()?),
                "id" => id = Some(percent_decode(v).map_err(&bad)?),
                "type" if v == "private" => {}
                _ => return Err(bad(format!("unsupported attribute {k:?} (use token, object, id)"))),
            }
        }
        let (mut module, mut pin, mut sessions) = (None, None, None);
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| bad(format!("query attribute {attr:?} has no '='")))?;
            let v =
                String::from_utf8(percent_decode(v).map_err(&bad)?).map_err(|_| bad(format!("{k} is not UTF-8")))?;
            match k {
                "module-path" => module = Some(PathBuf::from(v)),
                "pin-source" => {
                    let path = v.strip_prefix("file:").unwrap_or(&v);
                    pin = Some(PinSource::File(PathBuf::from(path)));
                }
                "pin-env" => pin = Some(PinSource::Env(v)),
                "sessions" => {
                    sessions = Some(
                        v.parse::<usize>()
                            .ok()
                            .filter(|n| (1..=256).contains(n))
                            .ok_or_else(|| bad(format!("sessions={v}: must be 1 to 256")))?,
                    )
                }
                _ => {
                    return Err(bad(format!(
                        "unsupported query attribute {k:?} (use module-path, pin-source, pin-env, sessions)"
                    )))
                }
            }
        }
        let token = token.ok_or_else(|| bad("token=<label> is missing".into()))?;
        if object.is_none() && id.is_none() {
            return Err(bad("name the key with object=<label> or id=<hex as %xx>".into()));
        }
        Ok(Pkcs11Ref {
            module: module.ok_or_else(|| bad("module-path=<PKCS#11 library> is missing".into()))?,
            token,
            object,
            id,
            pin: pin.ok_or_else(|| bad("pin-source=file:<path> or pin-env=<variable> is missing".into()))?,
            sessions: sessions.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
        })
    }

    fn read_pin(&self) -> Result<String, String> {
        match &self.pin {
            PinSource::File(p) => crate::files::read_operator_file(p, crate::files::MAX_OPERATOR_FILE)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| format!("PIN file {}: {e}", p.display())),
            PinSource::Env(v) => std::env::var(v).map_err(|_| format!("PIN variable {v} is not set")),
        }
    }

    fn describe(&self) -> String {
        let key = match (&self.object, &self.id) {
            (Some(l), _) => format!("label {l:?}"),
            (None, Some(id)) => format!("id {}", hex::encode(id)),
            (None, None) => "?".into(),
        };
        format!("pkcs11 token {:?} key {key}", self.token)
    }
}

/// The PKCS#11 modules keys may load, set once by the binary from its own configuration.
static ALLOWED_MODULES: std::sync::RwLock<Vec<PathBuf>> = std::sync::RwLock::new(Vec::new());

/// Sets the PKCS#11 modules (shared libraries) that `pkcs11:` keys may name; any other is
/// refused before it is opened. Empty (the default) refuses every module. Paths are compared
/// after resolving symbolic links.
pub fn allow_pkcs11_modules(modules: &[PathBuf]) {
    let resolved = modules.iter().map(|m| std::fs::canonicalize(m).unwrap_or_else(|_| m.clone())).collect();
    *ALLOWED_MODULES.write().unwrap_or_else(|p| p.into_inner()) = resolved;
}

fn check_module_allowed(module: &std::path::Path) -> Result<(), String> {
    let allowed = ALLOWED_MODULES.read().unwrap_or_else(|p| p.into_inner());
    let resolved = std::fs::canonicalize(module).unwrap_or_else(|_| module.to_path_buf());
    if allowed.contains(&resolved) {
        return Ok(());
    }
    Err(format!(
        "PKCS#11 module {} is not allowed by this ocspd (allowed: {}); the operator lists modules with ocspd --pkcs11-module",
        module.display(),
        if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        }
    ))
}

/// One library context per module, for the life of the process: C_Initialize may be called
/// once, and several keys may live behind one module.
fn context(module: &PathBuf) -> Result<Pkcs11, String> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| format!("loading PKCS#11 module {}: {e}", module.display()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(format!("initializing PKCS#11 module {}: {e}", module.display())),
    }
    map.insert(module.clone(), ctx.clone());
    Ok(ctx)
}

/// A logged-in pool of sessions on the token, with the key's handle.
struct Connection {
    key: ObjectHandle,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

struct Opened {
    conn: Connection,
    alg: SignatureAlgorithm,
    public_key: Vec<u8>,
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Option<cryptoki::slot::Slot>, String> {
    let slots = ctx.get_slots_with_token().map_err(|e| format!("listing slots: {e}"))?;
    Ok(slots.into_iter().find(|s| ctx.get_token_info(*s).map(|t| t.label().trim_end() == label).unwrap_or(false)))
}

fn open(r: &Pkcs11Ref) -> Result<Opened, String> {
    let ctx = context(&r.module)?;
    let slot = match find_slot(&ctx, &r.token) {
        Ok(Some(slot)) => slot,
        // A module learns of tokens (re)inserted since it was initialized only when it is
        // initialized again (SoftHSM2, and network HSMs after an outage). Sessions of other
        // keys on this module then fail once and reconnect.
        _ => {
            let _ = ctx.clone().finalize();
            match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(())
                | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::CryptokiAlreadyInitialized, _)) => {}
                Err(e) => return Err(format!("re-initializing PKCS#11 module {}: {e}", r.module.display())),
            }
            find_slot(&ctx, &r.token)?
                .ok_or_else(|| format!("no token labelled {:?} in {}", r.token, r.module.display()))?
        }
    };
    let pin = r.read_pin()?;
    let mut sessions = Vec::with_capacity(r.sessions);
    for _ in 0..r.sessions.max(1) {
        sessions.push(ctx.open_ro_session(slot).map_err(|e| format!("opening a session: {e}"))?);
    }
    // A login is per application and token: one logs in every session.
    match sessions[0].login(UserType::User, Some(&pin.into())) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(format!("login to token {:?}: {e}", r.token)),
    }
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    let mut pub_template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    if let Some(l) = &r.object {
        template.push(Attribute::Label(l.as_bytes().to_vec()));
        pub_template.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &r.id {
        template.push(Attribute::Id(id.clone()));
        pub_template.push(Attribute::Id(id.clone()));
    }
    let s = &sessions[0];
    let keys = s.find_objects(&template).map_err(|e| format!("finding the private key: {e}"))?;
    let key = match keys.as_slice() {
        [k] => *k,
        [] => return Err("no such private key on the token".into()),
        _ => return Err(format!("{} private keys match; name one by object= and id=", keys.len())),
    };
    let key_type = s
        .get_attributes(key, &[AttributeType::KeyType])
        .map_err(|e| format!("reading the key type: {e}"))?
        .into_iter()
        .find_map(|a| if let Attribute::KeyType(t) = a { Some(t) } else { None })
        .ok_or("the key has no CKA_KEY_TYPE")?;
    let pubs = s.find_objects(&pub_template).map_err(|e| format!("finding the public key: {e}"))?;
    let public = *pubs.first().ok_or("no public key object with the same label/id on the token")?;
    let (alg, public_key) = if key_type == KeyType::EC {
        let attrs = s
            .get_attributes(public, &[AttributeType::EcPoint, AttributeType::EcParams])
            .map_err(|e| format!("reading the public key: {e}"))?;
        let mut point = None;
        let mut params = None;
        for a in attrs {
            match a {
                Attribute::EcPoint(p) => point = Some(p),
                Attribute::EcParams(p) => params = Some(p),
                _ => {}
            }
        }
        // id-ecPrime256v1 (1.2.840.10045.3.1.7) and secp384r1 (1.3.132.0.34)
        const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const P384: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        let (alg, len) = match params.as_deref() {
            Some(p) if p == P256 => (SignatureAlgorithm::EcdsaP256Sha256, 65),
            Some(p) if p == P384 => (SignatureAlgorithm::EcdsaP384Sha384, 97),
            _ => return Err("the EC key is on neither P-256 nor P-384".into()),
        };
        let point = point.ok_or("the public key has no CKA_EC_POINT")?;
        // CKA_EC_POINT is a DER OCTET STRING holding the point (some tokens give it raw).
        let raw = match point.as_slice() {
            [0x04, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => rest.to_vec(),
            raw if raw.len() == len && raw[0] == 0x04 => raw.to_vec(),
            _ => return Err("unexpected CKA_EC_POINT encoding".into()),
        };
        (alg, raw)
    } else if key_type == KeyType::RSA {
        let attrs = s
            .get_attributes(public, &[AttributeType::Modulus, AttributeType::PublicExponent])
            .map_err(|e| format!("reading the public key: {e}"))?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(m) => n = Some(m),
                Attribute::PublicExponent(x) => e = Some(x),
                _ => {}
            }
        }
        let (n, e) = (n.ok_or("no modulus")?, e.ok_or("no public exponent")?);
        if !(2048..=4096).contains(&(n.len() * 8)) {
            return Err(format!("RSA key of {} bits; use 2048 to 4096", n.len() * 8));
        }
        (SignatureAlgorithm::RsaPkcs1Sha256, rsa_public_key_der(&n, &e))
    } else {
        return Err(format!("key type {key_type} is not supported (P-256 or RSA)"));
    };
    let sessions = sessions.into_iter().map(Mutex::new).collect();
    Ok(Opened { conn: Connection { key, sessions, next: AtomicUsize::new(0) }, alg, public_key })
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    use ocsp_proto::der::{element, tag, unsigned_integer};
    element(tag::SEQUENCE, &[&unsigned_integer(n), &unsigned_integer(e)])
}

/// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } from PKCS#11's r || s, each half
/// `half` bytes (32 for P-256, 48 for P-384).
fn ecdsa_der(raw: &[u8], half: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * half {
        return Err(format!("ECDSA signature of {} bytes, expected {}", raw.len(), 2 * half));
    }
    use ocsp_proto::der::{element, tag, unsigned_integer};
    Ok(element(tag::SEQUENCE, &[&unsigned_integer(&raw[..half]), &unsigned_integer(&raw[half..])]))
}

/// A key on a PKCS#11 token.
pub struct Pkcs11Signer {
    reference: Pkcs11Ref,
    alg: SignatureAlgorithm,
    public_key: Vec<u8>,
    conn: Mutex<Option<Arc<Connection>>>,
    last_attempt: Mutex<Option<Instant>>,
    what: String,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer").field("key", &self.what).finish()
    }
}

/// How long after a failed connection the next attempt waits.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

impl Pkcs11Signer {
    /// Connects to the token and finds the key (and its public half).
    pub fn open(uri: &str) -> Result<Pkcs11Signer, SignError> {
        let reference = Pkcs11Ref::parse(uri)?;
        let what = reference.describe();
        // Loading a module runs its code inside this process: only the operator's own list.
        check_module_allowed(&reference.module)
            .map_err(|reason| SignError::BadKey { source_name: what.clone(), reason })?;
        let opened = open(&reference).map_err(|reason| SignError::BadKey { source_name: what.clone(), reason })?;
        tracing::info!(key = %what, sessions = reference.sessions, "PKCS#11 key opened");
        let signer = Pkcs11Signer {
            reference,
            alg: opened.alg,
            public_key: opened.public_key,
            conn: Mutex::new(Some(Arc::new(opened.conn))),
            last_attempt: Mutex::new(None),
            what,
        };
        // The certificate check compares the token's public-key object; prove the private
        // object belongs to it with one signature.
        let probe = b"ocspd: does the private key match its public key object?";
        let sig = signer.sign(probe)?;
        let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match signer.alg {
            SignatureAlgorithm::EcdsaP256Sha256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            SignatureAlgorithm::EcdsaP384Sha384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
            SignatureAlgorithm::RsaPkcs1Sha256 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        };
        aws_lc_rs::signature::UnparsedPublicKey::new(alg, &signer.public_key).verify(probe, &sig).map_err(|_| {
            SignError::BadKey {
                source_name: signer.what.clone(),
                reason: "the private key on the token does not match the public key object of the same label/id".into(),
            }
        })?;
        Ok(signer)
    }

    fn connection(&self) -> Result<Arc<Connection>, SignError> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
            return Err(SignError::Unavailable(self.what.clone(), "reconnecting to the token".into()));
        }
        *last = Some(Instant::now());
        match open(&self.reference) {
            Ok(o) if o.public_key == self.public_key && o.alg == self.alg => {
                tracing::info!(key = %self.what, "PKCS#11 token reconnected");
                let c = Arc::new(o.conn);
                *slot = Some(c.clone());
                Ok(c)
            }
            Ok(_) => {
                tracing::error!(key = %self.what, "the token now holds a different key under this name; not signing");
                Err(SignError::Unavailable(self.what.clone(), "a different key is on the token under this name".into()))
            }
            Err(e) => {
                tracing::warn!(key = %self.what, error = %e, "PKCS#11 token unreachable; will retry");
                Err(SignError::Unavailable(self.what.clone(), e))
            }
        }
    }

    fn drop_connection(&self, broken: &Arc<Connection>) {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            *slot = None;
        }
    }
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let conn = self.connection()?;
        let n = conn.sessions.len();
        let start = conn.next.fetch_add(1, Ordering::Relaxed) % n;
        // A free session if there is one, else wait for ours.
        let guard = (0..n)
            .find_map(|i| conn.sessions[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| conn.sessions[start].lock().unwrap_or_else(|p| p.into_inner()));
        let result = match self.alg {
            SignatureAlgorithm::EcdsaP256Sha256 => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
                guard.sign(&Mechanism::Ecdsa, conn.key, digest.as_ref())
            }
            SignatureAlgorithm::EcdsaP384Sha384 => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, message);
                guard.sign(&Mechanism::Ecdsa, conn.key, digest.as_ref())
            }
            SignatureAlgorithm::RsaPkcs1Sha256 => guard.sign(&Mechanism::Sha256RsaPkcs, conn.key, message),
        };
        drop(guard);
        match result {
            Ok(sig) if self.alg == SignatureAlgorithm::EcdsaP256Sha256 => {
                ecdsa_der(&sig, 32).map_err(|e| SignError::Unavailable(self.what.clone(), e))
            }
            Ok(sig) if self.alg == SignatureAlgorithm::EcdsaP384Sha384 => {
                ecdsa_der(&sig, 48).map_err(|e| SignError::Unavailable(self.what.clone(), e))
            }
            Ok(sig) => Ok(sig),
            Err(e) => {
                // Whatever the token said, this connection is suspect: the next signature
                // reconnects (and re-reads the PIN).
                self.drop_connection(&conn);
                tracing::warn!(key = %self.what, error = %e, "PKCS#11 signature failed; reconnecting");
                Err(SignError::Unavailable(self.what.clone(), e.to_string()))
            }
        }
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_bad_ones_say_what_is_missing() {
        let r = Pkcs11Ref::parse(
            "pkcs11:token=ocspd;object=resp%20one?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin&sessions=3",
        )
        .unwrap();
        assert_eq!(r.token, "ocspd");
        assert_eq!(r.object.as_deref(), Some("resp one"));
        assert_eq!(r.pin, PinSource::File("/etc/pin".into()));
        assert_eq!(r.sessions, 3);
        let r = Pkcs11Ref::parse("pkcs11:token=t;id=%01%ff?module-path=/m.so&pin-env=PIN").unwrap();
        assert_eq!(r.id, Some(vec![1, 0xff]));
        for (uri, want) in [
            ("pkcs11:object=x?module-path=/m.so&pin-env=P", "token="),
            ("pkcs11:token=t?module-path=/m.so&pin-env=P", "object="),
            ("pkcs11:token=t;object=x?pin-env=P", "module-path"),
            ("pkcs11:token=t;object=x?module-path=/m.so", "pin-source"),
            ("pkcs11:token=t;object=x?module-path=/m.so&pin-env=P&sessions=0", "sessions"),
            ("pkcs11:token=t;serial=1;object=x?module-path=/m.so&pin-env=P", "unsupported attribute"),
        ] {
            let e = Pkcs11Ref::parse(uri).unwrap_err().to_string();
            assert!(e.contains(want), "{uri}: {e}");
        }
    }

    #[test]
    fn raw_ecdsa_signatures_become_der() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a sign octet
        raw[63] = 1; // s is small
        let der = ecdsa_der(&raw, 32).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
        assert!(ecdsa_der(&[0; 10], 32).is_err());
        assert!(ecdsa_der(&[1; 96], 48).is_ok());
    }
}
