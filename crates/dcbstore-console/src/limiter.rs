//! How often one client may present a token (the login form, `?token=`, a
//! bearer token): a GCRA limiter (governor) keyed by the client's address,
//! IPv6 clients by their /64 (one host owns a whole /64). A request over
//! the quota gets 429 before its token is compared, so a guesser learns
//! nothing from it. Behind a proxy every client is the proxy's address.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Checks between two sweeps of the addresses that are back to a full quota.
const SWEEP_EVERY: u64 = 1024;

/// The token checks of each client address.
pub(crate) struct Limiter {
    per_minute: u32,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl Limiter {
    /// `per_minute` checks a minute per address, all of them at once at most.
    pub(crate) fn new(per_minute: u32) -> Limiter {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter {
            per_minute: n.get(),
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one check for the request's client, or says it is over.
    pub(crate) fn check(&self, extensions: &Extensions) -> Result<(), Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Memory stays bounded by the addresses seen within a minute.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = client_key(extensions);
        self.limiter.check_key(&key).map_err(|_| {
            tracing::warn!(client = %key, "console token checks over the limit");
            Limited {
                per_minute: self.per_minute,
            }
        })
    }
}

/// A client over its quota: 429, with when to try again.
#[derive(Debug)]
pub(crate) struct Limited {
    per_minute: u32,
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let wait = (60 / u64::from(self.per_minute.max(1))).max(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "429 Too Many Requests: at most {} token checks a minute from one address; wait a minute and try again\n",
                self.per_minute
            ),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        response
    }
}

/// The client's address (its /64 for IPv6); unspecified when the router is
/// served without connection info.
fn client_key(extensions: &Extensions) -> IpAddr {
    match extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(addr: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        e
    }

    #[test]
    fn one_address_gets_its_quota_and_others_theirs() {
        let l = Limiter::new(3);
        let a = from("192.0.2.1:1000");
        for _ in 0..3 {
            assert!(l.check(&a).is_ok());
        }
        assert_eq!(l.check(&a).unwrap_err().into_response().status(), 429);
        assert!(l.check(&from("192.0.2.2:1000")).is_ok());
        // One /64 is one client, whatever its interface identifiers.
        let v6 = Limiter::new(1);
        assert!(v6.check(&from("[2001:db8::1]:1")).is_ok());
        assert!(v6.check(&from("[2001:db8::2]:1")).is_err());
        assert!(v6.check(&from("[2001:db8:0:1::1]:1")).is_ok());
    }
}
