//! Artifacts named by URL (`jar: {url, sha256}`): fetched with bounds, verified, kept on disk by
//! content.
//!
//! A URL in a jobs repo is input from whoever can merge, so a fetch must not be able to hurt the
//! host that runs weir: the size is capped while streaming (nothing is held in memory), connect and
//! every read time out and so does the whole transfer, and `file://` reads only below directories
//! the operator allowed in the CLI or daemon settings (never the repo). A verified artifact is kept
//! as `<cache>/sha256/<hex>` and never fetched twice; a half-written download never takes that
//! name. The digest of content that does not match is not shown for `file://` URLs (it would be an
//! oracle for files of the host).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub mod maven;

/// What a fetch may do.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Directories below which `file://` URLs may be read (empty: `file://` is refused).
    pub file_roots: Vec<PathBuf>,
    pub max_bytes: u64,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes.
    pub read_timeout: Duration,
    /// Longest whole transfer.
    pub total_timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> FetchPolicy {
        FetchPolicy {
            file_roots: Vec::new(),
            max_bytes: MAX_ARTIFACT_BYTES,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(600),
        }
    }
}

/// Where verified artifacts are kept and what fetching them may do.
#[derive(Debug, Clone)]
pub struct ArtifactSettings {
    pub policy: FetchPolicy,
    pub cache: PathBuf,
}

impl ArtifactSettings {
    /// The CLI's: `$WEIR_CACHE/artifacts`, else `$XDG_CACHE_HOME/weir/artifacts`, else
    /// `~/.cache/weir/artifacts` (the daemon keeps them in its state directory instead).
    pub fn for_cli(file_roots: Vec<PathBuf>) -> ArtifactSettings {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache = env("WEIR_CACHE")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("weir")))
            .or_else(|| env("HOME").map(|h| h.join(".cache").join("weir")))
            .unwrap_or_else(|| std::env::temp_dir().join("weir"))
            .join("artifacts");
        ArtifactSettings {
            policy: FetchPolicy {
                file_roots,
                ..FetchPolicy::default()
            },
            cache,
        }
    }
}

/// The same limit as a jar in the repo.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL `{url}`")]
    InvalidUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("`{scheme}` URLs are not supported (http, https, file)")]
    Scheme { scheme: String },
    #[error(
        "file:// URLs are off: allow a directory with --allow-file-urls DIR (CLI) or \
         artifacts.allowFileUrls (daemon config)"
    )]
    FileUrlsOff,
    #[error("{path} is not below a directory allowed for file:// URLs ({allowed})")]
    FileNotAllowed { path: String, allowed: String },
    #[error("{path} is not a regular file")]
    NotAFile { path: String },
    #[error("{url}: larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: {what}")]
    Transfer {
        url: String,
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{path}: cannot read")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact cache {path}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {algorithm} {actual}, expected {expected}")]
    Mismatch {
        url: String,
        algorithm: &'static str,
        expected: String,
        /// `(not shown for file:// URLs)` for local files.
        actual: String,
    },
}

/// A verified artifact in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// Fetches `url` into `cache` unless an artifact with `sha256` is there already.
pub async fn fetch(
    url: &str,
    sha256: &str,
    policy: &FetchPolicy,
    cache: &Path,
) -> Result<Artifact, FetchError> {
    fetch_verified(url, Expected::Sha256(sha256), None, policy, cache).await
}

/// What a download must match.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// Known content: served from the cache when there.
    Sha256(&'a str),
    /// A repository's `.sha1` file: always downloaded, kept under its SHA-256.
    Sha1(&'a str),
}

/// HTTP basic authentication for a download (Maven repositories); the values come from the
/// environment and are registered as secrets by whoever builds this.
#[derive(Clone)]
pub struct BasicAuth {
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(..)")
    }
}

