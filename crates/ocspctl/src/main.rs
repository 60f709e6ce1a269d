//! `ocspctl`, the CA staff's command line: registers issuers, records issued certificates,
//! revokes, and shows statuses, through ocspd's authenticated admin API. It never opens the
//! database itself.
//!
//! Exit codes: 0 done, 1 the call failed (ocspd refused it or could not be reached), 2 bad
//! usage (nothing was sent), 3 done and durable but not confirmed on every node of a fleet
//! (the output says which and why).

use anyhow::Context;
use clap::{Parser, Subcommand};
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use ocsp_admin::api::{
    AddCerts, AddIssuer, AddedCerts, AuditView, BulkResult, BulkRevoke, CertSpec, IssuerView, Presign, PresignStats,
    Retire, Revoke, StatusView, Unhold,
};
use ocsp_admin::{AdminClient, MAX_BULK};
use ocsp_proto::{RevocationReason, Serial};
use std::path::{Path, PathBuf};

use ocspctl::input;

#[derive(Debug, Parser)]
#[command(name = "ocspctl", version, about = "CA staff CLI for ocspd's admin API")]
struct Cli {
    /// ocspd's admin API.
    #[arg(long, global = true, env = "OCSPCTL_ADMIN_URL", default_value = "http://127.0.0.1:8081")]
    admin_url: String,
    /// File holding the admin bearer token (ocspd writes data/admin.token on first start).
    #[arg(long, global = true, env = "OCSPCTL_TOKEN_FILE", default_value = "./data/admin.token")]
    token_file: PathBuf,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register, list, show and retire issuers.
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Record issued certificates one by one.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Record many issued certificates from a folder of certificates, an OpenSSL index.txt
    /// (V, R and E lines, revocations included) or a CSV of serials. Safe to run twice.
    Import {
        /// The issuer's name (required for --index and --csv; checked for --dir).
        #[arg(long)]
        issuer: Option<String>,
        /// A folder of PEM or DER certificates (.pem .crt .cer .der).
        #[arg(long, group = "source", required = true)]
        dir: Option<PathBuf>,
        /// An OpenSSL CA database (index.txt).
        #[arg(long, group = "source")]
        index: Option<PathBuf>,
        /// A CSV of `serial[,notAfter]` lines.
        #[arg(long, group = "source")]
        csv: Option<PathBuf>,
        /// Entries per call.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Revoke one certificate.
    Revoke {
        /// The issuer's name.
        #[arg(long)]
        issuer: String,
        /// The serial, hex (0x and : allowed).
        #[arg(long)]
        serial: String,
        /// RFC 5280 reason: unspecified (no reason; never encoded), keyCompromise,
        /// affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn; under an
        /// issuer's `private` reason profile also cACompromise, certificateHold, aACompromise.
        /// The default tls-br profile (BR 7.2.2) refuses those, and needs a reason for a CA
        /// certificate.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Revocation time, RFC 3339 (e.g. 2026-11-20T10:00:00Z); now when absent. Only
        /// keyCompromise may be dated back, to when the key was compromised.
        #[arg(long)]
        time: Option<String>,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Revoke every serial listed in a file (one hex serial per line), in durable batches,
    /// with a progress bar and a summary: revoked, already revoked, unknown serial.
    BulkRevoke {
        /// The issuer's name.
        #[arg(long)]
        issuer: String,
        /// The file of serials.
        #[arg(long)]
        file: PathBuf,
        /// RFC 5280 reason (see `revoke`).
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Revocation time, RFC 3339; now when absent.
        #[arg(long)]
        time: Option<String>,
        /// Say what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Serials per call (each call is one atomic, fsynced batch).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Lift a certificateHold: the certificate answers good again.
    Unhold {
        /// The issuer's name.
        #[arg(long)]
        issuer: String,
        /// The serial, hex.
        #[arg(long)]
        serial: String,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Pre-sign responses now (every issuer, or one), with a progress bar; ocspd also does
    /// this by itself on its cadence.
    Presign {
        /// Only this issuer.
        #[arg(long)]
        issuer: Option<String>,
        /// Return at once instead of following the pass to its end.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show one certificate's status.
    Status {
        /// The issuer's name.
        #[arg(long)]
        issuer: String,
        /// The serial, hex.
        #[arg(long)]
        serial: String,
    },
    /// The purge fan-out to peers and edge caches.
    #[command(subcommand)]
    Purge(PurgeCmd),
    /// CRLs: their URLs, their state, and whether they agree with the database.
    #[command(subcommand)]
    Crl(CrlCmd),
    /// Fleet mode: the nodes, their replication lag, and who signs and purges.
    #[command(subcommand)]
    Fleet(FleetCmd),
    /// The followers of the change feed on this node and how far behind they are.
    #[command(subcommand)]
    Feed(FeedCmd),
    /// Write every current pre-signed response as a static file named by its GET path (the
    /// base64 of the RFC 5019 request), for an object-store origin. The folder is mirrored per
    /// issuer: files a previous export wrote for the issuers exported now and this one did not
    /// (no longer current) are removed; nothing else in the folder is touched.
    Export {
        /// The folder to write (created if missing; must be empty or a previous export).
        #[arg(long)]
        out: PathBuf,
        /// Only this issuer: files of other issuers in the folder are left as they are.
        #[arg(long)]
        issuer: Option<String>,
        /// How long to wait for the pre-signer to finish re-signing changed certificates
        /// first, so that certificates being re-signed are not dropped from the folder.
        #[arg(long, default_value = "10m")]
        wait: String,
    },
    /// Show the audit record, newest first.
    Audit {
        /// Only this issuer.
        #[arg(long)]
        issuer: Option<String>,
        /// Only changes of this serial.
        #[arg(long)]
        serial: Option<String>,
        /// Only this admin credential.
        #[arg(long)]
        admin: Option<String>,
        /// Only this action (issuer.add, issuer.retire, cert.add, revoke, unhold).
        #[arg(long)]
        action: Option<String>,
        /// Only since this time, RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// At most this many entries (1 to 1,000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Only entries older than this one (the #number shown): the next page.
        #[arg(long)]
        before: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum CrlCmd {
    /// Every CRL URL, as the JSON array the CCADB asks a CA to disclose.
    Urls,
    /// Each shard: its number, entries, age and next update.
    Status,
    /// Checks that every revoked certificate is in exactly one served shard (its own), with
    /// the time and reason OCSP answers, and that no other certificate is on any; exits 1 if
    /// not.
    Verify,
}

#[derive(Debug, Subcommand)]
enum FleetCmd {
    /// Every node that reported to the fleet database: its URLs, the changes it has applied,
    /// its lag behind the shared feed, when it last reported, and the leases it holds.
    Status,
}

#[derive(Debug, Subcommand)]
enum FeedCmd {
    /// Each follower (this process's caches, each purge target, CRL regeneration, the fleet
    /// replica), what kind it is, the first change it has not applied and its lag.
    Status,
}

#[derive(Debug, Subcommand)]
enum PurgeCmd {
    /// Each target's state and the certificates not yet purged there.
    Status,
}

#[derive(Debug, Subcommand)]
enum IssuerCmd {
    /// Register an issuer with the identity that signs for it.
    Add {
        /// A unique name to refer to it by.
        #[arg(long)]
        name: String,
        /// The issuer certificate (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// A delegated responder certificate; leave out when the issuer's own key signs.
        #[arg(long)]
        responder_cert: Option<PathBuf>,
        /// The signing key: a PKCS#8 PEM file (ocspd reads it from this path), or a key on an
        /// HSM as a pkcs11: URI, e.g.
        /// 'pkcs11:token=ocspd;object=resp?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/ocspd/pin'.
        #[arg(long)]
        key: String,
        /// A backup responder certificate (issued in advance, with another key).
        #[arg(long, requires = "backup_key")]
        backup_responder_cert: Option<PathBuf>,
        /// The backup's signing key (file or pkcs11: URI), ready for `issuer promote`.
        #[arg(long)]
        backup_key: Option<String>,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Provision (or replace) the backup responder identity of an issuer: a certificate and a
    /// key other than the primary's, checked now, promoted with `issuer promote`.
    Backup {
        /// The issuer's name.
        #[arg(long)]
        name: String,
        /// The backup responder certificate; leave out when the issuer's own (other) key signs.
        #[arg(long)]
        responder_cert: Option<PathBuf>,
        /// The backup key (file or pkcs11: URI).
        #[arg(long)]
        key: String,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Promote the backup identity (the primary key is compromised, or rolled over): it signs
    /// at once, every response of the issuer is re-signed (revoked and most-asked first) and
    /// every cache tier is purged. Waits, with a progress bar, until all are re-signed.
    Promote {
        /// The issuer's name.
        #[arg(long)]
        name: String,
        /// Return once the switch is made, without waiting for the re-signing.
        #[arg(long)]
        no_wait: bool,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// Set the key that signs the issuer's CRLs: the issuer certificate's own key (checked:
    /// it matches the certificate, which must assert cRLSign). CRLs are published from then on.
    CrlKey {
        /// The issuer's name.
        #[arg(long)]
        name: String,
        /// The key: `file:<absolute path>` or a `pkcs11:` URI.
        #[arg(long, required_unless_present = "unset", conflicts_with = "unset")]
        key: Option<String>,
        /// Stop signing this issuer's CRLs (its key is lost or no longer its own): the shards
        /// stored are served until they expire.
        #[arg(long)]
        unset: bool,
        /// Shards of its CRL (1 to 4096), fixed the first time: a certificate's shard follows
        /// from its serial and this count [default: the responder's crl.shards].
        #[arg(long)]
        shards: Option<u32>,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
    /// List registered issuers.
    List,
    /// Show one issuer, with its certificate counts.
    Show {
        /// The issuer's name.
        name: String,
    },
    /// Retire an issuer: ocspd stops answering for it (unauthorized); its records are kept.
    Retire {
        /// The issuer's name.
        name: String,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CertCmd {
    /// Record certificates as issued (they answer good until revoked).
    Add {
        /// The issuer's name (required with --serial; checked against certificates).
        #[arg(long)]
        issuer: Option<String>,
        /// Certificate files (PEM or DER).
        #[arg(long = "pem", num_args = 1.., conflicts_with = "serial")]
        pem: Vec<PathBuf>,
        /// A serial, hex, when the certificate itself is not at hand.
        #[arg(long, requires = "issuer")]
        serial: Option<String>,
        /// notAfter for --serial, RFC 3339.
        #[arg(long, requires = "serial")]
        not_after: Option<String>,
        /// The --serial is a CA certificate's (under the tls-br profile its revocation must
        /// then carry a reason); a certificate file says so itself.
        #[arg(long, requires = "serial")]
        ca: bool,
        /// Why, for the audit record.
        #[arg(long)]
        why: Option<String>,
    },
}

/// A mistake in the call itself: reported with exit code 2, nothing sent.
#[derive(Debug)]
struct Usage(String);

/// A change that is durable but was not confirmed on every node of a fleet (exit code 3): a
/// script must not take it for "done everywhere".
#[derive(Debug)]
struct Unconfirmed;

impl std::fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the change is durable but not confirmed on every node (see the warning above)")
    }
}

impl std::error::Error for Unconfirmed {}

/// Exit code 3 when `c` could not be confirmed everywhere.
fn confirmed_or_fail(c: &ocsp_admin::api::Confirmed) -> anyhow::Result<()> {
    match c.unconfirmed {
        Some(_) => Err(anyhow::Error::new(Unconfirmed)),
        None => Ok(()),
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

fn read_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| usage(format!("{what} {}: {e}", path.display())))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        // DER: send as PEM so the JSON stays text.
        Err(e) => Ok(to_pem(e.as_bytes())),
    }
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    use std::fmt::Write;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", String::from_utf8_lossy(line));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn parse_time(text: &str, what: &str) -> anyhow::Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| usage(format!("{what} {text:?} is not an RFC 3339 time like 2026-11-20T10:00:00Z: {e}")))
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    if json {
        out_line(&serde_json::to_string(value)?);
    } else {
        out_line(&text(value));
    }
    Ok(())
}

fn status_text(s: &StatusView) -> String {
    let mut out = format!("{} serial {}: {}", s.issuer, s.serial, s.status);
    if let Some(r) = &s.reason {
        out.push_str(&format!(" ({r})"));
    }
    if let Some(t) = &s.revocation_time {
        out.push_str(&format!(" at {t}"));
    }
    if let Some(o) = &s.outcome {
        out.push_str(&format!(" [{o}]"));
    }
    if let Some(p) = &s.purge_pending {
        out.push_str(&format!(
            "\nwarning: caches not yet purged: {} (queued durably, retried until accepted; see `ocspctl purge status`)",
            p.join(", ")
        ));
    }
    if let Some(n) = &s.note {
        out.push_str(&format!("\nnote: {n}"));
    }
    out.push_str(&confirmed_text(&s.confirmed));
    out
}

/// What a fleet's acknowledgement says of the other nodes, when it says anything.
fn confirmed_text(c: &ocsp_admin::api::Confirmed) -> String {
    let mut out = String::new();
    if !c.fenced.is_empty() {
        out.push_str(&format!(
            "\nwarning: node(s) {} had not applied the change in time and are out of service until they have (they answer no good meanwhile; `ocspctl fleet status`)",
            c.fenced.join(", ")
        ));
    }
    if let Some(u) = &c.unconfirmed {
        out.push_str(&format!("\nWARNING: not confirmed on every node: {u}"));
    }
    out
}

/// The admin API, called synchronously (in order; bulk revocation keeps two calls in flight).
struct Api {
    rt: tokio::runtime::Runtime,
    client: AdminClient,
}

impl Api {
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> anyhow::Result<T> {
        Ok(self.rt.block_on(self.client.call(method, path, body))?)
    }
}

fn progress(len: u64, json: bool, what: &str) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{percent}}% {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn check_batch(batch: usize) -> anyhow::Result<usize> {
    if batch == 0 || batch > MAX_BULK {
        return Err(usage(format!("--batch {batch}: must be 1 to {MAX_BULK}")));
    }
    Ok(batch)
}

fn import(
    api: &Api,
    json: bool,
    issuer: Option<String>,
    source: (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>),
    batch: usize,
    why: Option<String>,
) -> anyhow::Result<()> {
    let batch = check_batch(batch)?;
    let mut total = AddedCerts::default();
    let add = |certs: Vec<CertSpec>, total: &mut AddedCerts| -> anyhow::Result<()> {
        let req = AddCerts { issuer: issuer.clone(), certs, why: why.clone() };
        let r: AddedCerts = api.call(Method::POST, "/v1/certs", Some(&req))?;
        total.added += r.added;
        total.already += r.already;
        total.revoked += r.revoked;
        total.conflicts.extend(r.conflicts);
        total.confirmed.add(r.confirmed);
        Ok(())
    };
    match source {
        (Some(dir), _, _) => {
            let files = input::cert_files(&dir).map_err(|e| usage(e.0))?;
            let mut pems = Vec::with_capacity(files.len().min(batch));
            // Check every file first: nothing is sent if one is unreadable.
            for f in &files {
                let text = read_file(f, "certificate")?;
                ocsp_proto::x509::CertInfo::from_pem_or_der(text.as_bytes())
                    .map_err(|e| usage(format!("{}: {e}; nothing was sent", f.display())))?;
            }
            let bar = progress(files.len() as u64, json, "import");
            for f in &files {
                pems.push(CertSpec { cert_pem: Some(read_file(f, "certificate")?), ..Default::default() });
                if pems.len() >= batch {
                    add(std::mem::take(&mut pems), &mut total)?;
                }
                bar.inc(1);
            }
            if !pems.is_empty() {
                add(pems, &mut total)?;
            }
            bar.finish_and_clear();
        }
        (_, index, csv) => {
            let (path, format) = match (index, csv) {
                (Some(p), _) => (p, input::Format::Index),
                (_, Some(p)) => (p, input::Format::Csv),
                _ => return Err(usage("give --dir, --index or --csv")),
            };
            let Some(name) = issuer.as_deref() else {
                return Err(usage("--index and --csv need --issuer"));
            };
            input::check_file(&path, format).map_err(|e| usage(e.0))?;
            // Every revocation in the file is checked against the issuer's reason profile
            // before anything is sent; each refused line is reported.
            let issuers: Vec<IssuerView> = api.call(Method::GET, "/v1/issuers", None::<&()>)?;
            let view = issuers
                .iter()
                .find(|v| v.name == name)
                .ok_or_else(|| usage(format!("no issuer named {name:?}; `ocspctl issuer list` shows them")))?;
            let profile = ocsp_proto::ReasonProfile::parse(&view.reason_profile).unwrap_or_default();
            let refused = input::refused_reasons(&path, format, profile).map_err(|e| usage(e.0))?;
            if !refused.is_empty() {
                return Err(usage(format!(
                    "{} revocation(s) in {} are refused by {name:?}'s {profile} reason profile; nothing was sent:\n  {}",
                    refused.len(),
                    path.display(),
                    refused.join("\n  ")
                )));
            }
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let bar = progress(size, json, "import");
            input::for_each_batch(&path, format, batch, |entries, read| -> anyhow::Result<()> {
                let certs = entries
                    .into_iter()
                    .map(|e| CertSpec {
                        serial: Some(e.serial),
                        not_after: e.not_after,
                        revocation: e
                            .revocation
                            .map(|r| ocsp_admin::api::ImportedRevocation { time: r.time, reason: r.reason }),
                        ..Default::default()
                    })
                    .collect();
                add(certs, &mut total)?;
                bar.set_position(read);
                Ok(())
            })?;
            bar.finish_and_clear();
        }
    }
    print(json, &total, |t| {
        let mut s =
            format!("recorded {} new, {} already recorded, {} revocations applied", t.added, t.already, t.revoked);
        if !t.conflicts.is_empty() {
            s.push_str(&format!(
                "\n{} revocations conflict with recorded ones (left as recorded): {}",
                t.conflicts.len(),
                t.conflicts.join(" ")
            ));
        }
        s.push_str(&confirmed_text(&t.confirmed));
        s
    })?;
    confirmed_or_fail(&total.confirmed)
}

#[allow(clippy::too_many_arguments)]
fn bulk_revoke(
    api: &Api,
    json: bool,
    issuer: String,
    file: PathBuf,
    reason: String,
    time: Option<String>,
    dry_run: bool,
    batch: usize,
    why: Option<String>,
) -> anyhow::Result<()> {
    let batch = check_batch(batch)?;
    RevocationReason::parse(&reason).map_err(usage)?;
    let time = time.as_deref().map(|t| parse_time(t, "--time")).transpose()?;
    let lines = input::check_file(&file, input::Format::Serials).map_err(|e| usage(e.0))?;
    let bar = progress(lines, json, if dry_run { "dry run" } else { "revoke" });
    let mut total = BulkResult::default();
    let mut acknowledged = 0u64;
    // Two batches in flight: the server stores the next while it settles the last (its own
    // caches and replica), and acknowledgements are reported in file order. A batch is
    // acknowledged only when its call returned; on an error nothing after the last
    // acknowledged batch is claimed (running the file again is safe: revoked stays revoked).
    type Call = tokio::task::JoinHandle<Result<BulkResult, ocsp_admin::ClientError>>;
    let mut in_flight: Option<(u64, Call)> = None;
    let mut ack = |(n, call): (u64, Call)| -> anyhow::Result<()> {
        let r = api.rt.block_on(call).map_err(|e| anyhow::anyhow!("the call was lost: {e}"))??;
        acknowledged += n;
        if json {
            // One line per durable batch, so a script knows exactly what was acknowledged.
            out_line(&serde_json::json!({ "acknowledged": acknowledged, "of": lines }).to_string());
        }
        total.add(r);
        bar.inc(n);
        Ok(())
    };
    input::for_each_batch(&file, input::Format::Serials, batch, |specs, _| -> anyhow::Result<()> {
        let serials: Vec<String> = specs.into_iter().map(|s| s.serial).collect();
        let n = serials.len() as u64;
        let req =
            BulkRevoke { issuer: issuer.clone(), serials, reason: reason.clone(), time, dry_run, why: why.clone() };
        let client = api.client.clone();
        let call = api.rt.spawn(async move { client.call(Method::POST, "/v1/revoke/bulk", Some(&req)).await });
        match in_flight.replace((n, call)) {
            Some(previous) => ack(previous),
            None => Ok(()),
        }
    })?;
    if let Some(last) = in_flight.take() {
        ack(last)?;
    }
    bar.finish_and_clear();
    print(json, &total, |t| {
        let mut s = format!(
            "{}revoked {}, reason changed {}, already revoked {}, refused {}, unknown serial {}",
            if t.dry_run { "dry run, nothing changed: would have " } else { "" },
            t.revoked,
            t.changed,
            t.already_revoked,
            t.refused.len(),
            t.unknown_serial.len()
        );
        for (label, list) in
            [("unknown serials", &t.unknown_serial), ("refused (already revoked for another reason)", &t.refused)]
        {
            if !list.is_empty() {
                let shown: Vec<&str> = list.iter().take(20).map(String::as_str).collect();
                s.push_str(&format!("\n{label}: {}{}", shown.join(" "), if list.len() > 20 { " ..." } else { "" }));
            }
        }
        s.push_str(&confirmed_text(&t.confirmed));
        if let Some(p) = &t.purge_pending {
            s.push_str(&format!(
                "\nwarning: caches not yet purged: {} (queued durably, retried until accepted; see `ocspctl purge status`)",
                p.join(", ")
            ));
        }
        s
    })?;
    confirmed_or_fail(&total.confirmed)
}

fn presign(api: &Api, json: bool, issuer: Option<String>, no_wait: bool) -> anyhow::Result<()> {
    let before: PresignStats = api.call(Method::GET, "/v1/presign", None::<&()>)?;
    let mut stats: PresignStats = api.call(Method::POST, "/v1/presign", Some(&Presign { issuer }))?;
    if !no_wait {
        let bar = progress(stats.pass_total.max(1), json, "presign");
        // The pass asked for has ended when the pass count moved past the one running (or
        // idle) when we asked, plus one.
        let target = before.passes + u64::from(before.pass_running) + 1;
        loop {
            stats = api.call(Method::GET, "/v1/presign", None::<&()>)?;
            bar.set_length(stats.pass_total.max(stats.pass_done).max(1));
            bar.set_position(stats.pass_done);
            if stats.passes >= target && stats.urgent == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        bar.finish_and_clear();
    }
    print(json, &stats, |s| {
        format!(
            "pre-signing: {} responses signed since start, {} errors, {} passes ({} s last), {} urgent waiting",
            s.signed, s.errors, s.passes, s.last_pass_seconds, s.urgent
        )
    })
}

/// A key reference for ocspd: a pkcs11: URI as given, a file as file:<absolute path>.
fn key_ref(key: &str) -> anyhow::Result<String> {
    if key.starts_with("pkcs11:") {
        return Ok(key.to_string());
    }
    let path = Path::new(key.strip_prefix("file:").unwrap_or(key));
    let abs = path.canonicalize().map_err(|e| usage(format!("key {}: {e}", path.display())))?;
    Ok(format!("file:{}", abs.display()))
}

fn promote(api: &Api, json: bool, name: &str, no_wait: bool, why: Option<String>) -> anyhow::Result<()> {
    let before: PresignStats = api.call(Method::GET, "/v1/presign", None::<&()>)?;
    let started = std::time::Instant::now();
    let done: ocsp_admin::api::Promoted = api.call(
        Method::POST,
        &format!("/v1/issuers/{}/promote", encode(name)),
        Some(&ocsp_admin::api::Promote { why }),
    )?;
    if !no_wait {
        // Every certificate has two responses (SHA-1 and SHA-256 CertIDs).
        let bar = progress((done.total * 2).max(1), json, "re-signing");
        let target = before.passes + u64::from(before.pass_running) + 1;
        loop {
            let stats: PresignStats = api.call(Method::GET, "/v1/presign", None::<&()>)?;
            bar.set_position(stats.signed.saturating_sub(before.signed).min(done.total * 2));
            if stats.passes >= target && !stats.pass_running && stats.urgent == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    print(json, &done, |d| {
        format!(
            "{}: {} now signs (was {}); {} revoked and {} most-asked certificates re-signed first; {} certificates {} in {secs:.1} s; caches purged",
            d.issuer.name,
            d.issuer.responder,
            d.previous_responder,
            d.revoked_first,
            d.hot_next,
            d.total,
            if no_wait { "being re-signed" } else { "re-signed" },
        )
    })
}

fn purge_text(s: &ocsp_admin::api::PurgeStatus) -> String {
    if s.targets.is_empty() {
        return "no purge targets configured (ocspd --purge-config); only the memory tier is evicted".into();
    }
    let mut out = Vec::new();
    for t in &s.targets {
        let state = match (&t.last_error, t.pending_events) {
            (Some(e), _) => format!("FAILING, retry in {} ms: {e}", t.retry_in_ms),
            (None, 0) => "up to date".into(),
            (None, n) => format!("{n} event(s) in flight"),
        };
        out.push(format!(
            "{} ({}): {state}; {} pending, lag {} s, {} sent, {} failed attempts",
            t.name,
            t.kind,
            t.pending.len(),
            t.lag_seconds,
            t.sent,
            t.failures
        ));
        for p in &t.pending {
            match &p.serial {
                Some(serial) => out.push(format!("  pending: {} serial {serial} since {}", p.issuer, p.since)),
                None => out.push(format!("  pending: {} (every answer) since {}", p.issuer, p.since)),
            }
        }
        for p in &t.undeliverable {
            let what = p.serial.as_ref().map(|s| format!("serial {s}")).unwrap_or_else(|| "(every answer)".into());
            out.push(format!(
                "  UNDELIVERABLE (refused even alone; purge it by hand): {} {what} since {}",
                p.issuer, p.since
            ));
        }
    }
    out.join("\n")
}

/// The marker that makes a folder ours to mirror into.
const EXPORT_MARKER: &str = ".ocspd-export";
/// The folder of manifests: one file per issuer, listing the files written for it.
const EXPORT_MANIFESTS: &str = ".ocspd-export.d";

/// The file a GET path is written to, relative to the export folder, if the path is one ocspd
/// could have sent: base64 (A-Z a-z 0-9 + / =) of a request, so never absolute, never with
/// `.` or `..` components, never empty. A path ending in '/' cannot name a file: its last '/'
/// is written as %2F.
pub(crate) fn export_file_name(path: &str) -> Option<PathBuf> {
    // GET paths are base64; CRL paths are crl/<issuer name>/<shard>.crl.
    let extra: &[u8] = if path.starts_with("crl/") { b"-_." } else { b"" };
    let ok = !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b) || extra.contains(&b));
    if !ok {
        return None;
    }
    let rel = match path.strip_suffix('/') {
        Some(head) => PathBuf::from(format!("{head}%2F")),
        None => PathBuf::from(path),
    };
    rel.components().all(|c| matches!(c, std::path::Component::Normal(_))).then_some(rel)
}

/// Waits until the pre-signer has nothing changed left to sign (no urgent work, no pass),
/// at most `wait`; true when it is idle or none runs.
fn wait_for_presigner(api: &Api, json: bool, wait: std::time::Duration) -> anyhow::Result<bool> {
    let deadline = std::time::Instant::now() + wait;
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    loop {
        let stats: ocsp_admin::api::PresignStats = match api.call(Method::GET, "/v1/presign", None::<&()>) {
            Ok(s) => s,
            // No pre-signer in this ocspd: nothing is being re-signed.
            Err(e) if e.to_string().contains("no pre-signer") => return Ok(true),
            Err(e) => return Err(e),
        };
        if stats.urgent == 0 && !stats.pass_running {
            bar.finish_and_clear();
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Ok(false);
        }
        bar.set_message(format!(
            "waiting for the pre-signer: {} changed certificates queued, pass {}/{}",
            stats.urgent, stats.pass_done, stats.pass_total
        ));
        bar.tick();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn export(api: &Api, json: bool, out: &Path, issuer: Option<String>, wait: &str) -> anyhow::Result<()> {
    use base64::Engine;
    use std::collections::{BTreeMap, BTreeSet};
    let wait = parse_duration(wait).map_err(|e| usage(format!("--wait: {e}")))?;
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(|e| usage(format!("{}: {e}", out.display())))?.next().is_none();
        if !empty && !out.join(EXPORT_MARKER).exists() {
            return Err(usage(format!(
                "{} is neither empty nor a previous export (no {EXPORT_MARKER}); refusing to mirror into it",
                out.display()
            )));
        }
    }
    // Certificates being re-signed (after a revocation or a promotion) have no current
    // response for a moment: mirroring then would drop their files.
    let idle = wait_for_presigner(api, json, wait)?;
    if !idle {
        anyhow::bail!(
            "the pre-signer is still re-signing changed certificates after {} s; nothing was exported (run again, or raise --wait)",
            wait.as_secs()
        );
    }
    std::fs::create_dir_all(out.join(EXPORT_MANIFESTS)).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join(EXPORT_MARKER), "written by ocspctl export; files here are mirrored\n")?;
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    bar.set_style(
        ProgressStyle::with_template("export {spinner} {pos} responses {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    // issuer key (hex) -> files written for it now
    let mut written: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut after: Option<String> = None;
    let mut refused = 0u64;
    loop {
        let mut q = vec!["limit=5000".to_string()];
        if let Some(a) = &after {
            q.push(format!("after={a}"));
        }
        if let Some(i) = &issuer {
            q.push(format!("issuer={}", encode(i)));
        }
        let page: ocsp_admin::api::ExportPage =
            api.call(Method::GET, &format!("/v1/export?{}", q.join("&")), None::<&()>)?;
        for item in &page.items {
            let (Some(rel), true) = (
                export_file_name(&item.path),
                !item.issuer_key.is_empty() && item.issuer_key.bytes().all(|b| b.is_ascii_hexdigit()),
            ) else {
                refused += 1;
                eprintln!("ocspctl: skipped an exported item with an unsafe path {:?}", item.path);
                continue;
            };
            let der = base64::engine::general_purpose::STANDARD.decode(&item.der).context("response from ocspd")?;
            let path = out.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension("ocspd-tmp");
            std::fs::write(&tmp, &der).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)?;
            written.entry(item.issuer_key.clone()).or_default().insert(rel);
            bar.inc(1);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    // The CRL shards, beside the responses, mirrored the same way.
    let q = issuer.as_ref().map(|i| format!("?issuer={}", encode(i))).unwrap_or_default();
    let crls: Vec<ocsp_crl::CrlFile> = match api.call(Method::GET, &format!("/v1/crl/files{q}"), None::<&()>) {
        Ok(list) => list,
        Err(e) if e.to_string().contains("no CRLs are published") => Vec::new(),
        Err(e) => return Err(e),
    };
    for crl in &crls {
        let Some(rel) = export_file_name(&crl.path).filter(|_| crl.issuer_key.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            refused += 1;
            eprintln!("ocspctl: skipped a CRL with an unsafe path {:?}", crl.path);
            continue;
        };
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("ocspd-tmp");
        std::fs::write(&tmp, &crl.der).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)?;
        written.entry(crl.issuer_key.clone()).or_default().insert(rel);
    }
    bar.finish_and_clear();
    // Mirror, issuer by issuer: remove what an earlier export wrote for an issuer exported now
    // and this one did not. A full export also clears issuers no longer exported (retired).
    let manifests = out.join(EXPORT_MANIFESTS);
    let mut previous: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&manifests)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = name.strip_suffix(".list") else { continue };
        let text = std::fs::read_to_string(entry.path())?;
        let files = text.lines().filter_map(export_file_name).collect();
        previous.insert(key.to_string(), files);
    }
    let exported_keys: BTreeSet<String> = match &issuer {
        // The issuer's key is learnt from what was written; with nothing written, from the
        // issuer's record.
        Some(name) => {
            // From the list, which does not count the issuer's certificates as `show` does.
            let views: Vec<IssuerView> = api.call(Method::GET, "/v1/issuers", None::<&()>)?;
            let view = views.iter().find(|v| &v.name == name).context("the exported issuer is no longer listed")?;
            let key = format!("{}{}", view.sha256_name_hash, view.sha256_key_hash);
            written.keys().cloned().chain(std::iter::once(key)).collect()
        }
        None => written.keys().cloned().chain(previous.keys().cloned()).collect(),
    };
    let mut removed = 0u64;
    for key in &exported_keys {
        let now: BTreeSet<PathBuf> = written.get(key).cloned().unwrap_or_default();
        for old in previous.get(key).into_iter().flatten() {
            if !now.contains(old) && written.values().all(|w| !w.contains(old)) {
                match std::fs::remove_file(out.join(old)) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let list = manifests.join(format!("{key}.list"));
        if now.is_empty() {
            let _ = std::fs::remove_file(&list);
        } else {
            let text: String = now.iter().map(|p| format!("{}\n", p.display())).collect();
            let tmp = list.with_extension("tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &list)?;
        }
    }
    let count: usize = written.values().map(BTreeSet::len).sum();
    let summary = serde_json::json!({ "written": count, "removed": removed, "refused": refused, "out": out.display().to_string() });
    print(json, &summary, |_| {
        format!("exported {count} responses to {} ({removed} stale files removed)", out.display())
    })
}

/// `30s`, `10m`, `1h`, or a number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration like 30s, 10m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration like 30s, 10m, 1h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

fn issuer_text(v: &IssuerView) -> String {
    let mut s = format!(
        "{}\t{}\tresponder: {} ({}, expires in {} days)\tsha1 {}/{}",
        v.name,
        v.subject,
        v.responder,
        if v.delegated { "delegated" } else { "issuer key" },
        v.responder_expires_in_days,
        v.sha1_name_hash,
        v.sha1_key_hash
    );
    if let (Some(g), Some(r)) = (v.good, v.revoked) {
        s.push_str(&format!("\tgood {g}, revoked {r}"));
    }
    if let Some(t) = &v.retired {
        s.push_str(&format!("\tretired {t}"));
    }
    if !v.reason_profile.is_empty() {
        s.push_str(&format!("\treasons {}, nonces {}", v.reason_profile, v.nonce_policy));
    }
    s
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Check everything local before contacting ocspd.
    let token = std::fs::read_to_string(&cli.token_file).map_err(|e| {
        usage(format!("admin token file {}: {e} (use --token-file or OCSPCTL_TOKEN_FILE)", cli.token_file.display()))
    })?;
    let client = AdminClient::new(&cli.admin_url, &token).map_err(|e| usage(e.to_string()))?;
    // One worker thread: a call spawned on it goes on while ocspctl reads the next batch.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let api = Api { rt, client };
    let json = cli.json;
    match cli.command {
        Command::Issuer(IssuerCmd::Add { name, cert, responder_cert, key, backup_responder_cert, backup_key, why }) => {
            let cert_pem = read_file(&cert, "issuer certificate")?;
            let responder_cert_pem =
                responder_cert.as_deref().map(|p| read_file(p, "responder certificate")).transpose()?;
            let backup_responder_cert_pem =
                backup_responder_cert.as_deref().map(|p| read_file(p, "backup responder certificate")).transpose()?;
            let key = key_ref(&key)?;
            let backup_key = backup_key.as_deref().map(key_ref).transpose()?;
            let req = AddIssuer { name, cert_pem, responder_cert_pem, key, backup_responder_cert_pem, backup_key, why };
            let view: IssuerView = api.call(Method::POST, "/v1/issuers", Some(&req))?;
            print(json, &view, |v| format!("registered issuer {} ({}), signed by {}", v.name, v.subject, v.responder))
        }
        Command::Issuer(IssuerCmd::Backup { name, responder_cert, key, why }) => {
            let responder_cert_pem =
                responder_cert.as_deref().map(|p| read_file(p, "backup responder certificate")).transpose()?;
            let req = ocsp_admin::api::SetBackup { responder_cert_pem, key: key_ref(&key)?, why };
            let view: IssuerView =
                api.call(Method::POST, &format!("/v1/issuers/{}/backup", encode(&name)), Some(&req))?;
            print(json, &view, |v| {
                format!("backup identity of {} ready: {}", v.name, v.backup_responder.as_deref().unwrap_or("?"))
            })
        }
        Command::Issuer(IssuerCmd::Promote { name, no_wait, why }) => promote(&api, json, &name, no_wait, why),
        Command::Issuer(IssuerCmd::List) => {
            let views: Vec<IssuerView> = api.call(Method::GET, "/v1/issuers", None::<&()>)?;
            print(json, &views, |vs| vs.iter().map(issuer_text).collect::<Vec<_>>().join("\n"))
        }
        Command::Issuer(IssuerCmd::Show { name }) => {
            let view: IssuerView = api.call(Method::GET, &format!("/v1/issuers/{}", encode(&name)), None::<&()>)?;
            print(json, &view, issuer_text)
        }
        Command::Issuer(IssuerCmd::Retire { name, why }) => {
            let view: IssuerView =
                api.call(Method::POST, &format!("/v1/issuers/{}/retire", encode(&name)), Some(&Retire { why }))?;
            print(json, &view, |v| format!("retired issuer {}; it now answers unauthorized", v.name))
        }
        Command::Cert(CertCmd::Add { issuer, pem, serial, not_after, ca, why }) => {
            let mut certs = Vec::new();
            for p in &pem {
                certs.push(CertSpec { cert_pem: Some(read_file(p, "certificate")?), ..Default::default() });
            }
            if let Some(s) = serial {
                Serial::from_hex(&s).map_err(usage)?;
                let not_after = not_after.as_deref().map(|t| parse_time(t, "--not-after")).transpose()?;
                certs.push(CertSpec { serial: Some(s), not_after, ca, ..Default::default() });
            }
            if certs.is_empty() {
                return Err(usage("give --pem FILE... or --serial HEX"));
            }
            let added: AddedCerts = api.call(Method::POST, "/v1/certs", Some(&AddCerts { issuer, certs, why }))?;
            print(json, &added, |a| format!("recorded {} new, {} already recorded", a.added, a.already))
        }
        Command::Import { issuer, dir, index, csv, batch, why } => {
            import(&api, json, issuer, (dir, index, csv), batch, why)
        }
        Command::Revoke { issuer, serial, reason, time, why } => {
            Serial::from_hex(&serial).map_err(usage)?;
            RevocationReason::parse(&reason).map_err(usage)?;
            let time = time.as_deref().map(|t| parse_time(t, "--time")).transpose()?;
            let view: StatusView =
                api.call(Method::POST, "/v1/revoke", Some(&Revoke { issuer, serial, reason, time, why }))?;
            print(json, &view, status_text)?;
            confirmed_or_fail(&view.confirmed)
        }
        Command::BulkRevoke { issuer, file, reason, time, dry_run, batch, why } => {
            bulk_revoke(&api, json, issuer, file, reason, time, dry_run, batch, why)
        }
        Command::Unhold { issuer, serial, why } => {
            Serial::from_hex(&serial).map_err(usage)?;
            let view: StatusView = api.call(Method::POST, "/v1/unhold", Some(&Unhold { issuer, serial, why }))?;
            print(json, &view, status_text)?;
            confirmed_or_fail(&view.confirmed)
        }
        Command::Presign { issuer, no_wait } => presign(&api, json, issuer, no_wait),
        Command::Status { issuer, serial } => {
            Serial::from_hex(&serial).map_err(usage)?;
            let path = format!("/v1/status?issuer={}&serial={}", encode(&issuer), encode(&serial));
            let view: StatusView = api.call(Method::GET, &path, None::<&()>)?;
            print(json, &view, status_text)
        }
        Command::Issuer(IssuerCmd::CrlKey { name, unset: true, why, .. }) => {
            let req = ocsp_admin::api::Retire { why };
            let view: IssuerView =
                api.call(Method::DELETE, &format!("/v1/issuers/{}/crl-key", encode(&name)), Some(&req))?;
            print(json, &view, |v| {
                format!(
                    "issuer {}: its CRLs are no longer signed (the stored shards are served until they expire)",
                    v.name
                )
            })
        }
        Command::Issuer(IssuerCmd::CrlKey { name, key, shards, why, .. }) => {
            let key = key.ok_or_else(|| usage("--key or --unset"))?;
            let req = ocsp_admin::api::SetCrlKey { key: key_ref(&key)?, shards, why };
            let view: IssuerView =
                api.call(Method::POST, &format!("/v1/issuers/{}/crl-key", encode(&name)), Some(&req))?;
            print(json, &view, |v| {
                format!(
                    "issuer {} signs its CRLs ({} shards) with {}",
                    v.name,
                    v.crl_shards.unwrap_or(1),
                    v.crl_key.as_deref().unwrap_or("?")
                )
            })
        }
        Command::Feed(FeedCmd::Status) => {
            let list: Vec<ocsp_admin::api::ConsumerLag> = api.call(Method::GET, "/v1/feed", None::<&()>)?;
            print(json, &list, |l| {
                l.iter()
                    .map(|c| match c.next {
                        Some(n) => format!("{}: {}, next change {n}, {} behind", c.name, c.kind, c.lag),
                        None => {
                            format!("{}: {}, not run on this node now (another node holds the role)", c.name, c.kind)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Fleet(FleetCmd::Status) => {
            let status: ocsp_fleet::FleetStatus = api.call(Method::GET, "/v1/fleet", None::<&()>)?;
            print(json, &status, |s| {
                let mut text = format!("fleet feed head {} (asked node {})", s.head, s.this_node);
                for n in &s.nodes {
                    let roles: Vec<&str> =
                        [(n.signs, "signs"), (n.purges, "purges")].iter().filter(|r| r.0).map(|r| r.1).collect();
                    text.push_str(&format!(
                        "\n  {}: {}, lag {} changes, applied {}, seen {:.1} s ago{}\n    {}  admin {}",
                        n.name,
                        if n.serves { "in service" } else { "OUT OF SERVICE" },
                        n.lag,
                        n.applied,
                        n.seen_seconds_ago,
                        if roles.is_empty() { String::new() } else { format!(", {}", roles.join(" and ")) },
                        n.public_url,
                        n.admin_url
                    ));
                }
                if let Some(note) = &s.note {
                    text.push_str(&format!("\nnote: {note}"));
                }
                text
            })
        }
        Command::Crl(CrlCmd::Urls) => {
            let urls: Vec<String> = api.call(Method::GET, "/v1/crl/urls", None::<&()>)?;
            println!("{}", serde_json::to_string_pretty(&urls).map_err(|e| anyhow::anyhow!("{e}"))?);
            Ok(())
        }
        Command::Crl(CrlCmd::Status) => {
            let shards: Vec<ocsp_crl::ShardStatus> = api.call(Method::GET, "/v1/crl", None::<&()>)?;
            let now = chrono::Utc::now().timestamp();
            print(json, &shards, |list| {
                list.iter()
                    .map(|s| {
                        format!(
                            "{} shard {}: number {}, {} entries, {} bytes, age {} s, next update in {} s{}\n  {}",
                            s.issuer,
                            s.shard,
                            s.number,
                            s.entries,
                            s.bytes,
                            now - s.this_update,
                            s.next_update - now,
                            if s.dirty { ", changes pending" } else { "" },
                            s.url
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Crl(CrlCmd::Verify) => {
            let report: ocsp_crl::VerifyReport = api.call(Method::POST, "/v1/crl/verify", None::<&()>)?;
            print(json, &report, |r| {
                let mut text = format!(
                    "{} shards, {} entries, {} revoked certificates in the database: {}",
                    r.shards,
                    r.entries,
                    r.revoked,
                    if r.problems.is_empty() {
                        "they agree".to_string()
                    } else {
                        format!("{} problems", r.problems.len())
                    }
                );
                for p in &r.problems {
                    text.push_str(&format!("\n  {p}"));
                }
                text
            })?;
            if !report.problems.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Purge(PurgeCmd::Status) => {
            let status: ocsp_admin::api::PurgeStatus = api.call(Method::GET, "/v1/purge", None::<&()>)?;
            print(json, &status, purge_text)
        }
        Command::Export { out, issuer, wait } => export(&api, json, &out, issuer, &wait),
        Command::Audit { issuer, serial, admin, action, since, limit, before } => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(b) = before {
                q.push(format!("before={b}"));
            }
            if let Some(s) = &serial {
                Serial::from_hex(s).map_err(usage)?;
            }
            let since = since.as_deref().map(|t| parse_time(t, "--since")).transpose()?.map(|t| t.to_string());
            for (k, v) in
                [("issuer", issuer), ("serial", serial), ("admin", admin), ("action", action), ("since", since)]
            {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            let entries: Vec<AuditView> = api.call(Method::GET, &format!("/v1/audit?{}", q.join("&")), None::<&()>)?;
            print(json, &entries, |es| {
                es.iter()
                    .map(|e| {
                        let serials = match e.serial_count.unwrap_or(e.serials.len()) {
                            0 => String::new(),
                            1..=5 => format!(" serials {}", e.serials.join(",")),
                            n => format!(" {n} serials ({} ...)", e.serials[..3.min(e.serials.len())].join(",")),
                        };
                        format!(
                            "#{} {} {} {}{}{}{}{}",
                            e.seq,
                            ocsp_admin::api::rfc3339(e.time),
                            e.admin,
                            e.action,
                            e.issuer.as_ref().map(|i| format!(" issuer {i}")).unwrap_or_default(),
                            serials,
                            e.reason.as_ref().map(|r| format!(" reason {r}")).unwrap_or_default(),
                            if e.detail.is_empty() { String::new() } else { format!(" ({})", e.detail) }
                        )
                    })
                    .chain(
                        (es.len() as u64 == limit)
                            .then(|| es.last().map(|e| format!("(more: ocspctl audit --before {})", e.seq)))
                            .flatten(),
                    )
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

/// Percent-encodes a query or path value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Writes one line to standard output. When the reader went away (`ocspctl ... | head`), the
/// rest of the output has nowhere to go: stop quietly, as Unix tools do, instead of panicking.
/// Whatever the command changed on the server is done either way.
fn out_line(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("ocspctl: writing the output: {e}");
        std::process::exit(1);
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("ocspctl: {e:#}");
        // A bad line in an input file is bad usage too: nothing was sent for it.
        let bad_usage = e.downcast_ref::<Usage>().is_some() || e.downcast_ref::<input::LineError>().is_some();
        let unconfirmed = e.downcast_ref::<Unconfirmed>().is_some();
        std::process::exit(if bad_usage {
            2
        } else if unconfirmed {
            3
        } else {
            1
        });
    }
}

#[cfg(test)]
mod tests {
    use super::export_file_name;
    use std::path::PathBuf;

    #[test]
    fn export_paths_from_the_server_stay_inside_the_folder() {
        assert_eq!(export_file_name("MEQwQjBA/MD4w+PDAJ=="), Some(PathBuf::from("MEQwQjBA/MD4w+PDAJ==")));
        assert_eq!(export_file_name("MEQw/"), Some(PathBuf::from("MEQw%2F")));
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a/./b", "a\\b", "a b", "a%2Fb", "\u{0}"] {
            assert_eq!(export_file_name(bad), None, "{bad:?}");
        }
    }
}
