//! This process's secrets: the session cookie's value (a digest of the
//! token with a random key) and the CSRF token. Random per process: a
//! restart logs browsers out and voids open forms.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// This process's secrets: the key of the session cookie and the CSRF
/// token. Random per process: a restart logs browsers out.
pub(crate) struct Secrets {
    pub(crate) session: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) csrf: String,
}

impl Secrets {
    pub(crate) fn new(token: Option<&str>) -> Secrets {
        let key = random_hex();
        Secrets {
            session: token.map(|t| digest(&key, t)),
            token: token.map(str::to_owned),
            csrf: random_hex(),
        }
    }

    pub(crate) fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
    }

    pub(crate) fn session_matches(&self, given: &str) -> bool {
        self.session
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(given.as_bytes())))
    }

    /// Whether `form_token` is this process's CSRF token.
    pub(crate) fn csrf_matches(&self, form_token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(form_token.as_bytes()))
    }
}

// 256 random bits from the OS (uuid's v4 draws them from getrandom).
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn digest(key: &str, token: &str) -> String {
    Sha256::digest(format!("{key}\0{token}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_not_the_token() {
        let s = Secrets::new(Some("secret"));
        let session = s.session.clone().unwrap();
        assert!(!session.contains("secret"));
        assert!(s.session_matches(&session));
        assert!(!s.session_matches("secret"));
        assert!(s.token_matches("secret"));
        assert!(!s.token_matches("secreT"));
    }
}
