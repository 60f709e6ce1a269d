use crate::api::ErrorBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Failures of an admin call, as `ocspctl` reports them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// ocspd could not be reached.
    #[error("cannot reach ocspd's admin API at {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// ocspd refused or failed the call.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// ocspd's explanation.
        message: String,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected answer from ocspd: {0}")]
    Decode(String),
}

/// A client of the admin API (HTTP/1.1 over TCP to 127.0.0.1).
#[derive(Debug, Clone)]
pub struct AdminClient {
    authority: String,
    token: String,
}

impl AdminClient {
    /// A client for `url` (`http://host:port`) with bearer `token`.
    pub fn new(url: &str, token: &str) -> Result<AdminClient, ClientError> {
        let authority = url
            .strip_prefix("http://")
            .map(|s| s.trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .ok_or_else(|| ClientError::Connect { url: url.to_string(), reason: "expected http://host:port".into() })?;
        Ok(AdminClient { authority, token: token.trim().to_string() })
    }

    /// Sends one call and decodes the JSON answer.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, ClientError> {
        let url = format!("http://{}{path}", self.authority);
        let connect = |reason: String| ClientError::Connect { url: url.clone(), reason };
        let stream = tokio::net::TcpStream::connect(&self.authority).await.map_err(|e| connect(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| connect(e.to_string()))?;
        tokio::spawn(conn);
        let payload = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| connect(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| connect(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| connect(e.to_string()))?.to_bytes();
        if status != StatusCode::OK && status != StatusCode::CREATED {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Api { status: status.as_u16(), message });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
