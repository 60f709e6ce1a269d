use crate::api::{
    self, AddCerts, AddIssuer, AddedCerts, ErrorBody, IssuerView, Revoke, StatusView,
};
use crate::AdminAuth;
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Request;
use ocsp_http::{Handler, HttpResponse};
use ocsp_proto::x509::{pem_blocks, CertInfo};
use ocsp_proto::{Clock, RevocationReason, Serial};
use ocsp_sign::{verify_issued_by, IssuerEntry, IssuerRegistry};
use ocsp_store::{IssuerRecord, RevokeOutcome, State, Store};
use std::net::SocketAddr;
use std::sync::Arc;

/// Bodies up to this size are accepted (a batch of PEM certificates).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Revocation times may lie this far in the future, for clock skew between staff and server.
const FUTURE_SLACK: i64 = 300;

/// What the admin API acts on.
pub struct AdminState {
    /// The database.
    pub store: Arc<Store>,
    /// The issuers being served; updated when one is registered.
    pub registry: Arc<IssuerRegistry>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The admin API service.
pub struct AdminService {
    state: AdminState,
    auth: AdminAuth,
}

/// A refused or failed admin operation: the HTTP status and what to tell the caller.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Failure {}

/// Serials with their notAfter, for one issuer.
type IssuedList = Vec<(Serial, i64)>;

type Reply = Result<(StatusCode, serde_json::Value), Failure>;

fn bad(msg: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    serde_json::to_value(value)
        .map(|v| (status, v))
        .map_err(internal)
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            v.replace("%20", " ")
                .replace("%3A", ":")
                .replace("%3a", ":")
        })
    })
}

impl AdminService {
    /// The admin API over `state`, accepting the credentials in `auth`.
    pub fn new(state: AdminState, auth: AdminAuth) -> AdminService {
        AdminService { state, auth }
    }

    fn issuer_view(entry: &IssuerEntry, key: &str, now: i64) -> IssuerView {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        IssuerView {
            name: entry.name.clone(),
            subject: entry.cert.subject_text(),
            sha1_name_hash: hex(&entry.hashes.sha1_name),
            sha1_key_hash: hex(&entry.hashes.sha1_key),
            sha256_name_hash: hex(&entry.hashes.sha256_name),
            sha256_key_hash: hex(&entry.hashes.sha256_key),
            responder: entry.identity.certificate().subject_text(),
            delegated: entry.identity.is_delegated(),
            key: key.to_string(),
            responder_expires_in_days: entry.identity.expires_in(now) / 86_400,
        }
    }

    fn list_issuers(&self) -> Reply {
        let now = self.state.clock.now();
        let records = self.state.store.issuers().map_err(internal)?;
        let views: Vec<IssuerView> = records
            .iter()
            .filter_map(|r| {
                self.state
                    .registry
                    .by_name(&r.name)
                    .map(|e| Self::issuer_view(&e, &r.responder_key, now))
            })
            .collect();
        json(StatusCode::OK, &views)
    }

