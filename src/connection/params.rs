//! Taking `sslmode` and `sslrootcert` out of a connection string, which the
//! driver's parser does not know, reading the string exactly as the driver
//! does.

use super::secrets::percent_decode;

/// A TLS parameter the driver does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsParam {
    Mode,
    RootCert,
}

impl TlsParam {
    fn of(key: &str) -> Option<TlsParam> {
        match key {
            "sslmode" => Some(TlsParam::Mode),
            "sslrootcert" => Some(TlsParam::RootCert),
            _ => None,
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string, reading it
/// exactly as the driver's parsers do (so a value swallowed by an empty
/// parameter stays where the driver puts it); the rest is left as written.
/// A string the driver would reject is returned whole, for its error.
pub(super) fn take_tls_params(s: &str) -> (String, Vec<(TlsParam, String)>) {
    let taken = match s
        .strip_prefix("postgres://")
        .or_else(|| s.strip_prefix("postgresql://"))
    {
        Some(rest) => take_from_url(s, s.len() - rest.len()),
        None => take_from_key_value(s),
    };
    taken.unwrap_or_else(|| (s.to_string(), Vec::new()))
}

/// URL form: the query string starts at the first `?` after the user info
/// (everything up to the first `@`, as the driver reads it).
fn take_from_url(s: &str, start: usize) -> Option<(String, Vec<(TlsParam, String)>)> {
    let after_creds = s[start..].find('@').map_or(start, |i| start + i + 1);
    let Some(q) = s[after_creds..].find('?').map(|i| after_creds + i) else {
        return Some((s.to_string(), Vec::new()));
    };
    let mut rest = &s[q + 1..];
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        let (value, next) = match after.find('&') {
            Some(amp) => (&after[..amp], &after[amp + 1..]),
            None => (after, ""),
        };
        match TlsParam::of(&decoded(key)) {
            Some(param) => taken.push((param, decoded(value))),
            None => kept.push(&rest[..eq + 1 + value.len()]),
        }
        rest = next;
    }
    let mut out = s[..q].to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Some((out, taken))
}

fn decoded(s: &str) -> String {
    percent_decode(s).unwrap_or_else(|| s.to_string())
}

/// key=value form, tokenized as the driver does.
fn take_from_key_value(s: &str) -> Option<(String, Vec<(TlsParam, String)>)> {
    let mut it = s.char_indices().peekable();
    let mut out = String::new();
    let mut copied_to = 0;
    let mut taken = Vec::new();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else { break };
        while it
            .next_if(|&(_, c)| !c.is_whitespace() && c != '=')
            .is_some()
        {}
        let key_end = it.peek().map_or(s.len(), |&(i, _)| i);
        if key_end == start {
            // The driver stops at an empty keyword.
            break;
        }
        skip_ws(&mut it);
        it.next_if(|&(_, c)| c == '=')?;
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match it.next()? {
                    (_, '\'') => break,
                    (_, '\\') => value.extend(it.next().map(|(_, c)| c)),
                    (_, c) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|&(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return None;
            }
        }
        let end = it.peek().map_or(s.len(), |&(i, _)| i);
        if let Some(param) = TlsParam::of(&s[start..key_end]) {
            out.push_str(&s[copied_to..start]);
            copied_to = end;
            taken.push((param, value));
        }
    }
    out.push_str(&s[copied_to..]);
    Some((out, taken))
}
