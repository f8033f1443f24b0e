//! Who may see the console, and which forms may act.
//!
//! Every page and `/metrics` needs the token: the configured one, or
//! without one (on loopback) a random one made up at start, which `dcbstore
//! serve` prints once on stderr as `http://127.0.0.1:7433/?token=...` (as
//! Jupyter does). A client shows it as `Authorization: Bearer <token>`, in
//! the login form, or once in the URL's `token` parameter, which is
//! exchanged for the session cookie and taken out of the URL by a redirect.
//!
//! The session cookie is `HttpOnly`, `SameSite=Strict`, has a `Max-Age`,
//! and holds an expiry signed with this process's key, never the token
//! ([`secrets`](super::secrets)); the server refuses it once expired. Token
//! checks are rate limited per client address ([`limiter`](super::limiter)).
//! After login the browser goes back to `next`, a path of this console
//! only: `next` is resolved as a browser would (tabs and newlines dropped,
//! backslashes as slashes) and refused unless it stays on this origin.
//! Every action is a POST that carries this process's CSRF token and, when
//! the browser sends one, an `Origin` of this host ([`host`](super::host)).

use axum::extract::{FromRequest, Request, State};
use axum::http::header::{self, HeaderMap};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::html;
use serde::Deserialize;

use super::host::same_origin;
use super::page;
use super::state::Shared;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "dcbstore_console";

/// Lets a request through when the console needs no token, or when it
/// carries the session cookie, the token as a bearer, or the token in the
/// URL (then it sets the cookie and redirects to the URL without it).
/// Browsers are sent to the login form, other clients get 401.
pub(crate) async fn require(
    State(console): State<Shared>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    let secrets = &console.secrets;
    if !secrets.required() {
        return next.run(request).await;
    }
    if let Some(given) = url_token(&request) {
        if let Err(limited) = console.limiter.check(request.extensions()) {
            return limited.into_response();
        }
        if secrets.token_matches(&given) {
            let to = without_token(&request);
            return (jar.add(session_cookie(&console)), Redirect::to(&to)).into_response();
        }
        tracing::warn!("console URL with a wrong token");
        return unauthorized(&request, "The token in that URL is not this console's.");
    }
    if jar
        .get(SESSION_COOKIE)
        .is_some_and(|c| secrets.session_matches(c.value()))
    {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        if let Err(limited) = console.limiter.check(request.extensions()) {
            return limited.into_response();
        }
        if secrets.token_matches(given.trim()) {
            return next.run(request).await;
        }
    }
    unauthorized(&request, "")
}

/// 401 for a program, the login form (with `next`) for a browser's GET.
fn unauthorized(request: &Request, why: &str) -> Response {
    if wants_html(request.headers()) && request.method() == Method::GET {
        let next_path = without_token(request);
        let failed = if why.is_empty() { "" } else { "failed=1&" };
        let to = format!(
            "/login?{failed}next={}",
            percent_encoding::utf8_percent_encode(&next_path, percent_encoding::NON_ALPHANUMERIC)
        );
        return Redirect::to(&to).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"dcbstore console\"")],
        "401 Unauthorized: send `Authorization: Bearer <token>` (the token `dcbstore serve` was given, \
         or the one in the URL it printed at start)\n",
    )
        .into_response()
}

/// The `token` parameter of the request's URL.
fn url_token(request: &Request) -> Option<String> {
    form_urlencoded::parse(request.uri().query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The request's path and query without its `token` parameters.
fn without_token(request: &Request) -> String {
    let path = request.uri().path();
    let rest: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "token")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let target = if rest.is_empty() {
        path.to_owned()
    } else {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish();
        format!("{path}?{q}")
    };
    safe_next(Some(&target))
}

fn session_cookie(console: &Shared) -> Cookie<'static> {
    let secrets = &console.secrets;
    let max_age = i64::try_from(secrets.lifetime().as_secs()).unwrap_or(i64::MAX);
    Cookie::build((SESSION_COOKIE, secrets.new_session()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
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
    State(console): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> impl IntoResponse {
    let next = safe_next(q.next.as_deref());
    let generated = console.secrets.generated;
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
            @if generated {
                p.muted { "This console was started without a token: open the URL `dcbstore serve` printed at start (it carries a random token made up for this run), or paste that token here." }
            } @else {
                p.muted { "The token is the one `dcbstore serve` was started with (--token-file, DCBSTORE_CONSOLE_TOKEN or --token)." }
            }
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
    request: Request,
) -> Response {
    if !same_origin(request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "403 Forbidden: this login came from another site's page; open the console's own login page\n",
        )
            .into_response();
    }
    if let Err(limited) = console.limiter.check(request.extensions()) {
        return limited.into_response();
    }
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &()).await else {
        return (
            StatusCode::BAD_REQUEST,
            "400 Bad Request: post the login form's fields `token` and `next`\n",
        )
            .into_response();
    };
    let next = safe_next(form.next.as_deref());
    let secrets = &console.secrets;
    if !secrets.required() {
        return Redirect::to(&next).into_response();
    }
    if !secrets.token_matches(&form.token) {
        tracing::warn!("console login with a wrong token");
        let to = format!(
            "/login?failed=1&next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        );
        return Redirect::to(&to).into_response();
    }
    (jar.add(session_cookie(&console)), Redirect::to(&next)).into_response()
}

/// `next` as a path (and query) of this console, `/` when it would leave
/// it. Resolved against this origin as a browser resolves a `Location`
/// (WHATWG URL parsing: tabs and newlines dropped, `\` as `/`), so what
/// is checked is what the browser would follow; the result is that URL's
/// own serialization (percent-encoded, a valid header value).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    const BASE: &str = "http://console.invalid/";
    let Some(n) = next.filter(|n| n.starts_with('/')) else {
        return "/".to_owned();
    };
    let (Ok(base), true) = (url::Url::parse(BASE), !n.contains('\\')) else {
        return "/".to_owned();
    };
    match base.join(n) {
        Ok(u) if u.origin() == base.origin() && !u.path().starts_with("//") => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_always_a_local_path() {
        assert_eq!(safe_next(Some("/events?tag=a")), "/events?tag=a");
        assert_eq!(safe_next(Some("/events/1")), "/events/1");
        for evil in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r\n/evil.example/",
            "/ /evil.example/",
            "/.//evil.example/",
            "/x/..//evil.example/",
            "\t//evil.example/",
            "javascript:alert(1)",
        ] {
            let safe = safe_next(Some(evil));
            assert!(
                safe.starts_with('/') && !safe.starts_with("//"),
                "{evil:?} -> {safe:?}"
            );
            let followed = url::Url::parse("http://127.0.0.1:7433/")
                .unwrap()
                .join(&safe)
                .unwrap();
            assert_eq!(
                followed.host_str(),
                Some("127.0.0.1"),
                "{evil:?} -> {safe:?}"
            );
        }
        assert_eq!(safe_next(None), "/");
    }
}
