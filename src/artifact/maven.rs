//! `maven:` dependencies: a coordinate `group:artifact:version[:classifier]` resolved to the jar
//! itself (no transitive resolution: Flink connectors ship as self-contained
//! `flink-sql-connector-*` jars) from the repositories named in `weir.yaml`, tried in order.
//!
//! A download is verified against the pin (`sha256`) when given, else against the repository's
//! `.sha256` file, else its `.sha1` file; a repository that publishes neither cannot be used
//! without a pin. Verified jars are kept in the artifact cache by content; a coordinate fetched
//! once without a pin is remembered (`<cache>/maven/<hash of its URL>` holds its SHA-256), so no
//! jar is downloaded twice. Credentials are read from the environment variables the repository
//! names and registered as secrets (never shown, logged or stored).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Artifact, ArtifactSettings, BasicAuth, Expected, FetchError};
use crate::spec::MavenRepository;

/// `group:artifact:version[:classifier]` (always a `jar`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coordinate {
    pub group: String,
    pub artifact: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinateError {
    #[error("`{0}` is not a Maven coordinate: expected group:artifact:version[:classifier]")]
    Shape(String),
    #[error("the {part} of `{coordinate}` may contain only letters, digits, '.', '-', '_' and '+'")]
    Characters {
        coordinate: String,
        part: &'static str,
    },
}

impl Coordinate {
    pub fn parse(text: &str) -> Result<Coordinate, CoordinateError> {
        let parts: Vec<&str> = text.split(':').collect();
        if !(3..=4).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(CoordinateError::Shape(text.to_string()));
        }
        let names = ["group", "artifact", "version", "classifier"];
        for (part, name) in parts.iter().zip(names) {
            // Parts become URL path segments: nothing that could climb out of the repository.
            let ok = part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
                && !part.starts_with('.');
            if !ok {
                return Err(CoordinateError::Characters {
                    coordinate: text.to_string(),
                    part: name,
                });
            }
        }
        Ok(Coordinate {
            group: parts[0].to_string(),
            artifact: parts[1].to_string(),
            version: parts[2].to_string(),
            classifier: parts.get(3).map(|c| c.to_string()),
        })
    }

    /// `artifact-version[-classifier].jar`.
    pub fn file_name(&self) -> String {
        match &self.classifier {
            Some(c) => format!("{}-{}-{c}.jar", self.artifact, self.version),
            None => format!("{}-{}.jar", self.artifact, self.version),
        }
    }

    /// The jar's path below a repository's base URL (Maven layout).
    pub fn layout_path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group.replace('.', "/"),
            self.artifact,
            self.version,
            self.file_name()
        )
    }
}

