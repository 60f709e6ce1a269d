use crate::headers::{self, NO_CACHE};
use crate::prepared::{Served, Tier};
use crate::serve::{Handler, HttpResponse};
use crate::source::{AnswerError, BoxFuture, Source};
use crate::Metrics;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Request;
use ocsp_proto::{error_response, parse_request, Clock, ResponseStatus};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocsp_proto::decode_get_path;
pub use ocsp_proto::MAX_REQUEST_BYTES;

/// How long a client may take to send a POST body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

const OCSP_RESPONSE: &str = "application/ocsp-response";
const OCSP_REQUEST: &str = "application/ocsp-request";
const PKIX_CRL: &str = "application/pkix-crl";
/// Cache tags for purges, comma-separated (Cloudflare `Cache-Tag`, Akamai renames it).
const CACHE_TAG: header::HeaderName = header::HeaderName::from_static("cache-tag");
/// The same tags space-separated (Fastly `Surrogate-Key`; our VCL feeds them to xkey).
const SURROGATE_KEY: header::HeaderName = header::HeaderName::from_static("surrogate-key");

/// Settings of the public service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The largest `max-age` sent, seconds, whatever nextUpdate allows.
    pub max_age_cap: i64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { max_age_cap: 24 * 3600 }
    }
}

/// What `/readyz` asks: ready (`Ok(None)`), serving but degraded (`Ok(Some(why))`: still
/// 200, so load balancers keep sending traffic), or not ready (`Err(why)`: 503).
pub type Readiness = dyn Fn() -> Result<Option<String>, String> + Send + Sync;

/// Whether this node may answer now: `None`, or why not (a fleet node whose serving lease
/// lapsed, or that an acknowledgement fenced until it catches up).
pub type OutOfService = dyn Fn() -> Option<String> + Send + Sync;

/// The public OCSP service: `GET /{base64}`, `POST /`, `/healthz`, `/readyz`. Its metrics are
/// served on a listener of their own by [`MetricsService`], never on the public one: they name
/// the issuers and show the load.
pub struct OcspService {
    /// A fleet node out of service (see [`OcspService::with_serving`]).
    out_of_service: Option<Box<OutOfService>>,
    extra_metrics: Vec<Box<dyn Fn() -> String + Send + Sync>>,
    readiness: Option<Box<Readiness>>,
    filter: crate::IssuerFilter,
    source: Arc<dyn Source>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: ServiceConfig,
    echo: Option<Echo>,
    crls: Option<Arc<dyn crate::CrlDocs>>,
}

/// What answers requests with nonces for issuers whose nonce policy is `echo`.
struct Echo {
    policies: Arc<ocsp_proto::Policies>,
    live: Arc<crate::LiveSource>,
}

/// What a request came to, before it is turned into HTTP.
enum Outcome {
    Answer(Served),
    Crl(Arc<crate::CrlDoc>),
    Ocsp(ResponseStatus, StatusCode),
    Http(StatusCode, &'static str),
}

impl OcspService {
    /// A service answering for the issuers of `registry` from `source`.
    pub fn new(
        registry: Arc<ocsp_sign::IssuerRegistry>,
        source: Arc<dyn Source>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        config: ServiceConfig,
    ) -> Self {
        let filter = crate::IssuerFilter::new(registry);
        OcspService {
            out_of_service: None,
            extra_metrics: Vec::new(),
            readiness: None,
            filter,
            source,
            clock,
            metrics,
            config,
            echo: None,
            crls: None,
        }
    }

    /// Serves CRLs at their paths (`/crl/...`) from `crls`.
    pub fn with_crls(mut self, crls: Arc<dyn crate::CrlDocs>) -> Self {
        self.crls = Some(crls);
        self
    }

