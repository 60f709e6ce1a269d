//! The admin API over HTTP: routes, authentication and roles, JSON in and out. The operations
//! and their rules are `ocsp-domain`'s; this adapter parses, calls, and maps errors to HTTP
//! statuses in one place ([`AdminError::status`]).

use crate::api::{self, ErrorBody};
use crate::{AdminAuth, Permission};
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Request;
use ocsp_domain::{AuditQuery, Domain, DomainError, ExportQuery};
use ocsp_http::{Handler, HttpResponse};
use ocsp_proto::Serial;
use std::net::SocketAddr;
use std::sync::Arc;

pub use ocsp_domain::MAX_BULK;

/// Bodies up to this size are accepted (a batch of PEM certificates or serials).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What the admin API acts on: the operations, and the parts of this process that calls
/// drive directly (a pass of the pre-signer, a peer's purge of the memory tier, the purge
/// fan-out's state).
pub struct AdminState {
    /// The operations.
    pub domain: Arc<Domain>,
    /// The pre-signer, when one runs.
    pub presigner: Option<Arc<ocsp_presign::Presigner>>,
    /// The memory tier, which peers' purges evict.
    pub memory: Option<Arc<ocsp_http::MemoryTier>>,
    /// The purge fan-out.
    pub purger: Option<Arc<ocsp_purge::Purger>>,
    /// The CRL publisher.
    pub crls: Option<Arc<ocsp_crl::Publisher>>,
    /// This node's part in a fleet.
    pub fleet: Option<Arc<ocsp_fleet::Fleet>>,
    /// Every follower of the change feed on this node and its lag.
    pub consumers: Option<Arc<dyn Fn() -> Vec<ocsp_domain::api::ConsumerLag> + Send + Sync>>,
}

/// The admin API service.
pub struct AdminService {
    state: AdminState,
    auth: AdminAuth,
    /// Refused calls per token in the current window (see [`Refusals`]).
    refusals: std::sync::Mutex<Refusals>,
}

/// Refused calls are audited, but a token cannot grow the audit record at will: per token and
/// per [`REFUSAL_WINDOW`], the first [`REFUSALS_IN_FULL`] are recorded one by one (their path
/// clipped to [`MAX_LOGGED_PATH`]), the rest only counted, and the count recorded as one
/// entry when the window ends ([`AdminService::flush_refusals`], or the token's next refusal).
#[derive(Default)]
struct Refusals {
    by_token: std::collections::HashMap<String, RefusalWindow>,
}

struct RefusalWindow {
    started: std::time::Instant,
    recorded: u32,
    suppressed: u64,
}

/// Refused calls of one token recorded one by one per window.
pub const REFUSALS_IN_FULL: u32 = 10;
/// The window refused calls are counted in.
pub const REFUSAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// The most of a request path that is logged or audited, in bytes.
pub const MAX_LOGGED_PATH: usize = 256;

/// `text` cut to at most `max` bytes at a character boundary, saying so.
fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len()).into()
}

impl Refusals {
    /// What to record for one more refused call by `who` now: the entries (a summary of the
    /// last window first, then this call) or nothing when it is only counted.
    fn note(&mut self, who: &str, detail: String, now: std::time::Instant) -> Vec<String> {
        let mut out = Vec::new();
        let w =
            self.by_token.entry(who.to_string()).or_insert(RefusalWindow { started: now, recorded: 0, suppressed: 0 });
        if now.duration_since(w.started) >= REFUSAL_WINDOW {
            if w.suppressed > 0 {
                out.push(format!(
                    "{} further refused calls by this token in {} s were counted, not recorded one by one",
                    w.suppressed,
                    REFUSAL_WINDOW.as_secs()
                ));
            }
            *w = RefusalWindow { started: now, recorded: 0, suppressed: 0 };
        }
        if w.recorded < REFUSALS_IN_FULL {
            w.recorded += 1;
            out.push(detail);
        } else {
            w.suppressed += 1;
        }
        out
    }

    /// The summaries of windows that ended by `now` (every window, with `all`), as (token,
    /// entry); their tokens are forgotten.
    fn due(&mut self, now: std::time::Instant, all: bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.by_token.retain(|who, w| {
            let ended = all || now.duration_since(w.started) >= REFUSAL_WINDOW;
            if ended && w.suppressed > 0 {
                out.push((
                    who.clone(),
                    format!(
                        "{} further refused calls by this token in {} s were counted, not recorded one by one",
                        w.suppressed,
                        now.duration_since(w.started).as_secs().clamp(1, REFUSAL_WINDOW.as_secs())
                    ),
                ));
            }
            !ended
        });
        out
    }
}

