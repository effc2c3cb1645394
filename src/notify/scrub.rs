//! Keeping webhook URLs, signing secrets and other credentials out of payloads, logs and the
//! store.
//!
//! A webhook URL is itself a credential more often than not (a Slack incoming-webhook URL is a
//! bearer token in its path; others carry `?token=`). Wherever a URL is shown it is reduced to
//! `scheme://host[:port]/path`: no user info, no query, no fragment, and path segments that look
//! like tokens replaced by `***`. Free text (event messages, error messages) goes through
//! [`Scrubber::text`], which also applies [`crate::redact`].

use crate::redact;

/// What a token-like path segment is replaced with.
pub const MASK: &str = "***";

/// `scheme://host[:port]/path` of `url`, without user info, query or fragment, and with
/// token-like path segments masked.
pub fn url(url: &reqwest::Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    match url.path_segments() {
        Some(segments) => {
            for segment in segments {
                out.push('/');
                out.push_str(if looks_like_token(segment) {
                    MASK
                } else {
                    segment
                });
            }
        }
        None => out.push_str(url.path()),
    }
    out
}

/// The parts of `url` that [`url`] hides and that must therefore never be shown: the whole URL,
/// its user info, query and token-like path segments (each at least 4 characters).
pub fn url_secrets(url: &reqwest::Url) -> Vec<String> {
    let mut out = Vec::new();
    if self::url(url) != url.as_str() {
        out.push(url.as_str().to_string());
    }
    if !url.username().is_empty() {
        out.push(url.username().to_string());
    }
    if let Some(p) = url.password() {
        out.push(p.to_string());
    }
    if let Some(q) = url.query()
        && !q.is_empty()
    {
        out.push(q.to_string());
        out.extend(
            url.query_pairs()
                .map(|(_, v)| v.into_owned())
                .filter(|v| v.len() >= 4),
        );
    }
    if let Some(segments) = url.path_segments() {
        out.extend(segments.filter(|s| looks_like_token(s)).map(str::to_string));
    }
    out.retain(|s| s.len() >= 4);
    out
}

/// A path segment that is probably a credential: long and made of token characters, mixing
/// letters and digits, or very long.
fn looks_like_token(segment: &str) -> bool {
    let token_chars = segment
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '=' | '%'));
    let mixed = segment.chars().any(|c| c.is_ascii_digit())
        && segment.chars().any(|c| c.is_ascii_alphabetic());
    token_chars && ((segment.len() >= 16 && mixed) || segment.len() >= 40)
}

