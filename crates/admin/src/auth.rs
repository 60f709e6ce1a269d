use aws_lc_rs::digest::{digest, SHA256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

type Tokens = Vec<(String, Vec<u8>, Role)>;

/// What a token may do. Tokens without a role in the file are `staff` (full rights), as
/// before roles existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Everything: issuers, certificates, revocations, holds, pre-signing, reading.
    Staff,
    /// Revoke (single and bulk) and read; nothing that registers, un-revokes or loads keys.
    Revoke,
    /// Only a peer's purge (`POST /v1/purge`): what other ocspd nodes are given.
    Purge,
    /// Only reading: issuers, statuses, the audit record, purge state, export.
    Read,
}

/// What an admin call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permission {
    /// Reading anything.
    Read,
    /// Revoking certificates.
    Revoke,
    /// A peer's purge of the memory tier.
    PeerPurge,
    /// Everything else: issuers, keys, certificates, holds, pre-signing.
    Manage,
}

impl Role {
    /// Parses `staff`, `revoke`, `purge` or `read`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "staff" => Some(Role::Staff),
            "revoke" => Some(Role::Revoke),
            "purge" => Some(Role::Purge),
            "read" => Some(Role::Read),
            _ => None,
        }
    }

    /// The role's name in the token file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Revoke => "revoke",
            Role::Purge => "purge",
            Role::Read => "read",
        }
    }

    /// True when this role may do what `p` names.
    pub fn allows(self, p: Permission) -> bool {
        match self {
            Role::Staff => true,
            Role::Revoke => matches!(p, Permission::Read | Permission::Revoke),
            Role::Purge => p == Permission::PeerPurge,
            Role::Read => p == Permission::Read,
        }
    }
}

/// An accepted credential: its name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The token's name (recorded in the audit record).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// The admin credentials ocspd accepts: named tokens, kept as SHA-256 hashes, never in clear.
///
/// When loaded from a file, the file is read again whenever it changes, so adding or removing
/// a token (`ocspd token add`, or editing the file) takes effect without a restart.
#[derive(Debug, Default)]
pub struct AdminAuth {
    file: Option<PathBuf>,
    state: Mutex<(Option<SystemTime>, Tokens)>,
}

fn hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// Where the token files live inside ocspd's data folder.
#[derive(Debug, Clone)]
pub struct TokenFile {
    /// `admin-tokens`: one `name sha256hex [role]` line per accepted token.
    pub hashes: PathBuf,
    /// `admin.token`: the first token in clear, readable by its owner only, for ocspctl.
    pub bootstrap: PathBuf,
}

fn new_token() -> std::io::Result<String> {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| std::io::Error::other("no randomness"))?;
    Ok(hex::encode(raw))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

impl TokenFile {
    /// The token files of data folder `dir`.
    pub fn in_dir(dir: &Path) -> TokenFile {
        TokenFile { hashes: dir.join("admin-tokens"), bootstrap: dir.join("admin.token") }
    }

    /// Loads the accepted tokens, creating a first one named `admin` when there are none.
    pub fn load_or_create(&self) -> std::io::Result<AdminAuth> {
        if !self.hashes.exists() {
            let token = new_token()?;
            write_private(&self.bootstrap, &format!("{token}\n"), true)?;
            write_private(&self.hashes, &format!("admin {}\n", hex::encode(hash(&token))), true)?;
        }
        let (mtime, tokens) = self.read()?;
        Ok(AdminAuth { file: Some(self.hashes.clone()), state: Mutex::new((mtime, tokens)) })
    }

    /// Adds a token named `name` with full staff rights and returns it (shown once; only its
    /// hash is kept).
    pub fn add(&self, name: &str) -> std::io::Result<String> {
        self.add_with_role(name, Role::Staff)
    }

    /// Adds a token named `name` with `role` and returns it (shown once).
    pub fn add_with_role(&self, name: &str, role: Role) -> std::io::Result<String> {
        if !valid_name(name) {
            return Err(std::io::Error::other(format!("token name {name:?} must be 1 to 64 of A-Z a-z 0-9 - _ . @")));
        }
        let (_, tokens) = if self.hashes.exists() { self.read()? } else { (None, Vec::new()) };
        if tokens.iter().any(|(n, _, _)| n == name) {
            return Err(std::io::Error::other(format!("a token named {name:?} exists already")));
        }
        let token = new_token()?;
        let mut text = if self.hashes.exists() { std::fs::read_to_string(&self.hashes)? } else { String::new() };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{name} {} {}\n", hex::encode(hash(&token)), role.name()));
        let tmp = self.hashes.with_extension("tmp");
        write_private(&tmp, &text, false)?;
        std::fs::rename(&tmp, &self.hashes)?;
        Ok(token)
    }

    fn read(&self) -> std::io::Result<(Option<SystemTime>, Tokens)> {
        let mtime = std::fs::metadata(&self.hashes)?.modified().ok();
        // Ocspd's own file, but an operator may put anything there: a bounded, regular file.
        let text = ocsp_sign::files::read_operator_file(&self.hashes, 16 << 20)?;
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(h), role, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return Err(std::io::Error::other(format!(
                    "{}:{}: expected `name sha256hex [staff|revoke|purge|read]`",
                    self.hashes.display(),
                    n + 1
                )));
            };
            let role = match role {
                None => Role::Staff,
                Some(r) => Role::parse(r).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{}:{}: role {r:?} is not one of staff, revoke, purge, read",
                        self.hashes.display(),
                        n + 1
                    ))
                })?,
            };
            let bytes = hex::decode(h).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                std::io::Error::other(format!("{}:{}: the hash is not 64 hex digits", self.hashes.display(), n + 1))
            })?;
            tokens.push((name.to_string(), bytes, role));
        }
        Ok((mtime, tokens))
    }
}

