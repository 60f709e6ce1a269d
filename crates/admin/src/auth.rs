use aws_lc_rs::digest::{digest, SHA256};
use std::path::{Path, PathBuf};

/// The admin tokens ocspd accepts: names and SHA-256 hashes, never the tokens themselves.
#[derive(Debug, Clone, Default)]
pub struct AdminAuth {
    tokens: Vec<(String, Vec<u8>)>,
}

fn hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// Where the token files live inside ocspd's data folder.
#[derive(Debug, Clone)]
pub struct TokenFile {
    /// `admin-tokens`: one `name sha256hex` line per accepted token.
    pub hashes: PathBuf,
    /// `admin.token`: the first token in clear, readable by its owner only, for ocspctl.
    pub bootstrap: PathBuf,
}

impl TokenFile {
    /// The token files of data folder `dir`.
    pub fn in_dir(dir: &Path) -> TokenFile {
        TokenFile {
            hashes: dir.join("admin-tokens"),
            bootstrap: dir.join("admin.token"),
        }
    }

    /// Loads the accepted tokens, creating a first one named `admin` when there are none.
    pub fn load_or_create(&self) -> std::io::Result<AdminAuth> {
        if !self.hashes.exists() {
            let mut raw = [0u8; 32];
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| std::io::Error::other("no randomness"))?;
            let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&self.bootstrap, &format!("{token}\n"))?;
            write_private(&self.hashes, &format!("admin {}\n", hex(&hash(&token))))?;
        }
        let text = std::fs::read_to_string(&self.hashes)?;
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(h), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(std::io::Error::other(format!(
                    "{}:{}: expected `name sha256hex`",
                    self.hashes.display(),
                    n + 1
                )));
            };
            let bytes = unhex(h).filter(|b| b.len() == 32).ok_or_else(|| {
                std::io::Error::other(format!(
                    "{}:{}: the hash is not 64 hex digits",
                    self.hashes.display(),
                    n + 1
                ))
            })?;
            tokens.push((name.to_string(), bytes));
        }
        Ok(AdminAuth { tokens })
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl AdminAuth {
    /// Accepts exactly these (name, token) pairs; for tests.
    pub fn from_tokens(tokens: &[(&str, &str)]) -> AdminAuth {
        AdminAuth {
            tokens: tokens
                .iter()
                .map(|(n, t)| (n.to_string(), hash(t)))
                .collect(),
        }
    }

    /// The name of the credential an `Authorization` header carries, if it is accepted.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<&str> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let h = hash(token);
        // Compare against every token in constant time so timing tells nothing.
        let mut found = None;
        for (name, expected) in &self.tokens {
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected, &h).is_ok() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        let auth = AdminAuth::from_tokens(&[("alice", "s3cret"), ("bob", "other")]);
        assert_eq!(auth.authenticate(Some("Bearer s3cret")), Some("alice"));
        assert_eq!(auth.authenticate(Some("Bearer other")), Some("bob"));
        assert_eq!(auth.authenticate(Some("Bearer wrong")), None);
        assert_eq!(auth.authenticate(Some("s3cret")), None);
        assert_eq!(auth.authenticate(None), None);
    }

    #[test]
    fn first_start_writes_a_working_token() {
        let dir = tempfile::tempdir().unwrap();
        let files = TokenFile::in_dir(dir.path());
        let auth = files.load_or_create().unwrap();
        let token = std::fs::read_to_string(&files.bootstrap).unwrap();
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {}", token.trim()))),
            Some("admin")
        );
        // A second start keeps the same token.
        let again = files.load_or_create().unwrap();
        assert_eq!(
            again.authenticate(Some(&format!("Bearer {}", token.trim()))),
            Some("admin")
        );
    }
}
