//! Who may see the console, and which forms may act.
//!
//! With a token, every page and `/metrics` needs `Authorization: Bearer
//! <token>` or the session cookie that the login form sets. The cookie
//! holds a digest of the token with this process's random key, never the
//! token itself; it is `HttpOnly` and `SameSite=Strict`. Every action is a
//! POST that carries this process's CSRF token (a random value only pages
//! of this console show) and, when the browser sends one, an `Origin` of
//! this host.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::html;
use serde::Deserialize;

use super::page;
use super::state::Shared;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "dcbstore_console";

/// Lets a request through when the console needs no token, or when it
/// carries the token or the session cookie. Browsers are sent to the login
/// form, other clients get 401.
pub(crate) async fn require(
    State(console): State<Shared>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    let secrets = &console.secrets;
    if secrets.token.is_none() {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = bearer.is_some_and(|t| secrets.token_matches(t.trim()))
        || jar
            .get(SESSION_COOKIE)
            .is_some_and(|c| secrets.session_matches(c.value()));
    if authorized {
        return next.run(request).await;
    }
    if wants_html(request.headers()) && request.method() == Method::GET {
        let next_path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let to = format!(
            "/login?next={}",
            percent_encoding::utf8_percent_encode(&next_path, percent_encoding::NON_ALPHANUMERIC)
        );
        return Redirect::to(&to).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"dcbstore console\"")],
        "401 Unauthorized: send `Authorization: Bearer <token>` (the token `dcbstore serve` was given)\n",
    )
        .into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The login form's query.
#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    failed: Option<u8>,
}

/// `GET /login`.
pub(crate) async fn login_form(
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> impl IntoResponse {
    let next = safe_next(q.next.as_deref());
    page::shell(
        "Log in",
        "",
        html! {
            h1 { "Log in" }
            @if q.failed.is_some() { p.error { "That token is not this console's. Try again." } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" autocomplete="current-password" autofocus; }
                " "
                button type="submit" { "Log in" }
            }
            p.muted { "The token is the one `dcbstore serve` was started with (--token or DCBSTORE_CONSOLE_TOKEN)." }
        },
    )
}

/// The login form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: sets the session cookie when the token matches.
pub(crate) async fn login(
    State(console): State<Shared>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_owned();
    let secrets = &console.secrets;
    if !secrets.token_matches(&form.token) {
        tracing::warn!("console login with a wrong token");
        let to = format!(
            "/login?failed=1&next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        );
        return Redirect::to(&to).into_response();
    }
    let Some(session) = secrets.session.clone() else {
        return Redirect::to(&next).into_response();
    };
    let cookie = Cookie::build((SESSION_COOKIE, session))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .build();
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

// Only a path of this console: never an open redirect to another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

/// Refuses a POST whose `Origin` (when the browser sends one) is not this
/// host: a second check besides the CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_always_a_local_path() {
        assert_eq!(safe_next(Some("/events?tag=a")), "/events?tag=a");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn a_cross_site_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:7433".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:7433".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
