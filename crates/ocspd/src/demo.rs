//! The demo PKI `make run` serves: made once, on the first start with an empty database.

use anyhow::{Context, Result};
use ocsp_domain::api::{AddCerts, AddIssuer, CertSpec, Revoke};
use ocsp_domain::Domain;
use std::net::SocketAddr;
use std::path::Path;

/// The credential name the demo's changes are audited under.
const WHO: &str = "demo";
/// The leaf the demo revokes.
const REVOKED_LEAF: usize = 3;
/// A leaf the demo never records as issued, so it answers unknown.
const UNKNOWN_LEAF: usize = 4;

fn read(dir: &Path, name: &str) -> Result<String> {
    std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))
}

fn key_ref(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name).canonicalize().with_context(|| format!("locating {name}"))?;
    Ok(format!("file:{}", path.display()))
}

/// Creates the demo PKI under `data/demo` and registers it through the admin operations.
pub fn create(data_dir: &Path, admin: &Domain) -> Result<()> {
    let dir = data_dir.join("demo");
    let pki = ocsp_testpki::write_demo(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let fail = |e: ocsp_domain::DomainError| anyhow::anyhow!("{e}");
    let why = || Some("demo PKI".to_string());
    let root = AddIssuer {
        name: "demo-root".into(),
        cert_pem: read(&dir, "root.pem")?,
        responder_cert_pem: None,
        key: key_ref(&dir, "root.key")?,
        backup_responder_cert_pem: None,
        backup_key: None,
        why: why(),
    };
    admin.add_issuer(root, WHO).map_err(fail)?;
    let intermediate = AddIssuer {
        name: "demo-intermediate".into(),
        cert_pem: read(&dir, "intermediate.pem")?,
        responder_cert_pem: Some(read(&dir, "responder.pem")?),
        key: key_ref(&dir, "responder.key")?,
        backup_responder_cert_pem: None,
        backup_key: None,
        why: why(),
    };
    admin.add_issuer(intermediate, WHO).map_err(fail)?;
    // Both publish CRLs, signed by their own keys.
    for (name, key) in [("demo-root", "root.key"), ("demo-intermediate", "intermediate.key")] {
        let req = ocsp_domain::api::SetCrlKey { key: key_ref(&dir, key)?, shards: None, why: why() };
        admin.set_crl_key(name, req, 1, WHO).map_err(fail)?;
    }
    let mut certs = vec![CertSpec { cert_pem: Some(read(&dir, "intermediate.pem")?), ..Default::default() }];
    for i in 1..=pki.leaf_serials.len() {
        if i != UNKNOWN_LEAF {
            certs.push(CertSpec { cert_pem: Some(read(&dir, &format!("leaf-{i}.pem"))?), ..Default::default() });
        }
    }
    admin.add_certs(AddCerts { issuer: None, certs, why: why() }, WHO).map_err(fail)?;
    let serial = hex::encode(&pki.leaf_serials[REVOKED_LEAF - 1]);
    let revoke =
        Revoke { issuer: "demo-intermediate".into(), serial, reason: "keyCompromise".into(), time: None, why: why() };
    admin.revoke(revoke, WHO).map_err(fail)?;
    tracing::info!(dir = %dir.display(), "demo PKI created");
    Ok(())
}

/// Prints how to query the demo.
pub fn print_usage(data_dir: &Path, public: SocketAddr, admin: SocketAddr, created: bool, crls: bool) {
    let d = data_dir.join("demo");
    let d = d.display();
    println!();
    println!("Demo PKI {} in {d}: leaf-1 and leaf-2 are good, leaf-{REVOKED_LEAF} is revoked (keyCompromise), leaf-{UNKNOWN_LEAF} was never recorded (unknown).", if created { "created" } else { "served" });
    println!("Query it with:");
    println!();
    println!("openssl ocsp -issuer {d}/intermediate.pem -cert {d}/leaf-1.pem -cert {d}/leaf-{REVOKED_LEAF}.pem -url http://{public} -CAfile {d}/chain.pem -no_nonce");
    println!();
    if crls {
        println!("CRLs: curl -s http://{public}/crl/demo-intermediate/0.crl | openssl crl -inform DER -CAfile {d}/chain.pem -noout -text");
        println!();
    }
    println!(
        "Staff CLI: ocspctl --admin-url http://{admin} --token-file {}/admin.token issuer list",
        data_dir.display()
    );
}