    /// Registers an issuer after checking its identity.
    pub fn add_issuer(&self, req: AddIssuer) -> Result<IssuerView, Failure> {
        let now = self.state.clock.now();
        if req.name.is_empty()
            || req.name.len() > 64
            || !req
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(format!(
                "issuer name {:?} must be 1 to 64 of A-Z a-z 0-9 - _ .",
                req.name
            )));
        }
        if self.state.registry.by_name(&req.name).is_some() {
            return Err(Failure(
                StatusCode::CONFLICT,
                format!("an issuer named {:?} is already registered", req.name),
            ));
        }
        let cert = CertInfo::from_pem_or_der(req.cert_pem.as_bytes())
            .map_err(|e| bad(format!("issuer certificate: {e}")))?;
        let responder = req
            .responder_cert_pem
            .as_deref()
            .map(|p| CertInfo::from_pem_or_der(p.as_bytes()))
            .transpose()
            .map_err(|e| bad(format!("responder certificate: {e}")))?;
        if !req.key.starts_with("file:") {
            return Err(bad(format!(
                "key {:?}: expected file:<absolute path>",
                req.key
            )));
        }
        let entry = IssuerEntry::load(
            &req.name,
            &cert.der,
            responder.as_ref().map(|r| r.der.as_slice()),
            &req.key,
            now,
        )
        .map_err(|e| bad(e.to_string()))?;
        if let Some(existing) = self.state.registry.by_key(&entry.key) {
            return Err(Failure(
                StatusCode::CONFLICT,
                format!(
                    "issuer {:?} already has this subject and public key; certificates under either share CertIDs, so they cannot be told apart",
                    existing.name
                ),
            ));
        }
        let record = IssuerRecord {
            name: req.name.clone(),
            cert_der: cert.der.clone(),
            responder_cert_der: responder.map(|r| r.der),
            responder_key: req.key.clone(),
            added_at: now,
        };
        self.state
            .store
            .put_issuer(&entry.key, &record)
            .map_err(internal)?;
        let view = Self::issuer_view(&entry, &req.key, now);
        tracing::info!(issuer = %req.name, key = %entry.key.short(), "issuer registered");
        self.state.registry.insert(entry);
        Ok(view)
    }

    fn issuer(&self, name: &str) -> Result<Arc<IssuerEntry>, Failure> {
        self.state.registry.by_name(name).ok_or_else(|| {
            Failure(
                StatusCode::NOT_FOUND,
                format!("no issuer named {name:?}; `ocspctl issuer list` shows them"),
            )
        })
    }

    /// Records issued certificates; all are checked before any is written.
    pub fn add_certs(&self, req: AddCerts) -> Result<AddedCerts, Failure> {
        let now = self.state.clock.now();
        let named = req.issuer.as_deref().map(|n| self.issuer(n)).transpose()?;
        // Validate everything before writing anything.
        let mut by_issuer: Vec<(Arc<IssuerEntry>, IssuedList)> = Vec::new();
        for (i, spec) in req.certs.iter().enumerate() {
            let (issuer, serial, not_after) = match (&spec.cert_pem, &spec.serial) {
                (Some(pem), None) => {
                    let certs: Vec<Vec<u8>> = pem_blocks(pem, "CERTIFICATE");
                    let der = match certs.as_slice() {
                        [one] => one.clone(),
                        _ => pem.as_bytes().to_vec(),
                    };
                    let cert = CertInfo::from_pem_or_der(&der)
                        .map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
                    let issuer = match &named {
                        Some(n) if verify_issued_by(&cert, &n.cert) => n.clone(),
                        Some(n) => {
                            return Err(bad(format!(
                                "certificate {} (serial {}) is not issued by {:?} (issuer name or signature differs)",
                                i + 1,
                                cert.serial_hex(),
                                n.name
                            )))
                        }
                        None => self.state.registry.all().into_iter().find(|e| verify_issued_by(&cert, &e.cert)).ok_or_else(|| {
                            bad(format!("certificate {} (serial {}): no registered issuer signed it", i + 1, cert.serial_hex()))
                        })?,
                    };
                    let serial =
                        Serial::from_int_bytes(&cert.serial).map_err(|e| bad(e.to_string()))?;
                    (issuer, serial, cert.not_after)
                }
                (None, Some(hex)) => {
                    let issuer = named
                        .clone()
                        .ok_or_else(|| bad("recording a serial needs --issuer"))?;
                    (
                        issuer,
                        Serial::from_hex(hex).map_err(bad)?,
                        spec.not_after.unwrap_or(0),
                    )
                }
                _ => {
                    return Err(bad(format!(
                        "certificate {}: give either a certificate or a serial",
                        i + 1
                    )))
                }
            };
            match by_issuer.iter_mut().find(|(e, _)| e.key == issuer.key) {
                Some((_, list)) => list.push((serial, not_after)),
                None => by_issuer.push((issuer, vec![(serial, not_after)])),
            }
        }
        let mut out = AddedCerts {
            added: 0,
            already: 0,
            serials: Vec::new(),
        };
        for (issuer, list) in &by_issuer {
            let added = self
                .state
                .store
                .record_issued(&issuer.key, list, now)
                .map_err(internal)?;
            out.added += added;
            out.already += list.len() - added;
            out.serials.extend(
                list.iter()
                    .map(|(s, _)| (issuer.name.clone(), s.to_string())),
            );
        }
        Ok(out)
    }

    fn status_view(
        issuer: &str,
        serial: &Serial,
        rec: Option<ocsp_store::StatusRecord>,
        outcome: Option<&str>,
    ) -> StatusView {
        let (status, time, reason) = match rec.map(|r| r.state) {
            None => ("unknown", None, None),
            Some(State::Good) => ("good", None, None),
            Some(State::Revoked { time, reason }) => (
                "revoked",
                Some(api::rfc3339(time)),
                reason.map(|r| r.name().to_string()),
            ),
        };
        StatusView {
            issuer: issuer.to_string(),
            serial: serial.to_string(),
            status: status.into(),
            revocation_time: time,
            reason,
            not_after: rec
                .filter(|r| r.not_after > 0)
                .map(|r| api::rfc3339(r.not_after)),
            outcome: outcome.map(str::to_string),
        }
    }

    /// Revokes one certificate; `who` names the admin credential for the log.
    pub fn revoke(&self, req: Revoke, who: &str) -> Result<StatusView, Failure> {
        let now = self.state.clock.now();
        let issuer = self.issuer(&req.issuer)?;
        let serial = Serial::from_hex(&req.serial).map_err(bad)?;
        let reason = RevocationReason::parse(&req.reason).map_err(bad)?;
        if reason == RevocationReason::RemoveFromCrl {
            return Err(bad(
                "removeFromCRL is not a revocation reason; it lifts a certificateHold",
            ));
        }
        let time = req.time.unwrap_or(now);
        if time > now + FUTURE_SLACK {
            return Err(bad(format!(
                "revocation time {} is in the future",
                api::rfc3339(time)
            )));
        }
        let outcome = self
            .state
            .store
            .revoke(&issuer.key, &serial, time, reason, now)
            .map_err(internal)?;
        let (rec, label) = match outcome {
            RevokeOutcome::Revoked(r) => (r, "revoked"),
            RevokeOutcome::Changed(r) => (r, "changed"),
            RevokeOutcome::AlreadyRevoked(r) => (r, "already revoked"),
            RevokeOutcome::Refused { current } => {
                let cur = match current.state {
                    State::Revoked { reason: Some(r), .. } => r.name(),
                    _ => "no reason",
                };
                return Err(Failure(
                    StatusCode::CONFLICT,
                    format!("serial {serial} is already revoked ({cur}); a revocation is final and may only change to keyCompromise"),
                ));
            }
            RevokeOutcome::NotIssued => {
                return Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!("serial {serial} was never recorded as issued by {:?}; record it first (`ocspctl cert add`)", issuer.name),
                ))
            }
        };
        tracing::info!(admin = who, issuer = %issuer.name, %serial, reason = reason.name(), outcome = label, "revocation");
        Ok(Self::status_view(
            &issuer.name,
            &serial,
            Some(rec),
            Some(label),
        ))
    }

    fn status(&self, query: Option<&str>) -> Reply {
        let name = query_param(query, "issuer").ok_or_else(|| bad("missing issuer"))?;
        let serial = query_param(query, "serial").ok_or_else(|| bad("missing serial"))?;
        let issuer = self.issuer(&name)?;
        let serial = Serial::from_hex(&serial).map_err(bad)?;
        let rec = self
            .state
            .store
            .status(&issuer.key, &serial)
            .map_err(internal)?;
        json(
            StatusCode::OK,
            &Self::status_view(&issuer.name, &serial, rec, None),
        )
    }

    async fn dispatch(&self, req: Request<Incoming>, who: &str) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        match (method, path.as_str()) {
            (Method::GET, "/v1/issuers") => self.list_issuers(),
            (Method::POST, "/v1/issuers") => {
                json(StatusCode::CREATED, &self.add_issuer(body(req).await?)?)
            }
            (Method::POST, "/v1/certs") => json(StatusCode::OK, &self.add_certs(body(req).await?)?),
            (Method::POST, "/v1/revoke") => {
                json(StatusCode::OK, &self.revoke(body(req).await?, who)?)
            }
            (Method::GET, "/v1/status") => self.status(query.as_deref()),
            _ => Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no admin route {path}"),
            )),
        }
    }
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Failure> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Failure(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("request body is not the expected JSON: {e}")))
}

fn reply(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

impl Handler for AdminService {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> ocsp_http::BoxFuture<'static, HttpResponse> {
        Box::pin(async move {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let Some(who) = self.auth.authenticate(auth).map(str::to_string) else {
                tracing::warn!(%peer, path = req.uri().path(), credential = if auth.is_some() { "wrong" } else { "missing" }, "admin call refused");
                let body = serde_json::json!(ErrorBody {
                    error: "missing or wrong admin token".into()
                });
                let mut r = reply(StatusCode::UNAUTHORIZED, &body);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                return r;
            };
            match self.dispatch(req, &who).await {
                Ok((status, value)) => reply(status, &value),
                Err(Failure(status, error)) => {
                    if status.is_server_error() {
                        tracing::error!(admin = %who, %error, "admin call failed");
                    }
                    reply(status, &serde_json::json!(ErrorBody { error }))
                }
            }
        })
    }
}
