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
    #[error("{url}: sha256 {actual}, expected {expected}")]
    Mismatch {
        url: String,
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
    let sha256 = sha256.to_ascii_lowercase();
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
    let target = dir.join(&sha256);
    if let Ok(meta) = tokio::fs::metadata(&target).await
        && meta.is_file()
    {
        return Ok(Artifact {
            path: target,
            sha256,
            bytes: meta.len(),
        });
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
    let (digest, bytes) = match &local {
        Some(path) => copy_file(path, url, policy, partial.path()).await?,
        None => download(url, policy, partial.path()).await?,
    };
    if digest != sha256 {
        let actual = if parsed.scheme() == "file" {
            "(not shown for file:// URLs)".to_string()
        } else {
            digest
        };
        return Err(FetchError::Mismatch {
            url: url.into(),
            expected: sha256,
            actual,
        });
    }
    partial.persist(&target).map_err(|e| cache_err(e.error))?;
    Ok(Artifact {
        path: target,
        sha256,
        bytes,
    })
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
) -> Result<(String, u64), FetchError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| FetchError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    write_capped(stream.map(|r| r.map_err(Chunk::Io)), url, policy, to).await
}

async fn download(url: &str, policy: &FetchPolicy, to: &Path) -> Result<(String, u64), FetchError> {
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
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| transfer(url, policy, e))?;
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
) -> Result<(String, u64), FetchError>
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
        out.write_all(chunk).await.map_err(cache_err)?;
    }
    out.flush().await.map_err(cache_err)?;
    out.sync_all().await.map_err(cache_err)?;
    Ok((hex::encode(hasher.finalize()), total))
}

#[cfg(test)]
mod tests;