/// [`fetch`] with any expected digest and optional credentials.
pub async fn fetch_verified(
    url: &str,
    expected: Expected<'_>,
    auth: Option<&BasicAuth>,
    policy: &FetchPolicy,
    cache: &Path,
) -> Result<Artifact, FetchError> {
    let parsed = url::Url::parse(url).map_err(|source| FetchError::InvalidUrl {
        url: url.into(),
        source,
    })?;
    // The policy is checked before the cache: content fetched once under a wider policy is not
    // handed out to a URL the current one forbids.
    let local = match parsed.scheme() {
        "file" => Some(allowed_file(&parsed, policy).await?),
        "http" | "https" => None,
        other => {
            return Err(FetchError::Scheme {
                scheme: other.into(),
            });
        }
    };
    let dir = cache.join("sha256");
    if let Expected::Sha256(sha256) = expected
        && let Some(hit) = cached(cache, sha256).await
    {
        return Ok(hit);
    }
    let cache_err = |source| FetchError::Cache {
        path: dir.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(&dir).await.map_err(cache_err)?;
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(&dir)
        .map_err(cache_err)?;
    let digests = match &local {
        Some(path) => copy_file(path, url, policy, partial.path()).await?,
        None => download(url, auth, policy, partial.path()).await?,
    };
    let (algorithm, wanted, found) = match expected {
        Expected::Sha256(s) => ("sha256", s.to_ascii_lowercase(), &digests.sha256),
        Expected::Sha1(s) => ("sha1", s.to_ascii_lowercase(), &digests.sha1),
    };
    if *found != wanted {
        let actual = if parsed.scheme() == "file" {
            "(not shown for file:// URLs)".to_string()
        } else {
            found.clone()
        };
        return Err(FetchError::Mismatch {
            url: url.into(),
            algorithm,
            expected: wanted,
            actual,
        });
    }
    let target = dir.join(&digests.sha256);
    partial.persist(&target).map_err(|e| cache_err(e.error))?;
    Ok(Artifact {
        path: target,
        sha256: digests.sha256,
        bytes: digests.bytes,
    })
}

/// The verified artifact with this SHA-256, when the cache has it.
pub async fn cached(cache: &Path, sha256: &str) -> Option<Artifact> {
    let sha256 = sha256.to_ascii_lowercase();
    let target = cache.join("sha256").join(&sha256);
    match tokio::fs::metadata(&target).await {
        Ok(meta) if meta.is_file() => Some(Artifact {
            path: target,
            sha256,
            bytes: meta.len(),
        }),
        _ => None,
    }
}

/// A small text file over HTTP(S) (a checksum file): `None` when the server answers 404.
pub async fn fetch_small_text(
    url: &str,
    auth: Option<&BasicAuth>,
    policy: &FetchPolicy,
) -> Result<Option<String>, FetchError> {
    const LIMIT: usize = 4096;
    let response = get(url, auth, policy).await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.into(),
            status: response.status().as_u16(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| transfer(url, policy, e))?;
    if body.len() > LIMIT {
        return Err(FetchError::TooLarge {
            url: url.into(),
            limit: LIMIT as u64,
        });
    }
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// The regular file a `file://` URL names, when it is below an allowed root (after resolving
/// `..` and symlinks).
async fn allowed_file(url: &url::Url, policy: &FetchPolicy) -> Result<PathBuf, FetchError> {
    if policy.file_roots.is_empty() {
        return Err(FetchError::FileUrlsOff);
    }
    let raw = url.to_file_path().map_err(|()| FetchError::NotAFile {
        path: url.path().into(),
    })?;
    let shown = raw.display().to_string();
    let not_allowed = || FetchError::FileNotAllowed {
        path: shown.clone(),
        allowed: policy
            .file_roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    // A path that does not resolve is reported as not allowed: no difference between "missing"
    // and "forbidden" outside the allowed roots.
    let real = tokio::fs::canonicalize(&raw)
        .await
        .map_err(|_| not_allowed())?;
    let mut allowed = false;
    for root in &policy.file_roots {
        if let Ok(root) = tokio::fs::canonicalize(root).await
            && real.starts_with(&root)
        {
            allowed = true;
        }
    }
    if !allowed {
        return Err(not_allowed());
    }
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|source| FetchError::Read {
            path: shown.clone(),
            source,
        })?;
    if !meta.is_file() {
        return Err(FetchError::NotAFile { path: shown });
    }
    Ok(real)
}

async fn copy_file(
    path: &Path,
    url: &str,
    policy: &FetchPolicy,
    to: &Path,
) -> Result<Digests, FetchError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| FetchError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    write_capped(stream.map(|r| r.map_err(Chunk::Io)), url, policy, to).await
}

async fn download(
    url: &str,
    auth: Option<&BasicAuth>,
    policy: &FetchPolicy,
    to: &Path,
) -> Result<Digests, FetchError> {
    let response = get(url, auth, policy).await?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.into(),
            status: response.status().as_u16(),
        });
    }
    if response
        .content_length()
        .is_some_and(|n| n > policy.max_bytes)
    {
        return Err(FetchError::TooLarge {
            url: url.into(),
            limit: policy.max_bytes,
        });
    }
    let stream = response.bytes_stream().map(|r| r.map_err(Chunk::Http));
    write_capped(stream, url, policy, to).await
}