/// A link shown to people (in a payload): user info removed, and query parameters whose name
/// looks secret dropped. Anything that is not an absolute URL is kept as it is.
pub fn link(raw: &str) -> String {
    let Ok(mut url) = reqwest::Url::parse(raw) else {
        return raw.to_string();
    };
    if url.cannot_be_a_base() {
        return raw.to_string();
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query().is_some() {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !is_secret_name(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    url.to_string()
}

/// [`redact::is_secret_key`], also for `snake_case` names (`api_key`, `access_key`).
fn is_secret_name(name: &str) -> bool {
    redact::is_secret_key(name) || redact::is_secret_key(&name.replace('_', "-"))
}

/// Scrubs free text of known secret values and of anything that looks like a credential.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Known secret values (signing secrets, webhook URLs and their parts), longest first.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber(<{} secrets>)", self.secrets.len())
    }
}

impl Scrubber {
    pub fn new(mut secrets: Vec<String>) -> Scrubber {
        secrets.retain(|s| s.len() >= 4);
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Scrubber { secrets }
    }

    /// `text` with known secrets replaced by `<redacted>`, URLs reduced as by [`url`], and
    /// secret-looking options (`'password' = '...'`, `--token x`, `api-key=x`, `Bearer x`)
    /// redacted.
    pub fn text(&self, text: &str) -> String {
        let urls = reduce_urls(text);
        let known = redact::scrub(&urls, &self.secrets);
        let sql = redact::sql(&known);
        // The process-wide known secrets and credential patterns.
        let clean = redact::text(&sql);
        // E-mail and chat texts are shown as they are: no terminal escapes or bidi overrides
        // from Flink or the repo (line breaks of multi-line messages are kept).
        crate::text::escape_controls_multiline(&clean).into_owned()
    }
}

/// Replaces every `http://` / `https://` URL in `text` with its reduced form.
fn reduce_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["http://", "https://"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min();
        let Some(start) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .unwrap_or(tail.len());
        let candidate = &tail[..end];
        match reqwest::Url::parse(candidate) {
            Ok(u) if u.host_str().is_some() => out.push_str(&url(&u)),
            _ => out.push_str(candidate),
        }
        rest = &tail[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn urls_lose_credentials_query_and_token_segments() {
        assert_eq!(
            url(&u(
                "https://user:pw@hooks.example.com:8443/a/b?token=abc#frag"
            )),
            "https://hooks.example.com:8443/a/b"
        );
        assert_eq!(
            url(&u(
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
            )),
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
        );
        assert_eq!(
            url(&u(
                "https://hooks.slack.com/services/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"
            )),
            "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/***"
        );
        assert_eq!(
            url(&u(
                "http://127.0.0.1:9999/hooks/weir-notifications-production"
            )),
            "http://127.0.0.1:9999/hooks/weir-notifications-production"
        );
        assert_eq!(url(&u("http://h")), "http://h/");
    }

    #[test]
    fn url_secrets_cover_the_hidden_parts() {
        let s = url_secrets(&u(
            "https://me:pa55word@h/x/a1B2c3D4e5F6g7H8i9J0?sig=abcdef&v=1",
        ));
        assert!(s.contains(&"pa55word".to_string()), "{s:?}");
        assert!(s.contains(&"sig=abcdef&v=1".to_string()), "{s:?}");
        assert!(s.contains(&"abcdef".to_string()), "{s:?}");
        assert!(s.contains(&"a1B2c3D4e5F6g7H8i9J0".to_string()), "{s:?}");
        assert!(!s.contains(&"1".to_string()));
    }

    #[test]
    fn links_keep_harmless_queries() {
        assert_eq!(
            link("https://x-access-token:ghp_secret@github.com/acme/jobs/commit/abc"),
            "https://github.com/acme/jobs/commit/abc"
        );
        assert_eq!(
            link("https://grafana/d/flink?orgId=1&api_key=zzz&var-job=orders"),
            "https://grafana/d/flink?orgId=1&var-job=orders"
        );
        assert_eq!(link("https://h/p?token=zzz"), "https://h/p");
        assert_eq!(link("not a url"), "not a url");
        assert_eq!(
            link("s3://bucket/savepoints/sp-1"),
            "s3://bucket/savepoints/sp-1"
        );
    }

    #[test]
    fn text_is_scrubbed() {
        let s = Scrubber::new(vec!["sekrit-value-1".into(), "ab".into()]);
        let msg = "POST https://hooks.example.com/h?token=abc failed: sekrit-value-1 rejected; \
                   WITH ('password' = 'hunter2') --api-token xyz api_key=k0 api-key=k1 token: t1 \
                   Authorization: Bearer b1 ab stays";
        let out = s.text(msg);
        for leaked in [
            "token=abc",
            "sekrit-value-1",
            "hunter2",
            "xyz",
            "k1",
            "t1",
            "b1",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert_eq!(
            out,
            "POST https://hooks.example.com/h failed: <redacted> rejected; WITH ('password' = \
             '<redacted>') --api-token <redacted> api_key=<redacted> api-key=<redacted> \
             token: <redacted> Authorization: Bearer <redacted> ab stays"
        );
        assert_eq!(
            s.text("job orders failed:\n  caused by: timeout"),
            "job orders failed:\n  caused by: timeout"
        );
        assert_eq!(s.text("boom\u{1b}[2J\u{7}"), "boom\\u{1b}[2J\\u{7}");
    }
}
