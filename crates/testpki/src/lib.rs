//! Throwaway PKIs for tests, benchmarks and `make run`'s demo: roots, intermediates,
//! cross-certificates, delegated OCSP responders and leaves, made with rcgen at run time.
//!
//! Nothing here is for production: keys are generated in memory and written unencrypted.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

pub use rcgen::Error;

/// The key type of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256.
    P256,
    /// ECDSA P-384 with SHA-384.
    P384,
    /// RSA 2048 with PKCS#1 v1.5 and SHA-256.
    Rsa2048,
    /// RSA 3072 with PKCS#1 v1.5 and SHA-256.
    Rsa3072,
    /// RSA 4096 with PKCS#1 v1.5 and SHA-256.
    Rsa4096,
}

fn key_pair(alg: KeyAlg) -> Result<KeyPair, Error> {
    match alg {
        KeyAlg::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlg::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlg::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048),
        KeyAlg::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072),
        KeyAlg::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096),
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "ocspd test PKI");
    d.push(DnType::CommonName, common_name);
    d
}

fn validity(p: &mut CertificateParams, days_before: i64, days_after: i64) {
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(days_before);
    p.not_after = now + Duration::days(days_after);
}

/// A generated certificate and its key.
pub struct Issued {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    params: CertificateParams,
    key: KeyPair,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("pem", &self.pem).finish_non_exhaustive()
    }
}

/// How to make a delegated responder certificate; the defaults make a valid one.
#[derive(Debug, Clone)]
pub struct ResponderOptions {
    /// Add EKU id-kp-OCSPSigning.
    pub ocsp_signing_eku: bool,
    /// Add id-pkix-ocsp-nocheck.
    pub nocheck: bool,
    /// Days from now until notAfter (negative: already expired).
    pub valid_days: i64,
    /// Key type.
    pub alg: KeyAlg,
}

impl Default for ResponderOptions {
    fn default() -> Self {
        ResponderOptions { ocsp_signing_eku: true, nocheck: true, valid_days: 90, alg: KeyAlg::P256 }
    }
}

impl Issued {
    fn finish(params: CertificateParams, key: KeyPair, issuer: Option<&Issued>) -> Result<Issued, Error> {
        let cert = match issuer {
            Some(i) => params.signed_by(&key, &Issuer::from_params(&i.params, &i.key))?,
            None => params.self_signed(&key)?,
        };
        Ok(Issued { der: cert.der().to_vec(), pem: cert.pem(), key_pem: key.serialize_pem(), params, key })
    }

    fn ca_params(common_name: &str, serial: u64) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(common_name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        p.serial_number = Some(SerialNumber::from(serial));
        validity(&mut p, 1, 3650);
        p
    }

    /// A self-signed root CA.
    pub fn root(common_name: &str, alg: KeyAlg) -> Result<Issued, Error> {
        Issued::finish(Issued::ca_params(common_name, 1), key_pair(alg)?, None)
    }

    /// An intermediate CA issued by `self`.
    pub fn intermediate(&self, common_name: &str, serial: u64, alg: KeyAlg) -> Result<Issued, Error> {
        let mut p = Issued::ca_params(common_name, serial);
        p.use_authority_key_identifier_extension = true;
        Issued::finish(p, key_pair(alg)?, Some(self))
    }

    /// An intermediate CA issued by `self` with the subject `common_name` and the key of
    /// `key_of` (a re-named CA that kept its key).
    pub fn intermediate_with_key(&self, common_name: &str, serial: u64, key_of: &Issued) -> Result<Issued, Error> {
        let mut p = Issued::ca_params(common_name, serial);
        p.use_authority_key_identifier_extension = true;
        Issued::finish(p, KeyPair::from_pem(&key_of.key_pem)?, Some(self))
    }

    /// A cross-certificate: `other`'s subject and key, issued by `self` with `serial`.
    pub fn cross_sign(&self, other: &Issued, serial: &[u8]) -> Result<Issued, Error> {
        let mut p = other.params.clone();
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::from_pem(&other.key_pem)?;
        Issued::finish(p, key, Some(self))
    }