    /// Answers requests that carry a nonce, for issuers whose policy (in `policies`, by the
    /// registered name) is `echo`, with a response signed now by `live` that echoes it
    /// (RFC 8954), never cached; other requests keep to the tiers.
    pub fn with_nonce_policies(mut self, policies: Arc<ocsp_proto::Policies>, live: Arc<crate::LiveSource>) -> Self {
        self.echo = Some(Echo { policies, live });
        self
    }

    /// The issuer's nonce policy says echo, and the request carries a nonce: its extnValue.
    fn echoes<'r>(&self, asked: &'r crate::Asked) -> Option<&'r [u8]> {
        let (echo, value) = (self.echo.as_ref()?, asked.request.nonce.as_deref()?);
        (echo.policies.of(&asked.issuer.name).nonces == ocsp_proto::NoncePolicy::Echo).then_some(value)
    }

    /// While `check` says this node is out of service, it states nothing that a change it may
    /// have missed could contradict: a single certificate's `revoked` (final) is still
    /// answered, anything else gets tryLater, and CRLs 503; nothing of it is cacheable.
    pub fn with_serving(mut self, check: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        self.out_of_service = Some(Box::new(check));
        self
    }

    fn out_of_service(&self) -> Option<String> {
        self.out_of_service.as_ref().and_then(|check| check())
    }

    /// Adds another part's Prometheus text to `/metrics` (the pre-signer's, say).
    pub fn with_metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.extra_metrics.push(Box::new(render));
        self
    }

    /// What `/readyz` checks (the database answers, some issuer is served); `/healthz` only
    /// says the process serves HTTP.
    pub fn with_readiness(
        mut self,
        check: impl Fn() -> Result<Option<String>, String> + Send + Sync + 'static,
    ) -> Self {
        self.readiness = Some(Box::new(check));
        self
    }

    /// The Prometheus text of this service and every part added with `with_metrics`.
    pub fn render_metrics(&self) -> String {
        let mut s = self.metrics.render();
        for extra in &self.extra_metrics {
            s.push_str(&extra());
        }
        s
    }

    async fn ocsp(&self, der: &[u8]) -> Outcome {
        let request = match parse_request(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed request");
                return Outcome::Ocsp(AnswerError::from(e).ocsp_status(), StatusCode::OK);
            }
        };
        let single = request.cert_ids.len() == 1;
        let answered = match self.filter.resolve(request) {
            Err(e) => Err(e),
            Ok(asked) => match (self.echoes(&asked), &self.echo) {
                (Some(value), Some(echo)) => match ocsp_proto::nonce_octets(value) {
                    Ok(_) => echo.live.answer_echo(&asked, value).await,
                    Err(e) => Err(AnswerError::Malformed(e)),
                },
                _ => self.source.answer(&asked).await,
            },
        };
        match answered {
            Ok(resp) if !(single && resp.status.label() == "revoked") && self.out_of_service().is_some() => {
                self.metrics.out_of_service.inc();
                Outcome::Ocsp(ResponseStatus::TryLater, StatusCode::OK)
            }
            Ok(resp) => Outcome::Answer(resp),
            Err(e) => {
                match &e {
                    AnswerError::Internal(_) => tracing::error!(error = %e, "request failed"),
                    _ => tracing::debug!(error = %e, "request refused"),
                }
                Outcome::Ocsp(e.ocsp_status(), StatusCode::OK)
            }
        }
    }

    async fn route(&self, req: Request<Incoming>) -> (Outcome, bool, Option<(String, Option<i64>)>) {
        let is_get = req.method() == Method::GET || req.method() == Method::HEAD;
        let conditional = conditional(&req);
        let outcome = match *req.method() {
            Method::GET | Method::HEAD if req.uri().path().starts_with(crate::CRL_PATH_PREFIX) => {
                match self.crls.as_ref().and_then(|c| c.get(req.uri().path())) {
                    Some(_) if self.out_of_service().is_some() => {
                        Outcome::Http(StatusCode::SERVICE_UNAVAILABLE, "this node is out of service; ask another\n")
                    }
                    // Never served past its nextUpdate (its issuer's CRL signing stopped):
                    // an expired list is no list, and nothing may cache it.
                    Some(doc) if doc.next_update <= self.clock.now() => Outcome::Http(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this CRL expired and has not been signed again; see /readyz\n",
                    ),
                    Some(doc) => Outcome::Crl(doc),
                    None => Outcome::Http(StatusCode::NOT_FOUND, "no such CRL\n"),
                }
            }
            Method::GET | Method::HEAD => match decode_get_path(req.uri().path()) {
                Ok(der) => self.ocsp(&der).await,
                Err(e) => {
                    tracing::debug!(error = %e, "undecodable GET");
                    Outcome::Ocsp(ResponseStatus::MalformedRequest, StatusCode::BAD_REQUEST)
                }
            },
            Method::POST => {
                let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                let media = ct.split(';').next().unwrap_or("").trim();
                // A declared length over the bound is refused at once, not read for 10 s.
                let declared = req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if !media.eq_ignore_ascii_case(OCSP_REQUEST) {
                    Outcome::Ocsp(ResponseStatus::MalformedRequest, StatusCode::UNSUPPORTED_MEDIA_TYPE)
                } else if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
                    Outcome::Ocsp(ResponseStatus::MalformedRequest, StatusCode::PAYLOAD_TOO_LARGE)
                } else {
                    match read_body(req.into_body()).await {
                        Ok(body) => self.ocsp(&body).await,
                        Err(status) => Outcome::Ocsp(ResponseStatus::MalformedRequest, status),
                    }
                }
            }
            _ => Outcome::Http(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n"),
        };
        (outcome, is_get, conditional)
    }

    fn respond(
        &self,
        outcome: &Outcome,
        conditional: Option<(String, Option<i64>)>,
        head: bool,
    ) -> (HttpResponse, &'static str) {
        match outcome {
            Outcome::Answer(resp) => {
                let now = self.clock.now();
                let etag = resp.etag.as_bytes();
                let echo = resp.tier == Tier::Echo;
                let not_modified = !echo
                    && conditional.is_some_and(|(inm, ims)| {
                        if !inm.is_empty() {
                            headers::none_match(&inm, etag)
                        } else {
                            ims.is_some_and(|t| t >= resp.this_update)
                        }
                    });
                let (status, body, label) = if not_modified {
                    (StatusCode::NOT_MODIFIED, Bytes::new(), "not_modified")
                } else {
                    (StatusCode::OK, if head { Bytes::new() } else { resp.der.clone() }, resp.status.label())
                };
                let mut r = hyper::Response::new(Full::new(body));
                *r.status_mut() = status;
                let h = r.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCSP_RESPONSE));
                h.insert(header::LAST_MODIFIED, resp.last_modified.clone());
                h.insert(header::EXPIRES, resp.expires.clone());
                h.insert(header::ETAG, resp.etag.clone());
                if echo {
                    // A nonce answer is for this request alone (RFC 5019 2.2.1).
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
                } else {
                    set(
                        h,
                        header::CACHE_CONTROL,
                        &headers::cache_control(resp.next_update, now, self.config.max_age_cap),
                    );
                }
                h.insert(CACHE_TAG, resp.cache_tag.clone());
                h.insert(SURROGATE_KEY, resp.surrogate_key.clone());
                (r, label)
            }
            Outcome::Crl(doc) => {
                let not_modified = conditional.is_some_and(|(inm, ims)| {
                    if !inm.is_empty() {
                        headers::none_match(&inm, doc.etag.as_bytes())
                    } else {
                        ims.is_some_and(|t| t >= doc.this_update)
                    }
                });
                let (status, body) = if not_modified {
                    (StatusCode::NOT_MODIFIED, Bytes::new())
                } else {
                    (StatusCode::OK, if head { Bytes::new() } else { doc.der.clone() })
                };
                let mut r = hyper::Response::new(Full::new(body));
                *r.status_mut() = status;
                let h = r.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PKIX_CRL));
                h.insert(header::LAST_MODIFIED, doc.last_modified.clone());
                h.insert(header::EXPIRES, doc.expires.clone());
                h.insert(header::ETAG, doc.etag.clone());
                set(
                    h,
                    header::CACHE_CONTROL,
                    &headers::cache_control(doc.next_update, self.clock.now(), self.config.max_age_cap),
                );
                h.insert(CACHE_TAG, doc.cache_tag.clone());
                h.insert(SURROGATE_KEY, doc.surrogate_key.clone());
                (r, if not_modified { "not_modified" } else { "crl" })
            }
            Outcome::Ocsp(status, http_status) => {
                let body = if head { Bytes::new() } else { Bytes::from(error_response(*status)) };
                let mut r = hyper::Response::new(Full::new(body));
                *r.status_mut() = *http_status;
                let h = r.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCSP_RESPONSE));
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
                let label = if http_status.is_success() { status.label() } else { "http_error" };
                (r, label)
            }
            Outcome::Http(status, text) => {
                let mut r = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
                *r.status_mut() = *status;
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
                if *status == StatusCode::METHOD_NOT_ALLOWED {
                    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
                }
                (r, "http_error")
            }
        }
    }
}

