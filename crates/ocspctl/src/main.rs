//! `ocspctl`, the CA staff's command line: registers issuers, records issued certificates,
//! revokes, and shows statuses, through ocspd's authenticated admin API. It never opens the
//! database itself.
//!
//! Exit codes: 0 done, 1 the call failed (ocspd refused it or could not be reached), 2 bad
//! usage (nothing was sent).

use anyhow::Context;
use clap::{Parser, Subcommand};
use hyper::Method;
use ocsp_admin::api::{AddCerts, AddIssuer, AddedCerts, CertSpec, IssuerView, Revoke, StatusView};
use ocsp_admin::AdminClient;
use ocsp_proto::{RevocationReason, Serial};
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(
    name = "ocspctl",
    version,
    about = "CA staff CLI for ocspd's admin API"
)]
struct Cli {
    /// ocspd's admin API.
    #[arg(
        long,
        global = true,
        env = "OCSPCTL_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    admin_url: String,
    /// File holding the admin bearer token (ocspd writes data/admin.token on first start).
    #[arg(
        long,
        global = true,
        env = "OCSPCTL_TOKEN_FILE",
        default_value = "./data/admin.token"
    )]
    token_file: PathBuf,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register and list issuers.
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Record issued certificates.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Revoke one certificate.
    Revoke {
        /// The issuer's name.
        #[arg(long)]
        issuer: String,
        /// The serial, hex (0x and : allowed).
        #[arg(long)]
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Revocation time, RFC 3339 (e.g. 2026-11-20T10:00:00Z); now when absent. An earlier
        /// time is for keyCompromise, when the key is known to have leaked before.
        #[arg(long)]
        time: Option<String>,
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
        /// The signing key (PKCS#8 PEM): the responder's, or the issuer's own. ocspd reads it
        /// from this path.
        #[arg(long)]
        key: PathBuf,
    },
    /// List registered issuers.
    List,
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
    },
}

/// A mistake in the call itself: reported with exit code 2, nothing sent.
#[derive(Debug)]
struct Usage(String);

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
    let bytes =
        std::fs::read(path).map_err(|e| usage(format!("{what} {}: {e}", path.display())))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        // DER: send as PEM so the JSON stays text.
        Err(e) => Ok(to_pem(e.as_bytes())),
    }
}

fn to_pem(der: &[u8]) -> String {
    use std::fmt::Write;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
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
        .map_err(|e| {
            usage(format!(
                "{what} {text:?} is not an RFC 3339 time like 2026-11-20T10:00:00Z: {e}"
            ))
        })
}

fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text(value));
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
    out
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Check everything local before contacting ocspd.
    let token = std::fs::read_to_string(&cli.token_file).map_err(|e| {
        usage(format!(
            "admin token file {}: {e} (use --token-file or OCSPCTL_TOKEN_FILE)",
            cli.token_file.display()
        ))
    })?;
    let client = AdminClient::new(&cli.admin_url, &token).map_err(|e| usage(e.to_string()))?;
    match cli.command {
        Command::Issuer(IssuerCmd::Add {
            name,
            cert,
            responder_cert,
            key,
        }) => {
            let cert_pem = read_file(&cert, "issuer certificate")?;
            let responder_cert_pem = responder_cert
                .as_deref()
                .map(|p| read_file(p, "responder certificate"))
                .transpose()?;
            let key = key
                .canonicalize()
                .map_err(|e| usage(format!("key {}: {e}", key.display())))?;
            let req = AddIssuer {
                name,
                cert_pem,
                responder_cert_pem,
                key: format!("file:{}", key.display()),
            };
            let view: IssuerView = client.call(Method::POST, "/v1/issuers", Some(&req)).await?;
            print(cli.json, &view, |v| {
                format!(
                    "registered issuer {} ({}), signed by {}",
                    v.name, v.subject, v.responder
                )
            })
        }
        Command::Issuer(IssuerCmd::List) => {
            let views: Vec<IssuerView> =
                client.call(Method::GET, "/v1/issuers", None::<&()>).await?;
            print(cli.json, &views, |vs| {
                vs.iter()
                    .map(|v| {
                        format!(
                            "{}\t{}\tresponder: {} ({}, expires in {} days)\tsha1 {}/{}",
                            v.name,
                            v.subject,
                            v.responder,
                            if v.delegated {
                                "delegated"
                            } else {
                                "issuer key"
                            },
                            v.responder_expires_in_days,
                            v.sha1_name_hash,
                            v.sha1_key_hash
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Cert(CertCmd::Add {
            issuer,
            pem,
            serial,
            not_after,
        }) => {
            let mut certs = Vec::new();
            for p in &pem {
                certs.push(CertSpec {
                    cert_pem: Some(read_file(p, "certificate")?),
                    ..Default::default()
                });
            }
            if let Some(s) = serial {
                Serial::from_hex(&s).map_err(usage)?;
                let not_after = not_after
                    .as_deref()
                    .map(|t| parse_time(t, "--not-after"))
                    .transpose()?;
                certs.push(CertSpec {
                    serial: Some(s),
                    not_after,
                    ..Default::default()
                });
            }
            if certs.is_empty() {
                return Err(usage("give --pem FILE... or --serial HEX"));
            }
            let added: AddedCerts = client
                .call(Method::POST, "/v1/certs", Some(&AddCerts { issuer, certs }))
                .await?;
            print(cli.json, &added, |a| {
                format!("recorded {} new, {} already recorded", a.added, a.already)
            })
        }
        Command::Revoke {
            issuer,
            serial,
            reason,
            time,
        } => {
            Serial::from_hex(&serial).map_err(usage)?;
            RevocationReason::parse(&reason).map_err(usage)?;
            let time = time
                .as_deref()
                .map(|t| parse_time(t, "--time"))
                .transpose()?;
            let view: StatusView = client
                .call(
                    Method::POST,
                    "/v1/revoke",
                    Some(&Revoke {
                        issuer,
                        serial,
                        reason,
                        time,
                    }),
                )
                .await?;
            print(cli.json, &view, status_text)
        }
        Command::Status { issuer, serial } => {
            Serial::from_hex(&serial).map_err(usage)?;
            let path = format!("/v1/status?issuer={issuer}&serial={serial}");
            let view: StatusView = client.call(Method::GET, &path, None::<&()>).await?;
            print(cli.json, &view, status_text)
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = runtime
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    if let Err(e) = result {
        eprintln!("ocspctl: {e:#}");
        std::process::exit(if e.downcast_ref::<Usage>().is_some() {
            2
        } else {
            1
        });
    }
}