impl fmt::Display for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.group, self.artifact, self.version)?;
        if let Some(c) = &self.classifier {
            write!(f, ":{c}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MavenError {
    #[error("no repository in `mavenRepositories` has {coordinate} (tried {tried})")]
    NotFound { coordinate: String, tried: String },
    #[error(
        "repository `{repository}` has {coordinate} but publishes neither a .sha256 nor a .sha1 \
         file for it: pin its `sha256`"
    )]
    NoChecksum {
        repository: String,
        coordinate: String,
    },
    #[error("repository `{repository}`: {url}.{algorithm} is not a {algorithm} checksum")]
    BadChecksumFile {
        repository: String,
        url: String,
        algorithm: &'static str,
    },
    #[error("repository `{repository}`: environment variable {var} is not set")]
    Credentials { repository: String, var: String },
    #[error("repository `{repository}`")]
    Fetch {
        repository: String,
        #[source]
        source: FetchError,
    },
    #[error("artifact cache {path}")]
    Index {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The verified jar of `coordinate` (from the cache when it is there).
pub async fn resolve(
    coordinate: &Coordinate,
    pin: Option<&str>,
    repositories: &[MavenRepository],
    settings: &ArtifactSettings,
) -> Result<Artifact, MavenError> {
    if let Some(pin) = pin
        && let Some(hit) = super::cached(&settings.cache, pin).await
    {
        return Ok(hit);
    }
    let mut tried = Vec::new();
    for repository in repositories {
        let url = format!(
            "{}/{}",
            repository.url.trim_end_matches('/'),
            coordinate.layout_path()
        );
        if let Some(found) = from_repository(coordinate, pin, repository, &url, settings).await? {
            return Ok(found);
        }
        tried.push(format!("`{}`", repository.name));
    }
    Err(MavenError::NotFound {
        coordinate: coordinate.to_string(),
        tried: if tried.is_empty() {
            "none: no repository is configured".into()
        } else {
            tried.join(", ")
        },
    })
}

/// The jar from one repository; `None` when the repository does not have it.
async fn from_repository(
    coordinate: &Coordinate,
    pin: Option<&str>,
    repository: &MavenRepository,
    url: &str,
    settings: &ArtifactSettings,
) -> Result<Option<Artifact>, MavenError> {
    let fetch_err = |source| MavenError::Fetch {
        repository: repository.name.clone(),
        source,
    };
    let index = index_path(&settings.cache, url);
    if pin.is_none()
        && let Ok(known) = tokio::fs::read_to_string(&index).await
        && let Some(hit) = super::cached(&settings.cache, known.trim()).await
    {
        return Ok(Some(hit));
    }
    let auth = credentials(repository)?;
    let policy = &settings.policy;
    let checksum;
    let expected = match pin {
        Some(pin) => Expected::Sha256(pin),
        None => {
            checksum =
                published_checksum(coordinate, repository, url, auth.as_ref(), settings).await?;
            match &checksum {
                None => return Ok(None),
                Some((Algorithm::Sha256, hex)) => Expected::Sha256(hex),
                Some((Algorithm::Sha1, hex)) => Expected::Sha1(hex),
            }
        }
    };
    let artifact =
        match super::fetch_verified(url, expected, auth.as_ref(), policy, &settings.cache).await {
            Ok(artifact) => artifact,
            Err(FetchError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(fetch_err(e)),
        };
    if pin.is_none() {
        write_index(&index, &artifact.sha256).await?;
    }
    Ok(Some(artifact))
}

#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Sha256,
    Sha1,
}

/// The repository's `.sha256` (else `.sha1`) checksum of the jar at `url`; `None` when the jar is
/// not there either.
async fn published_checksum(
    coordinate: &Coordinate,
    repository: &MavenRepository,
    url: &str,
    auth: Option<&BasicAuth>,
    settings: &ArtifactSettings,
) -> Result<Option<(Algorithm, String)>, MavenError> {
    let fetch_err = |source| MavenError::Fetch {
        repository: repository.name.clone(),
        source,
    };
    for (algorithm, ext, len) in [
        (Algorithm::Sha256, "sha256", 64),
        (Algorithm::Sha1, "sha1", 40),
    ] {
        let Some(text) = super::fetch_small_text(&format!("{url}.{ext}"), auth, &settings.policy)
            .await
            .map_err(fetch_err)?
        else {
            continue;
        };
        return match parse_checksum(&text, len) {
            Some(hex) => Ok(Some((algorithm, hex))),
            None => Err(MavenError::BadChecksumFile {
                repository: repository.name.clone(),
                url: url.to_string(),
                algorithm: ext_name(algorithm),
            }),
        };
    }
    // No checksum at all: tell "not there" from "there but unverifiable".
    match super::fetch_small_text(url, auth, &settings.policy).await {
        Ok(None) => Ok(None),
        Ok(Some(_)) | Err(FetchError::TooLarge { .. }) => Err(MavenError::NoChecksum {
            repository: repository.name.clone(),
            coordinate: coordinate.to_string(),
        }),
        Err(e) => Err(fetch_err(e)),
    }
}

fn ext_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Sha256 => "sha256",
        Algorithm::Sha1 => "sha1",
    }
}

/// The digest in a checksum file: its first word (`sha1sum` style files add the file name).
pub fn parse_checksum(text: &str, hex_len: usize) -> Option<String> {
    let word = text.split_whitespace().next()?;
    (word.len() == hex_len && word.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| word.to_ascii_lowercase())
}

/// The repository's credentials from the environment (registered as secrets).
fn credentials(repository: &MavenRepository) -> Result<Option<BasicAuth>, MavenError> {
    let read = |var: &String| {
        std::env::var(var).map_err(|_| MavenError::Credentials {
            repository: repository.name.clone(),
            var: var.clone(),
        })
    };
    let user = repository
        .username_from_env
        .as_ref()
        .map(read)
        .transpose()?;
    let password = repository
        .password_from_env
        .as_ref()
        .map(read)
        .transpose()?;
    if let Some(p) = &password {
        crate::redact::register_secret(p);
    }
    Ok(match (user, password) {
        (None, None) => None,
        (user, password) => Some(BasicAuth {
            user: user.unwrap_or_default(),
            password,
        }),
    })
}

fn index_path(cache: &Path, url: &str) -> std::path::PathBuf {
    cache
        .join("maven")
        .join(hex::encode(Sha256::digest(url.as_bytes())))
}

async fn write_index(index: &Path, sha256: &str) -> Result<(), MavenError> {
    let err = |source| MavenError::Index {
        path: index.display().to_string(),
        source,
    };
    let dir = index.parent().unwrap_or(index);
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    // Written whole then renamed: a reader never sees half a digest.
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tokio::fs::write(tmp.path(), sha256).await.map_err(err)?;
    tmp.persist(index).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
