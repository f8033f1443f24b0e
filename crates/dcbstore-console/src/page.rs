//! The page shell every page renders in, the security headers of every
//! response, and the static assets (one stylesheet, one script).
//!
//! Every value reaches HTML through maud's `(...)` splices, which escape
//! `& < >` and `"` (maud always writes attributes in double quotes, so a
//! single quote cannot end one); nothing a user or the log controls is ever
//! spliced with `PreEscaped`.

use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// The Content-Security-Policy of every response: no inline script or
/// style, no other origin, no framing. A value that
/// escaped escaping still could not run.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const LIVE_JS: &str = include_str!("assets/live.js");

/// The sections of the navigation, with the path each one lives at.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/events", "Events"),
    ("/projections", "Projections"),
    ("/dead-letters", "Dead letters"),
    ("/schema", "Schema"),
];

/// A whole page: `title`, the navigation with `active` marked, `body`.
pub(crate) fn shell(title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dcbstore" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    a.brand href="/" { "dcbstore" }
                    nav {
                        @for (path, name) in NAV {
                            @if *path == active {
                                a.active href=(path) aria-current="page" { (name) }
                            } @else {
                                a href=(path) { (name) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Adds the security headers to every response.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // same-origin, not no-referrer: with no-referrer browsers send
    // `Origin: null` on form posts, and the actions check the origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages show the live log: a back button must not show a stale copy.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `/assets/console.css`.
pub(crate) async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
}

/// `/assets/live.js`: the live mode of the events page.
pub(crate) async fn live_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        LIVE_JS,
    )
}

/// A count with thousands separators (`1,234,567`).
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in seconds, short (`0.4 s`, `12 s`, `3 min`, `5 h`, `2 d`).
pub(crate) fn seconds(s: f64) -> String {
    match s {
        s if s < 10.0 => format!("{s:.1} s"),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.0} h", s / 3600.0),
        s => format!("{:.0} d", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(10_000_000), "10,000,000");
    }

    #[test]
    fn every_spliced_value_is_escaped() {
        let evil = r#"<script>alert("x")</script>" onmouseover="x"#;
        let page = shell(evil, "", html! { p title=(evil) { (evil) } }).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains(r#"" onmouseover=""#), "{page}");
        assert!(
            page.contains(r#"title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot; onmouseover=&quot;x""#),
            "{page}"
        );
    }
}
