//! Who may connect: users from an auth file and/or the environment, never from the
//! command line (it shows in `ps` and shell history).
//!
//! Auth file (YAML), one entry per user, the password as the hex SHA-256 of its UTF-8
//! bytes (`printf %s 'secret' | sha256sum`):
//!
//! ```yaml
//! users:
//!   - name: analyst
//!     password_sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b
//! ```
//!
//! Environment: `CRMCUBE_SERVE_USER` (default `crmcube`) and `CRMCUBE_SERVE_PASSWORD` add
//! one more user.

use crmcube_model::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Environment variable naming the user whose password is in [`PASSWORD_ENV`].
pub const USER_ENV: &str = "CRMCUBE_SERVE_USER";
/// Environment variable with a password (for the user in [`USER_ENV`]).
pub const PASSWORD_ENV: &str = "CRMCUBE_SERVE_PASSWORD";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    users: Vec<UserEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password_sha256: String,
}

/// The users allowed in, by name, with the SHA-256 of their password.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, [u8; 32]>,
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

fn parse_hex(file: &Path, name: &str, hex: &str) -> Result<[u8; 32]> {
    let bad = || Error::Schema {
        file: file.display().to_string(),
        key: format!("users.{name}.password_sha256"),
        message: "expected 64 hex digits (printf %s PASSWORD | sha256sum)".into(),
    };
    let hex = hex.trim();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl Users {
    /// Users from `file` (if given) and from the environment.
    pub fn load(file: Option<&Path>) -> Result<Users> {
        let mut users = Users::default();
        if let Some(f) = file {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            let parsed: AuthFile = serde_yaml::from_str(&text).map_err(|e| Error::Schema {
                file: f.display().to_string(),
                key: "users".into(),
                message: e.to_string(),
            })?;
            for u in parsed.users {
                let hash = parse_hex(f, &u.name, &u.password_sha256)?;
                users.by_name.insert(u.name, hash);
            }
        }
        if let Ok(password) = std::env::var(PASSWORD_ENV) {
            if password.is_empty() {
                return Err(Error::Usage(format!("{PASSWORD_ENV} is set but empty")));
            }
            let name = std::env::var(USER_ENV).unwrap_or_else(|_| "crmcube".into());
            users.by_name.insert(name, digest(password.as_bytes()));
        }
        Ok(users)
    }

    /// A single user (for tests and embedding).
    pub fn single(name: &str, password: &str) -> Users {
        let mut users = Users::default();
        users
            .by_name
            .insert(name.to_string(), digest(password.as_bytes()));
        users
    }

    /// No users: nobody can log in.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether `password` is `name`'s (compared in constant time).
    pub fn check(&self, name: &str, password: &str) -> bool {
        let given = digest(password.as_bytes());
        match self.by_name.get(name) {
            Some(want) => {
                want.iter()
                    .zip(given.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
            None => false,
        }
    }
}

/// A fresh random session token (hex).
pub(crate) fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Usage(format!("no randomness for session tokens: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_against_their_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("users.yaml");
        // sha256("secret")
        std::fs::write(
            &f,
            "users:\n  - name: analyst\n    password_sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n",
        )
        .unwrap();
        let users = Users::load(Some(&f)).unwrap();
        assert!(users.check("analyst", "secret"));
        assert!(!users.check("analyst", "Secret"));
        assert!(!users.check("nobody", "secret"));
        std::fs::write(&f, "users:\n  - name: a\n    password_sha256: 12ab\n").unwrap();
        let e = Users::load(Some(&f)).unwrap_err().to_string();
        assert!(
            e.contains("users.a.password_sha256") && e.contains("64 hex"),
            "{e}"
        );
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token().unwrap(), new_token().unwrap());
        assert_eq!(new_token().unwrap().len(), 64);
    }
}
