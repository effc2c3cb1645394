//! Checks of single values (URLs, URIs, environment variable names, hashes) and how a failed
//! read of a repo file is told.

use std::sync::Arc;

use crate::git::{GitError, ReadError};

/// Why a URL in the repo is refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum UrlError {
    #[error("invalid URL `{}`", crate::redact::url_credentials(.raw))]
    Invalid {
        raw: String,
        #[source]
        source: url::ParseError,
    },
    #[error("URL `{}` must use {allowed}, not `{scheme}`", crate::redact::url_credentials(.raw))]
    Scheme {
        raw: String,
        allowed: String,
        scheme: String,
    },
    #[error("URL `{}` has no host", crate::redact::url_credentials(.raw))]
    NoHost { raw: String },
}

pub(super) fn check_url(raw: &str, schemes: &[&str]) -> Result<(), UrlError> {
    let url = reqwest::Url::parse(raw).map_err(|source| UrlError::Invalid {
        raw: raw.to_string(),
        source,
    })?;
    if !schemes.contains(&url.scheme()) {
        let allowed = match schemes {
            [a, b] => format!("{a} or {b}"),
            [init @ .., last] => format!("{}, or {last}", init.join(", ")),
            [] => String::new(),
        };
        return Err(UrlError::Scheme {
            raw: raw.to_string(),
            allowed,
            scheme: url.scheme().to_string(),
        });
    }
    if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost {
            raw: raw.to_string(),
        });
    }
    Ok(())
}

/// `scheme://rest`, as Flink expects for savepoint directories (`s3://b/p`, `file:///p`).
pub(super) fn looks_like_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

pub(super) fn uri_message(value: &str) -> String {
    format!(
        "must be a URI such as `s3://bucket/savepoints` or `file:///savepoints`, found `{value}`"
    )
}

pub(super) fn is_env_var_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn env_var_message(value: &str) -> String {
    format!(
        "`{value}` is not a valid environment variable name (letters, digits and '_', not \
         starting with a digit)"
    )
}

pub(super) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

pub(super) fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// Why a file of the repo could not be read, as its diagnostic says it.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum ReadFailure {
    #[error("`{file}` does not exist in {origin}")]
    NotFoundIn { file: String, origin: String },
    #[error("`{file}` does not exist")]
    NotFound { file: String },
    #[error("`{file}` is {size} bytes; {kind} are limited to {}", human_bytes(*.limit))]
    TooLarge {
        file: String,
        size: u64,
        limit: u64,
        kind: &'static str,
    },
    #[error("cannot read `{file}`: {why}")]
    Unsupported { file: String, why: &'static str },
    /// Shared: a jar's failure is cached for every job that names the jar.
    #[error(transparent)]
    Other(Arc<GitError>),
}

/// Why `file` (one of the repo's `kind`, e.g. "jars") could not be read.
pub(super) fn read_failure(e: GitError, file: &str, kind: &'static str) -> ReadFailure {
    let file = file.to_string();
    match e.read_error() {
        Some(ReadError::NotFound) => match e {
            GitError::Read { origin, .. } => ReadFailure::NotFoundIn { file, origin },
            _ => ReadFailure::NotFound { file },
        },
        Some(ReadError::TooLarge { size, limit }) => ReadFailure::TooLarge {
            file,
            size: *size,
            limit: *limit,
            kind,
        },
        Some(ReadError::Unsupported(why)) => ReadFailure::Unsupported { file, why },
        _ => ReadFailure::Other(Arc::new(e)),
    }
}