/// Why an admin call got no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The operation refused or failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The request itself is malformed (body, query).
    #[error("{0}")]
    BadRequest(String),
    /// The credential's role does not allow the call.
    #[error("{0}")]
    Forbidden(String),
    /// No such route, or a part this ocspd does not run (no pre-signer, no purge fan-out).
    #[error("{0}")]
    Absent(String),
    /// The body is larger than the API takes.
    #[error("{0}")]
    TooLarge(String),
    /// The reply could not be encoded.
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// The HTTP status of this error: the one place errors become statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Domain(DomainError::Invalid(_)) | AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Domain(DomainError::NotFound(_)) | AdminError::Absent(_) => StatusCode::NOT_FOUND,
            AdminError::Domain(DomainError::Conflict(_)) => StatusCode::CONFLICT,
            AdminError::Domain(DomainError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Domain(_) | AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

type Reply = Result<(StatusCode, serde_json::Value), AdminError>;

fn invalid(msg: impl Into<String>) -> AdminError {
    AdminError::BadRequest(msg.into())
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    serde_json::to_value(value).map(|v| (status, v)).map_err(|e| AdminError::Internal(e.to_string()))
}

/// A path segment or query value: `+` is a space (form encoding), `%XX` escapes decoded; a
/// value that does not decode is taken as written (the operation then says what is wrong).
fn percent_decode(v: &str) -> String {
    let spaced = v.replace('+', " ");
    match ocsp_proto::percent_decode(&spaced) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => spaced,
    }
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn number<T: std::str::FromStr>(query: Option<&str>, key: &str) -> Result<Option<T>, AdminError> {
    query_param(query, key)
        .map(|s| s.parse::<T>().map_err(|_| invalid(format!("{key} {s:?} is not a number"))))
        .transpose()
}

impl AdminService {
    /// The admin API over `state`, for the credentials in `auth`.
    pub fn new(state: AdminState, auth: AdminAuth) -> AdminService {
        AdminService { state, auth, refusals: std::sync::Mutex::default() }
    }

    /// Records the summary of every refusal window that ended (all of them with `all`, at
    /// shutdown): call every few seconds, so a token that stops being refused still has its
    /// count on the record. Blocks on the database.
    pub fn flush_refusals(&self, all: bool) {
        let due = self.refusals.lock().unwrap_or_else(|p| p.into_inner()).due(std::time::Instant::now(), all);
        for (who, detail) in due {
            if let Err(e) = self.state.domain.record_refusal(&who, detail) {
                tracing::error!(error = %e, "cannot record a summary of refused admin calls in the audit record");
            }
        }
    }

    /// The operations (for in-process callers such as the demo set-up).
    pub fn domain(&self) -> &Arc<Domain> {
        &self.state.domain
    }

    fn audit_query(query: Option<&str>) -> Result<AuditQuery, AdminError> {
        Ok(AuditQuery {
            issuer: query_param(query, "issuer"),
            serial: query_param(query, "serial"),
            admin: query_param(query, "admin"),
            action: query_param(query, "action"),
            since: query_param(query, "since")
                .map(|s| s.parse::<i64>().map_err(|_| invalid(format!("since {s:?} is not seconds since the epoch"))))
                .transpose()?,
            before: query_param(query, "before")
                .map(|s| s.parse::<u64>().map_err(|_| invalid(format!("before {s:?} is not a sequence number"))))
                .transpose()?,
            limit: number(query, "limit")?,
        })
    }

    /// A peer's purge: evict our memory tier (our own database already has the change, or
    /// gets it by replication; the memory tier is the only copy a peer cannot reach).
    pub fn peer_purge(&self, req: api::PeerPurge, who: &str) -> Result<serde_json::Value, AdminError> {
        let issuer = ocsp_proto::IssuerKey::from_hex(&req.issuer)
            .ok_or_else(|| invalid("issuer is not a 64-byte issuer key in hex"))?;
        let serials =
            req.serials.iter().map(|s| Serial::from_hex(s)).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        if let Some(memory) = &self.state.memory {
            if serials.is_empty() {
                memory.evict_issuer(&issuer);
            } else {
                memory.evict(&issuer, &serials);
            }
        }
        tracing::info!(peer = who, issuer = %issuer.short(), certificates = serials.len(), "peer purge applied");
        Ok(serde_json::json!({ "evicted": serials.len() }))
    }

    /// The purge fan-out's state, naming the certificates still pending at each target.
    pub fn purge_status(&self) -> Result<api::PurgeStatus, AdminError> {
        let purger = self
            .state
            .purger
            .as_ref()
            .ok_or_else(|| AdminError::Absent("no purge fan-out runs in this ocspd".into()))?;
        let name_of = |hex_key: &str| -> String {
            ocsp_proto::IssuerKey::from_hex(hex_key)
                .and_then(|k| self.state.domain.registry().by_key(&k))
                .map(|e| e.name.clone())
                .unwrap_or_else(|| hex_key.to_string())
        };
        let view = |list: &[ocsp_purge::PendingCert]| -> Vec<api::PendingPurge> {
            list.iter()
                .map(|p| api::PendingPurge {
                    issuer: name_of(&p.issuer),
                    serial: p.serial.clone(),
                    since: api::rfc3339(p.since),
                })
                .collect()
        };
        let targets = purger
            .status()
            .into_iter()
            .map(|t| api::PurgeTargetView {
                pending: view(&t.pending),
                undeliverable: view(&t.undeliverable),
                name: t.name,
                kind: t.kind,
                pending_events: t.pending_events,
                lag_seconds: t.lag_seconds,
                sent: t.sent,
                failures: t.failures,
                last_error: t.last_error,
                retry_in_ms: t.retry_in_ms,
            })
            .collect();
        Ok(api::PurgeStatus { outbox_head: self.state.domain.store().feed_head(), targets })
    }

    fn crls(&self) -> Result<&ocsp_crl::Publisher, AdminError> {
        self.state.crls.as_deref().ok_or_else(|| AdminError::Absent("no CRLs are published by this ocspd".into()))
    }

    fn presigner(&self) -> Result<&Arc<ocsp_presign::Presigner>, AdminError> {
        self.state.presigner.as_ref().ok_or_else(|| AdminError::Absent("no pre-signer runs in this ocspd".into()))
    }

    /// Starts a pre-signing pass over every issuer, or one; returns the counters.
    pub fn start_presign(&self, req: api::Presign, who: &str) -> Result<ocsp_presign::PresignStats, AdminError> {
        let key = req.issuer.as_deref().map(|n| self.state.domain.issuer_key(n)).transpose()?;
        let presigner = self.presigner()?;
        presigner.request_pass(key);
        tracing::info!(admin = who, issuer = req.issuer.as_deref().unwrap_or("all"), "pre-signing pass requested");
        Ok(presigner.stats())
    }

    fn dispatch(&self, method: &Method, path: &str, q: Option<&str>, body: &[u8], who: &str) -> Reply {
        let d = &self.state.domain;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["v1", "issuers"]) => json(StatusCode::OK, &d.list_issuers()?),
            (&Method::POST, ["v1", "issuers"]) => json(StatusCode::CREATED, &d.add_issuer(parse(body)?, who)?),
            (&Method::GET, ["v1", "issuers", name]) => json(StatusCode::OK, &d.show_issuer(&percent_decode(name))?),
            (&Method::POST, ["v1", "issuers", name, "retire"]) => {
                json(StatusCode::OK, &d.retire_issuer(&percent_decode(name), parse(body)?, who)?)
            }
            (&Method::POST, ["v1", "issuers", name, "backup"]) => {
                json(StatusCode::OK, &d.set_backup(&percent_decode(name), parse(body)?, who)?)
            }
            (&Method::POST, ["v1", "issuers", name, "crl-key"]) => {
                let default_shards = self.state.crls.as_ref().map_or(1, |c| c.default_shards());
                let view = d.set_crl_key(&percent_decode(name), parse(body)?, default_shards, who)?;
                // Published from now on: its URLs are listed at once, its shards signed next.
                if let Some(crls) = &self.state.crls {
                    crls.refresh_issuers();
                }
                json(StatusCode::OK, &view)
            }
            (&Method::DELETE, ["v1", "issuers", name, "crl-key"]) => {
                let view = d.unset_crl_key(&percent_decode(name), parse_or_default(body)?, who)?;
                if let Some(crls) = &self.state.crls {
                    crls.refresh_issuers();
                }
                json(StatusCode::OK, &view)
            }
            (&Method::GET, ["v1", "feed"]) => {
                let list = self.state.consumers.as_ref().map(|c| c()).unwrap_or_default();
                json(StatusCode::OK, &list)
            }
            (&Method::GET, ["v1", "fleet"]) => {
                let fleet = self
                    .state
                    .fleet
                    .as_deref()
                    .ok_or_else(|| AdminError::Absent("this ocspd is a single node, not part of a fleet".into()))?;
                json(StatusCode::OK, &fleet.status().map_err(DomainError::from)?)
            }
            (&Method::GET, ["v1", "crl"]) => json(StatusCode::OK, &self.crls()?.status().map_err(DomainError::from)?),
            (&Method::GET, ["v1", "crl", "urls"]) => json(StatusCode::OK, &self.crls()?.urls()),
            (&Method::GET, ["v1", "crl", "files"]) => {
                json(StatusCode::OK, &self.crls()?.files(query_param(q, "issuer").as_deref()))
            }
            (&Method::POST, ["v1", "crl", "verify"]) => {
                json(StatusCode::OK, &ocsp_crl::verify(self.crls()?).map_err(DomainError::from)?)
            }
            (&Method::POST, ["v1", "issuers", name, "promote"]) => {
                json(StatusCode::OK, &d.promote(&percent_decode(name), parse(body)?, who)?)
            }
            (&Method::POST, ["v1", "certs"]) => json(StatusCode::OK, &d.add_certs(parse(body)?, who)?),
            (&Method::POST, ["v1", "revoke"]) => json(StatusCode::OK, &d.revoke(parse(body)?, who)?),
            (&Method::POST, ["v1", "revoke", "bulk"]) => json(StatusCode::OK, &d.bulk_revoke(parse(body)?, who)?),
            (&Method::POST, ["v1", "unhold"]) => json(StatusCode::OK, &d.unhold(parse(body)?, who)?),
            (&Method::GET, ["v1", "status"]) => {
                let issuer = query_param(q, "issuer").ok_or_else(|| invalid("missing issuer"))?;
                let serial = query_param(q, "serial").ok_or_else(|| invalid("missing serial"))?;
                json(StatusCode::OK, &d.status(&issuer, &serial)?)
            }
            (&Method::POST, ["v1", "presign"]) => json(StatusCode::OK, &self.start_presign(parse(body)?, who)?),
            (&Method::GET, ["v1", "presign"]) => json(StatusCode::OK, &self.presigner()?.stats()),
            (&Method::GET, ["v1", "audit"]) => json(StatusCode::OK, &d.audit(Self::audit_query(q)?)?),
            (&Method::POST, ["v1", "purge"]) => json(StatusCode::OK, &self.peer_purge(parse(body)?, who)?),
            (&Method::GET, ["v1", "purge"]) => json(StatusCode::OK, &self.purge_status()?),
            (&Method::GET, ["v1", "export"]) => {
                let query = ExportQuery {
                    after: query_param(q, "after"),
                    limit: number(q, "limit")?,
                    issuer: query_param(q, "issuer"),
                };
                json(StatusCode::OK, &d.export(query)?)
            }
            _ => Err(AdminError::Absent(format!("no admin route {path}"))),
        }
    }
}

