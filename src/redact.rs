//! Keeping secrets out of plans, logs, comments and webhooks.
//!
//! Anything weir renders for people goes through here first. A value is secret when its key (a
//! Flink configuration key, a program flag, a SQL `WITH` option) looks like it holds a credential.

pub const REDACTED: &str = "<redacted>";

/// True for keys such as `s3.secret-key`, `password`, `sasl.jaas.config`, `--api-token`.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim_start_matches('-').to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "private-key",
        "private.key",
        "privatekey",
        "access-key",
        "access.key",
        "accesskey",
        "api-key",
        "apikey",
        "api.key",
        "jaas.config",
        "auth",
    ];
    WORDS.iter().any(|w| k.contains(w))
}

pub fn config_value(key: &str, value: &str) -> String {
    if is_secret_key(key) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

/// `text` with the user name and password of every URL in it (`scheme://user:pass@host`)
/// replaced by [`REDACTED`]; the rest of the text is kept.
pub fn url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Program arguments with the value after a secret-looking flag (`--password x`,
/// `--password=x`) redacted.
pub fn args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        if hide_next {
            out.push(REDACTED.to_string());
            hide_next = false;
            continue;
        }
        if a.starts_with('-') {
            if let Some((flag, _)) = a.split_once('=') {
                if is_secret_key(flag) {
                    out.push(format!("{flag}={REDACTED}"));
                    continue;
                }
            } else if is_secret_key(a) {
                hide_next = true;
            }
        }
        out.push(a.clone());
    }
    out
}

/// SQL with the values of secret-looking quoted options redacted, e.g.
/// `'password' = 'hunter2'` → `'password' = '<redacted>'` and `SET 'x.secret' = '...'`.
pub fn sql(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    // Scan for: 'key' <ws> = <ws> 'value'
    while let Some(start) = rest.find('\'') {
        out.push_str(&rest[..start]);
        let after_quote = &rest[start + 1..];
        let Some(key_end) = after_quote.find('\'') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &after_quote[..key_end];
        let tail = &after_quote[key_end + 1..];
        let trimmed = tail.trim_start();
        if is_secret_key(key) && trimmed.starts_with('=') {
            let value_part = trimmed[1..].trim_start();
            if let Some(v) = value_part.strip_prefix('\'')
                && let Some(v_end) = find_sql_string_end(v)
            {
                let consumed = tail.len() - value_part.len();
                out.push('\'');
                out.push_str(key);
                out.push('\'');
                out.push_str(&tail[..consumed]);
                out.push('\'');
                out.push_str(REDACTED);
                out.push('\'');
                rest = &v[v_end + 1..];
                continue;
            }
        }
        out.push('\'');
        out.push_str(key);
        out.push('\'');
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Index of the closing quote of a SQL string body, honouring `''` escapes.
fn find_sql_string_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Removes known secret values (e.g. tokens read from the environment) from free text such as
/// error messages.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut s = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        s = s.replace(secret.as_str(), REDACTED);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("s3.secret-key"));
        assert!(is_secret_key("properties.sasl.jaas.config"));
        assert!(is_secret_key("--db-password"));
        assert!(!is_secret_key("execution.checkpointing.interval"));
        assert!(!is_secret_key("parallelism.default"));
    }

    #[test]
    fn redacts_args() {
        let a: Vec<String> = [
            "--topic",
            "orders",
            "--password",
            "hunter2",
            "--api-token=abc",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            args(&a),
            [
                "--topic",
                "orders",
                "--password",
                REDACTED,
                "--api-token=<redacted>"
            ]
        );
    }

    #[test]
    fn redacts_sql_options() {
        let s = "CREATE TABLE t (x INT) WITH ('connector' = 'jdbc', 'password' = 'it''s secret', 'url'='u');\nSET 'fs.s3.secret-key'='abc';";
        let r = sql(s);
        assert!(!r.contains("it''s secret"), "{r}");
        assert!(!r.contains("abc"), "{r}");
        assert!(r.contains("'connector' = 'jdbc'"));
        assert!(r.contains("'password' = '<redacted>'"), "{r}");
        assert!(r.contains("'url'='u'"));
        assert!(r.contains("'fs.s3.secret-key'='<redacted>'"), "{r}");
    }

    #[test]
    fn scrubs_values() {
        assert_eq!(
            scrub("bearer sekrit-123 failed", &["sekrit-123".into()]),
            "bearer <redacted> failed"
        );
    }

    #[test]
    fn url_credentials_are_removed() {
        assert_eq!(
            url_credentials("url \"http://admin:hunter2@flink:8081/x\" and https://h/p?a=b"),
            "url \"http://<redacted>@flink:8081/x\" and https://h/p?a=b"
        );
        assert_eq!(
            url_credentials("jdbc:postgresql://u:p@db/x"),
            "jdbc:postgresql://<redacted>@db/x"
        );
        assert_eq!(url_credentials("no url"), "no url");
        assert_eq!(url_credentials("a://"), "a://");
    }
}
