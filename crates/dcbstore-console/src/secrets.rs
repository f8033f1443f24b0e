//! This process's secrets: the token (configured, or made up at start when
//! none was), the key that signs session cookies, and the CSRF token. All
//! but a configured token are random per process: a restart logs browsers
//! out and voids open forms.
//!
//! A session cookie is `EXPIRY.MAC`: the Unix second it ends and an
//! HMAC-SHA256 of it under this process's key. It holds no token, cannot be
//! forged or extended without the key, and the server refuses it after its
//! expiry whatever the browser keeps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// This process's secrets.
pub(crate) struct Secrets {
    /// The token pages need: the configured one, or the generated one.
    token: Option<String>,
    /// Whether `token` was made up here (token-less mode).
    pub(crate) generated: bool,
    key: [u8; 32],
    pub(crate) csrf: String,
    lifetime: Duration,
}

impl Secrets {
    /// With `token`, or a random one when `generate`; with neither the
    /// console needs no token.
    pub(crate) fn new(token: Option<&str>, generate: bool, lifetime: Duration) -> Secrets {
        let generated = token.is_none() && generate;
        let token = match token {
            Some(t) => Some(t.to_owned()),
            None if generate => Some(random_hex()),
            None => None,
        };
        // 244 random bits (two v4 UUIDs, from getrandom).
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Secrets {
            token,
            generated,
            key,
            csrf: random_hex(),
            lifetime,
        }
    }

    /// Whether pages need the token.
    pub(crate) fn required(&self) -> bool {
        self.token.is_some()
    }

    /// The generated token, for the URL printed at start.
    pub(crate) fn generated_token(&self) -> Option<&str> {
        self.token.as_deref().filter(|_| self.generated)
    }

    pub(crate) fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
    }

    /// How long a session lasts.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session's cookie value, valid for the lifetime from now.
    pub(crate) fn new_session(&self) -> String {
        let expiry = now_secs().saturating_add(self.lifetime.as_secs());
        format!("{expiry}.{}", self.mac(expiry))
    }

    /// Whether `given` is a session cookie of this process that has not
    /// expired.
    pub(crate) fn session_matches(&self, given: &str) -> bool {
        let Some((expiry, mac)) = given.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        let now = now_secs();
        // A signed expiry beyond the lifetime cannot come from this
        // process (its clock went back at most): refuse it too.
        let live = expiry > now && expiry <= now.saturating_add(self.lifetime.as_secs());
        let signed = bool::from(self.mac(expiry).as_bytes().ct_eq(mac.as_bytes()));
        live && signed
    }

    /// Whether `form_token` is this process's CSRF token.
    pub(crate) fn csrf_matches(&self, form_token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(form_token.as_bytes()))
    }

    fn mac(&self, expiry: u64) -> String {
        // A 32-byte key: HMAC accepts any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"dcbstore console session\0");
        mac.update(expiry.to_string().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// 244 random bits from the OS (uuid's v4 draws them from getrandom), as hex.
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_not_the_token_and_is_signed() {
        let s = Secrets::new(Some("secret"), true, Duration::from_secs(60));
        let session = s.new_session();
        assert!(!session.contains("secret"));
        assert!(s.session_matches(&session));
        assert!(!s.session_matches("secret"));
        assert!(s.token_matches("secret"));
        assert!(!s.token_matches("secreT"));
        assert!(s.generated_token().is_none());
        // Another expiry with the same MAC is refused: it is signed.
        let (expiry, mac) = session.split_once('.').unwrap();
        let later: u64 = expiry.parse::<u64>().unwrap() - 1;
        assert!(!s.session_matches(&format!("{later}.{mac}")));
        // Another process's key does not sign this one's sessions.
        let other = Secrets::new(Some("secret"), true, Duration::from_secs(60));
        assert!(!other.session_matches(&session));
    }

    #[test]
    fn an_expired_session_is_refused() {
        let s = Secrets::new(Some("secret"), true, Duration::from_secs(60));
        let past = now_secs() - 1;
        assert!(!s.session_matches(&format!("{past}.{}", s.mac(past))));
        let far = now_secs() + 3600;
        assert!(
            !s.session_matches(&format!("{far}.{}", s.mac(far))),
            "beyond the lifetime"
        );
    }

    #[test]
    fn without_a_token_one_is_made_up_unless_auth_is_off() {
        let s = Secrets::new(None, true, Duration::from_secs(60));
        let t = s.generated_token().unwrap().to_owned();
        assert_eq!(t.len(), 64);
        assert!(s.required() && s.token_matches(&t));
        assert!(!Secrets::new(None, false, Duration::from_secs(60)).required());
    }
}