async fn get(
    url: &str,
    auth: Option<&BasicAuth>,
    policy: &FetchPolicy,
) -> Result<reqwest::Response, FetchError> {
    let client = reqwest::Client::builder()
        .connect_timeout(policy.connect_timeout)
        .read_timeout(policy.read_timeout)
        .timeout(policy.total_timeout)
        .build()
        .map_err(|source| FetchError::Transfer {
            url: url.into(),
            what: "HTTP client",
            source,
        })?;
    let mut request = client.get(url);
    if let Some(auth) = auth {
        request = request.basic_auth(&auth.user, auth.password.as_deref());
    }
    request.send().await.map_err(|e| transfer(url, policy, e))
}

/// The digests of a written download.
struct Digests {
    sha256: String,
    sha1: String,
    bytes: u64,
}

fn transfer(url: &str, policy: &FetchPolicy, source: reqwest::Error) -> FetchError {
    if source.is_timeout() {
        return FetchError::Timeout {
            url: url.into(),
            secs: policy.read_timeout.as_secs(),
        };
    }
    FetchError::Transfer {
        url: url.into(),
        what: if source.is_connect() {
            "cannot connect"
        } else {
            "transfer failed"
        },
        source,
    }
}

enum Chunk {
    Io(std::io::Error),
    Http(reqwest::Error),
}

/// Streams into `to` while hashing, stopping at the size cap and the total deadline.
async fn write_capped<S, B>(
    mut stream: S,
    url: &str,
    policy: &FetchPolicy,
    to: &Path,
) -> Result<Digests, FetchError>
where
    S: futures::Stream<Item = Result<B, Chunk>> + Unpin,
    B: AsRef<[u8]>,
{
    let cache_err = |source| FetchError::Cache {
        path: to.display().to_string(),
        source,
    };
    let mut out = tokio::fs::File::create(to).await.map_err(cache_err)?;
    let mut hasher = Sha256::new();
    let mut sha1 = <sha1::Sha1 as sha1::Digest>::new();
    let mut total: u64 = 0;
    let deadline = Instant::now() + policy.total_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left.min(policy.read_timeout), stream.next())
            .await
            .map_err(|_| FetchError::Timeout {
                url: url.into(),
                secs: left.min(policy.read_timeout).as_secs(),
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| match e {
            Chunk::Io(source) => FetchError::Read {
                path: url.into(),
                source,
            },
            Chunk::Http(source) => transfer(url, policy, source),
        })?;
        let chunk = chunk.as_ref();
        total += chunk.len() as u64;
        if total > policy.max_bytes {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit: policy.max_bytes,
            });
        }
        hasher.update(chunk);
        sha1::Digest::update(&mut sha1, chunk);
        out.write_all(chunk).await.map_err(cache_err)?;
    }
    out.flush().await.map_err(cache_err)?;
    out.sync_all().await.map_err(cache_err)?;
    Ok(Digests {
        sha256: hex::encode(hasher.finalize()),
        sha1: hex::encode(sha1::Digest::finalize(sha1)),
        bytes: total,
    })
}

#[cfg(test)]
mod tests;
