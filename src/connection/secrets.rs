//! The secrets of a connection string, and keeping them out of every text
//! shown.

/// The password-like parts of a raw connection string (`password=...`
/// values and a URL's `user:password@`), to scrub from any text shown.
#[must_use]
pub fn secrets(database_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = database_url;
    while let Some(i) = rest.find("password") {
        rest = &rest[i + "password".len()..];
        let value = rest.trim_start().strip_prefix('=').map(str::trim_start);
        if let Some(v) = value {
            let v = match v.strip_prefix('\'') {
                Some(q) => q.split('\'').next().unwrap_or(q),
                None => v
                    .split(|c: char| c.is_whitespace() || c == '&')
                    .next()
                    .unwrap_or(v),
            };
            out.push(v.to_string());
        }
    }
    if let Some((_, after_scheme)) = database_url.split_once("://") {
        let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, pw)) = userinfo.split_once(':') {
                out.push(pw.to_string());
            }
        }
    }
    let decoded: Vec<String> = out.iter().filter_map(|s| percent_decode(s)).collect();
    out.extend(decoded);
    out.retain(|s| !s.is_empty());
    out
}

/// `s` with its `%XX` escapes decoded, when it has any and the result is
/// UTF-8 (a password or a parameter as the driver reads it).
pub(super) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    (decoded != s).then(|| decoded.into_owned())
}

/// Replaces every occurrence of each secret in `text` with `***`.
#[must_use]
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_in_every_form() {
        assert_eq!(secrets("host=h password=s3cr3t user=u"), ["s3cr3t"]);
        assert_eq!(secrets("host=h password = 'a b c' user=u"), ["a b c"]);
        assert_eq!(secrets("postgres://u:p%40ss@h:5432/db"), ["p%40ss", "p@ss"]);
        assert_eq!(secrets("postgres://h/db?password=x1&user=u"), ["x1"]);
        assert!(secrets("postgres://u@h/db").is_empty());
        assert_eq!(
            secrets("postgres://u:p%B\u{fc}@h/db"),
            ["p%B\u{fc}"],
            "no panic on non-ASCII"
        );
        let s = secrets("host= password=topsecret");
        assert_eq!(
            redact("at (u)@password=topsecret:5432", &s),
            "at (u)@password=***:5432"
        );
    }
}
