//! The NATS servers of a transport: the URL list parsed, the credentials
//! taken out of the URLs (handed to the client as options, so that neither
//! its logs nor our errors ever show them), and a form safe to print.

use async_nats::ServerAddr;
use percent_encoding::percent_decode_str;

/// Credentials given in the URLs (`nats://user:password@host`,
/// `nats://token@host`).
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Credentials {
    None,
    Token(String),
    UserPassword(String, String),
}

/// The servers, without credentials, and the credentials.
pub(super) struct Servers {
    pub(super) addrs: Vec<ServerAddr>,
    pub(super) credentials: Credentials,
}

/// Parses `urls` (one URL, or several separated by commas). The error says
/// which URL (by its place in the list) is wrong and why, never what it
/// holds.
pub(super) fn parse(urls: &str) -> Result<Servers, String> {
    let mut addrs = Vec::new();
    let mut credentials = Credentials::None;
    for (n, part) in urls.split(',').map(str::trim).enumerate() {
        let addr: ServerAddr = part.parse().map_err(|e: std::io::Error| {
            format!(
                "NATS server URL {} of {}: {e} (expected nats://[user:password@]host[:port])",
                n + 1,
                urls.split(',').count()
            )
        })?;
        let given = match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => {
                Credentials::UserPassword(decoded(user), decoded(password))
            }
            (Some(token), None) => Credentials::Token(decoded(token)),
            _ => Credentials::None,
        };
        if given != Credentials::None {
            if credentials != Credentials::None && credentials != given {
                return Err(
                    "the NATS server URLs carry different credentials: the client has one set; give the same in each URL (or in one)".into(),
                );
            }
            credentials = given;
        }
        addrs.push(without_credentials(addr));
    }
    if addrs.is_empty() {
        return Err("no NATS server URL given".into());
    }
    Ok(Servers { addrs, credentials })
}

/// `urls` fit for logs, errors and `Debug`: each URL without its user,
/// password and query; one that does not parse as `<unparsable URL>`.
pub(super) fn redacted(urls: &str) -> String {
    urls.split(',')
        .map(str::trim)
        .map(|part| match part.parse::<ServerAddr>() {
            Ok(addr) => {
                let mut url = without_credentials(addr).into_inner();
                url.set_query(None);
                url.to_string()
            }
            Err(_) => "<unparsable URL>".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn without_credentials(addr: ServerAddr) -> ServerAddr {
    let mut url = addr.into_inner();
    // Both succeed on a URL with a host, which every ServerAddr has.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    match ServerAddr::from_url(url) {
        Ok(addr) => addr,
        Err(_) => unreachable!("the scheme was valid a moment ago"),
    }
}

/// A URL's user or password, percent-decoded as URLs encode them.
fn decoded(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_urls() {
        let s = parse("nats://al%40ice:p%3Ass@a:4222, nats://b:4223").unwrap();
        assert!(s.credentials == Credentials::UserPassword("al@ice".into(), "p:ss".into()));
        let shown: Vec<String> = s.addrs.iter().map(|a| format!("{a:?}")).collect();
        assert!(!shown.concat().contains("p%3Ass"), "{shown:?}");
        assert_eq!(s.addrs.len(), 2);
        let t = parse("nats://s3cr3t-token@h").unwrap();
        assert!(t.credentials == Credentials::Token("s3cr3t-token".into()));
        assert!(parse("nats://u:p@a,nats://u:q@b").is_err());
        let e = parse("nats://u:hunter2@h:99999").err().unwrap();
        assert!(!e.contains("hunter2"), "{e}");
        let shown = redacted("nats://u:hunter2@h:4222?token=x,nats://u:hunter2@h:99999");
        assert!(
            !shown.contains("hunter2") && !shown.contains("token"),
            "{shown}"
        );
    }
}