/// What a call needs: reading, revoking, a peer's purge, or managing (everything else).
pub fn permission(method: &Method, path: &str) -> Permission {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, _) => Permission::Read,
        (&Method::POST, ["v1", "revoke"]) | (&Method::POST, ["v1", "revoke", "bulk"]) => Permission::Revoke,
        (&Method::POST, ["v1", "purge"]) => Permission::PeerPurge,
        _ => Permission::Manage,
    }
}

/// An optional body: none is the default request.
fn parse_or_default<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("request body is not the expected JSON: {e}")))
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, AdminError> {
    Ok(Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| AdminError::TooLarge(format!("request body: {e}")))?
        .to_bytes())
}

/// The largest body read and dropped from a refused call, so its keep-alive connection stays
/// usable; a larger one is left unread (and the connection closes after the answer).
const DRAINED_BODY: u64 = 64 << 10;

/// Reads and drops the body of a refused call when it is small (at most [`DRAINED_BODY`],
/// within a second).
async fn drain_small(req: Request<Incoming>) {
    let small = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n <= DRAINED_BODY);
    if small {
        let body = Limited::new(req.into_body(), DRAINED_BODY as usize);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), body.collect()).await;
    }
}

fn reply(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

impl Handler for AdminService {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> ocsp_http::BoxFuture<'static, HttpResponse> {
        Box::pin(async move {
            let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let Some(credential) = self.auth.credential(auth) else {
                tracing::warn!(%peer, path = %clip(req.uri().path(), MAX_LOGGED_PATH), credential = if auth.is_some() { "wrong" } else { "missing" }, "admin call refused");
                drain_small(req).await;
                let body = serde_json::json!(ErrorBody { error: "missing or wrong admin token".into() });
                let mut r = reply(StatusCode::UNAUTHORIZED, &body);
                r.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                return r;
            };
            let who = credential.name.clone();
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let query = req.uri().query().map(str::to_string);
            let needed = permission(&method, &path);
            let result = if !credential.role.allows(needed) {
                drain_small(req).await;
                Err(AdminError::Forbidden(format!(
                    "token {who:?} has role {} and may not {method} {path} (it needs {needed:?}); ask for a staff token",
                    credential.role.name()
                )))
            } else {
                match read_body(req).await {
                    // The store's writes wait for fsync: let the runtime move other tasks off this
                    // worker meanwhile, so public OCSP requests are not held up.
                    Ok(body) => {
                        tokio::task::block_in_place(|| self.dispatch(&method, &path, query.as_deref(), &body, &who))
                    }
                    Err(f) => Err(f),
                }
            };
            match result {
                Ok((status, value)) => reply(status, &value),
                Err(e) => {
                    let (status, error) = (e.status(), e.to_string());
                    // Messages may echo the request (a path, a JSON value): clipped in the log.
                    let logged = clip(&error, 4 * MAX_LOGGED_PATH);
                    if status.is_server_error() {
                        tracing::error!(admin = %who, error = %logged, "admin call failed");
                    } else {
                        tracing::info!(admin = %who, error = %logged, "admin call refused");
                    }
                    // Every refused change, and every call a role forbids, is on the record.
                    // Bounded per token (`Refusals`), paths and messages clipped.
                    if status == StatusCode::FORBIDDEN || (method != Method::GET && status.is_client_error()) {
                        let detail = format!(
                            "{method} {}: {status}: {}",
                            clip(&path, MAX_LOGGED_PATH),
                            clip(&error, 4 * MAX_LOGGED_PATH)
                        );
                        let entries = self.refusals.lock().unwrap_or_else(|p| p.into_inner()).note(
                            &who,
                            detail,
                            std::time::Instant::now(),
                        );
                        for detail in entries {
                            if let Err(e) =
                                tokio::task::block_in_place(|| self.state.domain.record_refusal(&who, detail))
                            {
                                tracing::error!(error = %e, "cannot record a refused admin call in the audit record");
                            }
                        }
                    }
                    reply(status, &serde_json::json!(ErrorBody { error }))
                }
            }
        })
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn refusals_are_recorded_in_full_up_to_a_bound_per_window_then_counted_and_summarised() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        let mut recorded = Vec::new();
        for i in 0..500 {
            recorded.extend(r.note("reader", format!("call {i}"), t0 + Duration::from_millis(i)));
        }
        assert_eq!(recorded.len(), REFUSALS_IN_FULL as usize, "{recorded:?}");
        // Another token has its own bound.
        assert_eq!(r.note("other", "x".into(), t0).len(), 1);
        // A window that ended is summarised by the periodic flush, even with no refusal after.
        let mut quiet = Refusals::default();
        for i in 0..15 {
            quiet.note("quiet", format!("call {i}"), t0);
        }
        assert!(quiet.due(t0 + Duration::from_secs(1), false).is_empty(), "the window is still open");
        let due = quiet.due(t0 + REFUSAL_WINDOW, false);
        assert_eq!(due.len(), 1);
        assert!(due[0].1.starts_with("5 further refused calls"), "{due:?}");
        assert!(quiet.due(t0 + REFUSAL_WINDOW * 3, true).is_empty(), "summarised once");
        // The next window opens with one summary of what was only counted.
        let next = r.note("reader", "later".into(), t0 + REFUSAL_WINDOW + Duration::from_secs(1));
        assert_eq!(next.len(), 2);
        assert!(next[0].starts_with("490 further refused calls"), "{}", next[0]);
        assert_eq!(next[1], "later");
    }

    #[test]
    fn paths_are_clipped_at_a_character_boundary() {
        let long = "é".repeat(1000);
        let c = clip(&long, MAX_LOGGED_PATH);
        assert!(c.len() < MAX_LOGGED_PATH + 32, "{}", c.len());
        assert!(c.ends_with("(2000 bytes)"));
        assert_eq!(clip("/v1/status", MAX_LOGGED_PATH), "/v1/status");
    }
}