fn set(h: &mut http::HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn conditional(req: &Request<Incoming>) -> Option<(String, Option<i64>)> {
    let inm = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let ims =
        req.headers().get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()).and_then(headers::parse_http_date);
    (inm.is_some() || ims.is_some()).then(|| (inm.unwrap_or_default(), ims))
}

async fn read_body(body: Incoming) -> Result<Bytes, StatusCode> {
    let limited = Limited::new(body, MAX_REQUEST_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

impl Handler for OcspService {
    fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> BoxFuture<'static, HttpResponse> {
        Box::pin(async move {
            let start = Instant::now();
            let path = req.uri().path();
            if req.method() == Method::GET {
                match path {
                    "/healthz" => return text(StatusCode::OK, "ok\n".into(), "text/plain"),
                    "/readyz" => {
                        return match self.readiness.as_ref().map_or(Ok(None), |check| check()) {
                            Ok(None) => text(StatusCode::OK, "ready\n".into(), "text/plain"),
                            Ok(Some(why)) => text(StatusCode::OK, format!("degraded: {why}\n"), "text/plain"),
                            Err(why) => {
                                text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"), "text/plain")
                            }
                        }
                    }
                    _ => {}
                }
            }
            let head = req.method() == Method::HEAD;
            let (outcome, is_get, cond) = self.route(req).await;
            let (resp, label) = self.respond(&outcome, cond, head);
            let (tier, age) = match &outcome {
                Outcome::Answer(served) => {
                    let tier = match served.tier {
                        Tier::Memory => 0,
                        Tier::Presigned => 1,
                        Tier::Live | Tier::Echo => 2,
                    };
                    (tier, Some(self.clock.now() - served.produced_at))
                }
                _ => (3, None),
            };
            self.metrics.request(is_get, label, tier, start.elapsed().as_secs_f64(), age);
            resp
        })
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    r
}

/// `GET /metrics` of an [`OcspService`], for a listener apart from the public one (loopback
/// or a monitoring network); anything else is 404.
pub struct MetricsService(pub Arc<OcspService>);

impl Handler for MetricsService {
    fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> BoxFuture<'static, HttpResponse> {
        Box::pin(async move {
            if req.method() == Method::GET && req.uri().path() == "/metrics" {
                text(StatusCode::OK, self.0.render_metrics(), "text/plain; version=0.0.4")
            } else {
                text(StatusCode::NOT_FOUND, "only GET /metrics here\n".into(), "text/plain")
            }
        })
    }
}
