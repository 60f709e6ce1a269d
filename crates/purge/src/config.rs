//! Purge targets, read from a TOML file (`--purge-config`). Checked whole at start: every
//! problem is reported, naming the target and the field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The purge configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeConfig {
    /// The deadline of one purge attempt, whole (connect, request, answer and its body),
    /// seconds; default 10.
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// Where purges go.
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetConfig>,
}

/// How Varnish is told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarnishMode {
    /// `BAN` with the tags in `Ocsp-Purge-Tags`; the VCL bans objects whose `Surrogate-Key`
    /// holds one of them. Needs nothing but stock Varnish.
    #[default]
    Ban,
    /// `PURGE` with the tags in `xkey-purge` (vmod-xkey, from varnish-modules): objects are
    /// found through the xkey index instead of the ban list.
    Xkey,
}

/// One purge target.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TargetConfig {
    /// A Varnish edge cache running deploy/varnish/ocspd.vcl.
    Varnish {
        /// Unique name (metrics label, cursor key).
        name: String,
        /// Where Varnish listens, e.g. `http://127.0.0.1:6081/`.
        url: String,
        /// ban or xkey.
        #[serde(default)]
        mode: VarnishMode,
        /// Tags per request.
        #[serde(default)]
        max_tags: Option<usize>,
        /// Bytes of tags (joined by one space) per request: the `Ocsp-Purge-Tags` or
        /// `xkey-purge` header must stay under Varnish's `http_req_hdr_len` (8 KiB by default).
        #[serde(default)]
        max_bytes: Option<usize>,
    },
    /// Any HTTP purge API (Fastly, Cloudflare, Akamai, an in-house one), by template.
    Http {
        /// Unique name.
        name: String,
        /// Method, default POST.
        #[serde(default = "default_method")]
        method: String,
        /// URL template.
        url: String,
        /// Header templates.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Body template.
        #[serde(default)]
        body: String,
        /// Tags per request.
        #[serde(default)]
        max_tags: Option<usize>,
        /// Bytes of tags (joined by one separator) per request, for APIs that bound a header,
        /// URL or body.
        #[serde(default)]
        max_bytes: Option<usize>,
    },
    /// Another ocspd: its admin API evicts its memory tier.
    Peer {
        /// Unique name.
        name: String,
        /// The peer's admin API, e.g. `http://10.0.0.2:8081`.
        url: String,
        /// A file holding an admin token of the peer.
        token_file: PathBuf,
    },
}

fn default_method() -> String {
    "POST".into()
}

/// Tags per purge request unless a target says otherwise.
pub const DEFAULT_MAX_TAGS: usize = 200;
/// Bytes of tags per purge request unless a target says otherwise: half of Varnish's default
/// `http_req_hdr_len` (8 KiB), which bounds one header line, name included.
pub const DEFAULT_MAX_BYTES: usize = 4096;
/// The smallest `max_bytes` accepted: one tag of a 20-byte serial is about 80 bytes.
pub const MIN_MAX_BYTES: usize = 256;

impl TargetConfig {
    /// (tags, bytes of tags) one request may carry. Peers take one event per request.
    pub fn limits(&self) -> (usize, usize) {
        match self {
            TargetConfig::Varnish { max_tags, max_bytes, .. } | TargetConfig::Http { max_tags, max_bytes, .. } => {
                (max_tags.unwrap_or(DEFAULT_MAX_TAGS).max(1), max_bytes.unwrap_or(DEFAULT_MAX_BYTES).max(MIN_MAX_BYTES))
            }
            TargetConfig::Peer { .. } => (usize::MAX, usize::MAX),
        }
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        match self {
            TargetConfig::Varnish { name, .. } | TargetConfig::Http { name, .. } | TargetConfig::Peer { name, .. } => {
                name
            }
        }
    }

    /// The kind, as metrics and `ocspctl purge status` show it.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Varnish { mode: VarnishMode::Ban, .. } => "varnish-ban",
            TargetConfig::Varnish { mode: VarnishMode::Xkey, .. } => "varnish-xkey",
            TargetConfig::Http { .. } => "http",
            TargetConfig::Peer { .. } => "peer",
        }
    }
}

/// The placeholders a template may hold.
pub const PLACEHOLDERS: [&str; 4] = ["{tags}", "{tags_comma}", "{tags_json}", "{count}"];