fn write_private(path: &Path, contents: &str, create_new: bool) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

impl AdminAuth {
    /// Accepts exactly these (name, token) pairs; for tests.
    pub fn from_tokens(tokens: &[(&str, &str)]) -> AdminAuth {
        let t = tokens.iter().map(|(n, t)| (n.to_string(), hash(t), Role::Staff)).collect();
        AdminAuth { file: None, state: Mutex::new((None, t)) }
    }

    fn refresh(&self, state: &mut (Option<SystemTime>, Tokens)) {
        let Some(path) = &self.file else { return };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if mtime == state.0 {
            return;
        }
        let files = TokenFile { hashes: path.clone(), bootstrap: PathBuf::new() };
        match files.read() {
            Ok(fresh) => *state = fresh,
            Err(e) => {
                tracing::warn!(error = %e, "admin token file unreadable; keeping the tokens loaded before")
            }
        }
    }

    /// Accepts exactly these (name, token, role) triples; for tests.
    pub fn from_tokens_with_roles(tokens: &[(&str, &str, Role)]) -> AdminAuth {
        let t = tokens.iter().map(|(n, t, r)| (n.to_string(), hash(t), *r)).collect();
        AdminAuth { file: None, state: Mutex::new((None, t)) }
    }

    /// The name of the credential an `Authorization: Bearer` header carries, if accepted.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<String> {
        self.credential(authorization).map(|c| c.name)
    }

    /// The credential an `Authorization: Bearer` header carries, if accepted.
    pub fn credential(&self, authorization: Option<&str>) -> Option<Credential> {
        // The scheme is case-insensitive (RFC 9110 11.1), then one or more spaces.
        let authorization = authorization?.trim_start();
        let (scheme, token) = authorization.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        let h = hash(token);
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.refresh(&mut state);
        // Compare against every token in constant time so timing tells nothing.
        let mut found = None;
        for (name, expected, role) in &state.1 {
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected, &h).is_ok() {
                found = Some(Credential { name: name.clone(), role: *role });
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
        assert_eq!(auth.authenticate(Some("Bearer s3cret")).as_deref(), Some("alice"));
        assert_eq!(auth.authenticate(Some("Bearer other")).as_deref(), Some("bob"));
        assert_eq!(auth.authenticate(Some("Bearer wrong")), None);
        // The scheme in any case (RFC 9110 11.1); another scheme or none is refused.
        assert_eq!(auth.authenticate(Some("bearer s3cret")).as_deref(), Some("alice"));
        assert_eq!(auth.authenticate(Some("BEARER  s3cret")).as_deref(), Some("alice"));
        assert_eq!(auth.authenticate(Some("Basic s3cret")), None);
        assert_eq!(auth.authenticate(Some("s3cret")), None);
        assert_eq!(auth.authenticate(Some("s3cret")), None);
        assert_eq!(auth.authenticate(None), None);
    }

    #[test]
    fn first_start_writes_a_working_token_and_added_tokens_work_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = TokenFile::in_dir(dir.path());
        let auth = files.load_or_create().unwrap();
        let token = std::fs::read_to_string(&files.bootstrap).unwrap();
        let bearer = |t: &str| format!("Bearer {}", t.trim());
        assert_eq!(auth.authenticate(Some(&bearer(&token))).as_deref(), Some("admin"));
        let again = files.load_or_create().unwrap();
        assert_eq!(again.authenticate(Some(&bearer(&token))).as_deref(), Some("admin"));
        // Make sure the file's mtime moves even on coarse-grained filesystems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let carol = files.add("carol").unwrap();
        assert_eq!(auth.authenticate(Some(&bearer(&carol))).as_deref(), Some("carol"));
        assert!(files.add("carol").is_err());
        assert!(files.add("bad name").is_err());
        assert!(!std::fs::read_to_string(&files.hashes).unwrap().contains(&carol), "only hashes are stored");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let peer = files.add_with_role("peer-b", Role::Purge).unwrap();
        let cred = auth.credential(Some(&bearer(&peer))).unwrap();
        assert_eq!(cred.role, Role::Purge);
        assert!(cred.role.allows(Permission::PeerPurge) && !cred.role.allows(Permission::Revoke));
        assert!(!cred.role.allows(Permission::Read) && !cred.role.allows(Permission::Manage));
        assert_eq!(auth.credential(Some(&bearer(&token))).unwrap().role, Role::Staff, "old lines are staff");
    }

    #[test]
    fn roles_allow_what_they_say() {
        use Permission::*;
        let table = [
            (Role::Staff, [true, true, true, true]),
            (Role::Revoke, [true, true, false, false]),
            (Role::Purge, [false, false, true, false]),
            (Role::Read, [true, false, false, false]),
        ];
        for (role, want) in table {
            let got = [Read, Revoke, PeerPurge, Manage].map(|p| role.allows(p));
            assert_eq!(got, want, "{role:?}");
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