    /// A delegated OCSP responder certificate issued by `self`.
    pub fn responder(&self, common_name: &str, opts: &ResponderOptions) -> Result<Issued, Error> {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(common_name);
        p.serial_number = Some(SerialNumber::from(RESPONDER_SERIAL));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if opts.ocsp_signing_eku {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        }
        if opts.nocheck {
            // id-pkix-ocsp-nocheck, value NULL
            p.custom_extensions
                .push(CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 48, 1, 5], vec![0x05, 0x00]));
        }
        p.use_authority_key_identifier_extension = true;
        if opts.valid_days < 0 {
            validity(&mut p, 30 - opts.valid_days, opts.valid_days);
        } else {
            validity(&mut p, 1, opts.valid_days);
        }
        Issued::finish(p, key_pair(opts.alg)?, Some(self))
    }

    /// An end-entity certificate issued by `self` with the given serial (unsigned big-endian).
    pub fn leaf(&self, common_name: &str, serial: &[u8]) -> Result<Issued, Error> {
        let mut p = CertificateParams::new(vec![common_name.to_string()])?;
        p.distinguished_name = dn(common_name);
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.use_authority_key_identifier_extension = true;
        validity(&mut p, 1, 90);
        Issued::finish(p, key_pair(KeyAlg::P256)?, Some(self))
    }

    /// A leaf like [`Issued::leaf`] whose cRLDistributionPoints names `crl_url` (what
    /// `openssl verify -crl_check` matches a partitioned CRL's IssuingDistributionPoint with).
    pub fn leaf_with_crl(&self, common_name: &str, serial: &[u8], crl_url: &str) -> Result<Issued, Error> {
        let mut p = CertificateParams::new(vec![common_name.to_string()])?;
        p.distinguished_name = dn(common_name);
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.use_authority_key_identifier_extension = true;
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![crl_url.to_string()] }];
        validity(&mut p, 1, 90);
        Issued::finish(p, key_pair(KeyAlg::P256)?, Some(self))
    }

    /// Writes `name.pem` and, with `with_key`, `name.key` into `dir`; returns the cert path.
    pub fn write(&self, dir: &Path, name: &str, with_key: bool) -> std::io::Result<PathBuf> {
        let cert = dir.join(format!("{name}.pem"));
        std::fs::write(&cert, &self.pem)?;
        if with_key {
            write_private(&dir.join(format!("{name}.key")), &self.key_pem)?;
        }
        Ok(cert)
    }
}

/// The serial of generated responder certificates: fixed and recognisable.
const RESPONDER_SERIAL: u64 = 0x0c5d;

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

/// The demo PKI `make run` serves: a root, an intermediate, a delegated responder for the
/// intermediate, and leaves, the third of which the demo revokes.
pub struct DemoPki {
    /// Where the files are.
    pub dir: PathBuf,
    /// Serials of the leaves, unsigned big-endian, in order leaf-1, leaf-2, ...
    pub leaf_serials: Vec<Vec<u8>>,
}

/// Number of demo leaves.
pub const DEMO_LEAVES: usize = 4;

/// Generates the demo PKI into `dir` (created if missing).
pub fn write_demo(dir: &Path) -> Result<DemoPki, Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(dir)?;
    let root = Issued::root("ocspd demo root", KeyAlg::P256)?;
    let int = root.intermediate("ocspd demo intermediate", 2, KeyAlg::P256)?;
    let resp = int.responder("ocspd demo OCSP responder", &ResponderOptions::default())?;
    root.write(dir, "root", true)?;
    int.write(dir, "intermediate", true)?;
    resp.write(dir, "responder", true)?;
    let mut leaf_serials = Vec::new();
    for i in 1..=DEMO_LEAVES {
        let serial = vec![0x10, 0x00, i as u8];
        let leaf = int.leaf(&format!("leaf-{i}.demo.test"), &serial)?;
        leaf.write(dir, &format!("leaf-{i}"), false)?;
        leaf_serials.push(serial);
    }
    std::fs::write(dir.join("chain.pem"), format!("{}{}", int.pem, root.pem))?;
    Ok(DemoPki { dir: dir.to_path_buf(), leaf_serials })
}