/// Fills a template: tags space-separated, comma-separated, as a JSON array, their count, and
/// `{env:NAME}` from the environment (so API keys stay out of the file).
pub fn fill(template: &str, tags: &[String]) -> Result<String, String> {
    let json = serde_json::to_string(tags).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(template.len() + tags.len() * 48);
    let mut rest = template;
    // A placeholder is `{` name `}` with name of letters, digits, '_' and ':'; any other brace
    // is literal, so JSON bodies need no escaping.
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
        if len == 0 || !after[len..].starts_with('}') {
            out.push('{');
            rest = after;
            continue;
        }
        let name = &after[..len];
        match name {
            "tags" => out.push_str(&tags.join(" ")),
            "tags_comma" => out.push_str(&tags.join(",")),
            "tags_json" => out.push_str(&json),
            "count" => out.push_str(&tags.len().to_string()),
            _ if name.starts_with("env:") => {
                let var = &name[4..];
                out.push_str(&std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?);
            }
            _ => {
                return Err(format!(
                    "unknown placeholder {{{name}}} in {template:?}; use {}, or {{env:NAME}}",
                    PLACEHOLDERS.join(", ")
                ))
            }
        }
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl PurgeConfig {
    /// The deadline of one purge attempt.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.timeout_seconds.unwrap_or(10.0).clamp(0.1, 300.0))
    }

    /// Parses and checks the text of a purge file (`name` is used in messages). Every problem
    /// is reported.
    pub fn parse(name: &str, text: &str) -> Result<PurgeConfig, Vec<String>> {
        let config: PurgeConfig = toml::from_str(text).map_err(|e| vec![format!("{name}: {e}")])?;
        config.check().map_err(|problems| problems.into_iter().map(|p| format!("{name}: {p}")).collect::<Vec<_>>())?;
        Ok(config)
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<PurgeConfig, Vec<String>> {
        let text = ocsp_sign::files::read_operator_file(path, ocsp_sign::files::MAX_OPERATOR_FILE)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        PurgeConfig::parse(&path.display().to_string(), &text)
    }

    /// Every problem of the configuration.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.timeout_seconds.is_some_and(|t| !(0.1..=300.0).contains(&t)) {
            problems.push("timeout_seconds must be between 0.1 and 300".to_string());
        }
        let mut names = std::collections::HashSet::new();
        let sample = vec!["ocsp-0000000000000000".to_string()];
        for t in &self.targets {
            let name = t.name();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                problems.push(format!("target name {name:?}: use letters, digits, '-', '_' and '.'"));
            }
            if !names.insert(name.to_string()) {
                problems.push(format!("target name {name:?} is used twice"));
            }
            let url = match t {
                TargetConfig::Varnish { url, .. } | TargetConfig::Peer { url, .. } => url.clone(),
                TargetConfig::Http { url, .. } => match fill(url, &sample) {
                    Ok(u) => u,
                    Err(e) => {
                        problems.push(format!("target {name:?} url: {e}"));
                        continue;
                    }
                },
            };
            match url.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some() => {}
                _ => problems.push(format!("target {name:?}: url {url:?} is not an http:// or https:// URL")),
            }
            if let TargetConfig::Varnish { max_tags, max_bytes, .. } | TargetConfig::Http { max_tags, max_bytes, .. } =
                t
            {
                if *max_tags == Some(0) {
                    problems.push(format!("target {name:?}: max_tags must be at least 1"));
                }
                if max_bytes.is_some_and(|b| b < MIN_MAX_BYTES) {
                    problems.push(format!("target {name:?}: max_bytes must be at least {MIN_MAX_BYTES}"));
                }
            }
            match t {
                TargetConfig::Http { method, headers, body, .. } => {
                    if method.parse::<http::Method>().is_err() {
                        problems.push(format!("target {name:?}: method {method:?} is not an HTTP method"));
                    }
                    for (k, v) in headers {
                        if k.parse::<http::HeaderName>().is_err() {
                            problems.push(format!("target {name:?}: header name {k:?} is not valid"));
                        }
                        if let Err(e) = fill(v, &sample) {
                            problems.push(format!("target {name:?} header {k}: {e}"));
                        }
                    }
                    if let Err(e) = fill(body, &sample) {
                        problems.push(format!("target {name:?} body: {e}"));
                    }
                }
                TargetConfig::Peer { token_file, .. } => {
                    if let Err(e) =
                        ocsp_sign::files::read_operator_file(token_file, ocsp_sign::files::MAX_OPERATOR_FILE)
                    {
                        problems.push(format!("target {name:?}: token_file {}: {e}", token_file.display()));
                    }
                }
                TargetConfig::Varnish { .. } => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
