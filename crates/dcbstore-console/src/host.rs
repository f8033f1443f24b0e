//! Which names the console answers to, and which origins may post to it.
//!
//! DNS rebinding: a page of `evil.example` whose name the attacker points
//! at 127.0.0.1 is, for the browser, of the same origin as the console: it
//! reads what the console answers. Its requests still say `Host:
//! evil.example`, so the console answers 421 to every `Host` that is not
//! `localhost`, an address (the one the connection came in on, when the
//! console's own server runs it), or a name given with
//! [`ConsoleOptions::allowed_host`](super::ConsoleOptions::allowed_host).
//! An address cannot be rebound; a name can. The port is not compared: an
//! SSH tunnel or a container's port mapping changes it.
//!
//! With the `Host` trusted, a POST's `Origin` (when the browser sends one)
//! must be this very host and port: a second check besides the CSRF token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap};
use axum::http::uri::Authority;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::Shared;

/// The local address of the connection a request came in on (set by the
/// console's own server).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub(crate) SocketAddr);

/// Answers 421 to a request for a name this console is not.
pub(crate) async fn check(State(console): State<Shared>, request: Request, next: Next) -> Response {
    let local = request.extensions().get::<LocalAddr>().map(|l| l.0.ip());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(Authority::as_str));
    let ok = host.is_some_and(|h| allowed(h, &console.options.allowed_hosts, local));
    if ok {
        return next.run(request).await;
    }
    tracing::warn!("console request for another host refused (421)");
    (
        StatusCode::MISDIRECTED_REQUEST,
        "421 Misdirected Request: this console answers to localhost, its address, and the names it was \
         given. Open it by one of those, or start it with --allowed-host NAME for the name you use \
         (a proxy's, for example)\n",
    )
        .into_response()
}

/// Whether `host` (a `Host` header: name or address, maybe a port) is one
/// this console answers to.
fn allowed(host: &str, names: &[String], local: Option<IpAddr>) -> bool {
    let Ok(authority) = host.parse::<Authority>() else {
        return false;
    };
    if authority.as_str().contains('@') {
        return false;
    }
    let name = authority.host().trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || names.contains(&name) {
        return true;
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(&name);
    match bare.parse::<IpAddr>() {
        // Served by another server (embedded), the address it listens on
        // is unknown: any address, since none can be rebound.
        Ok(ip) => local.is_none_or(|l| same_ip(l, ip)),
        Err(_) => false,
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    v4(a) == v4(b)
}

/// Refuses a POST whose `Origin` (when the browser sends one) is not this
/// host and port (the `Host` was checked by [`check`]).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (url::Url::parse(origin), host.parse::<Authority>()) else {
        return false;
    };
    let port = host.port_u16().or(match origin.scheme() {
        "https" => Some(443),
        _ => Some(80),
    });
    matches!(origin.scheme(), "http" | "https")
        && origin
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(host.host()))
        && origin.port_or_known_default() == port
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_names_and_addresses_are_answered() {
        let local = Some("127.0.0.1".parse().unwrap());
        let names = vec!["console.internal".to_owned()];
        for ok in [
            "127.0.0.1:7433",
            "127.0.0.1",
            "localhost:7433",
            "LOCALHOST.",
            "console.internal:443",
        ] {
            assert!(allowed(ok, &names, local), "{ok}");
        }
        for refused in [
            "evil.example:7433",
            "evil.example",
            "127.0.0.2:7433",
            "localhost.evil.example",
            "user@localhost",
            "",
            "127.0.0.1:7433/x",
        ] {
            assert!(!allowed(refused, &names, local), "{refused}");
        }
        let given = crate::ConsoleOptions::new()
            .allowed_host("Proxy.Example:8443")
            .allowed_host("[2001:db8::1]");
        assert!(allowed("proxy.example", &given.allowed_hosts, local));
        assert!(allowed("[2001:db8::1]:7433", &given.allowed_hosts, local));
        let v6 = Some("::1".parse().unwrap());
        assert!(allowed("[::1]:7433", &[], v6));
        assert!(!allowed("[::2]:7433", &[], v6));
        assert!(allowed("192.0.2.1:80", &[], None), "embedded: any address");
        assert!(!allowed("evil.example", &[], None));
    }

    #[test]
    fn a_cross_site_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:7433".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:7433".parse().unwrap());
        assert!(same_origin(&h));
        for evil in [
            "http://evil.example",
            "http://127.0.0.1:7434",
            "null",
            "http://127.0.0.1:7433.evil.example",
            "file://127.0.0.1:7433",
        ] {
            h.insert(header::ORIGIN, evil.parse().unwrap());
            assert!(!same_origin(&h), "{evil}");
        }
    }
}
