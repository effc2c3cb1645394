//! The desired state: a validated, resolved view of a jobs repo at one revision.
//!
//! The loader turns the raw files (`spec`) into these values; the planner only ever sees these.
//! Everything a job's deployment depends on is resolved here (SQL files read, jar content hashed)
//! so that the fingerprint of a job changes exactly when what would run on Flink changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::{RepoConfig, RunState, UpgradeMode};

/// A whole repo at one revision, as far as it could be loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesiredState {
    /// Git commit (or `worktree`) plus a digest of every input file; see [`Revision`].
    pub revision: Revision,
    pub config: RepoConfig,
    /// Valid job definitions, sorted by name.
    pub jobs: Vec<DesiredJob>,
}

/// Identifies the exact inputs a plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The Git commit the files came from, when known.
    pub commit: Option<String>,
    /// True when files were read from a working tree that differs from `commit`.
    pub dirty: bool,
    /// SHA-256 over every file the desired state was built from (paths and contents).
    pub digest: String,
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digest = &self.digest[..self.digest.len().min(12)];
        match (&self.commit, self.dirty) {
            (Some(c), false) => write!(f, "{}", &c[..c.len().min(12)]),
            (Some(c), true) => write!(f, "{}+dirty.{digest}", &c[..c.len().min(12)]),
            (None, _) => write!(f, "worktree.{digest}"),
        }
    }
}

/// One job as it should be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredJob {
    pub name: String,
    /// Repo-relative path of the definition file.
    pub file: String,
    pub cluster: String,
    pub state: RunState,
    pub upgrade_mode: UpgradeMode,
    pub parallelism: u32,
    pub program: Program,
    /// Flink configuration with values rendered as text, sorted by key.
    pub flink_configuration: BTreeMap<String, String>,
    pub initial_savepoint: Option<String>,
    pub allow_non_restored_state: bool,
    /// Savepoint target directory for this job (job setting, else the cluster's).
    pub savepoint_dir: Option<String>,
    pub restart_nonce: u64,
    pub labels: BTreeMap<String, String>,
    /// Pre-flight the program before a change submits it (`spec.preflight`, default true).
    #[serde(default = "preflight_default")]
    pub preflight: bool,
    /// Where an SQL script's first line is in the repo, for mapping the cluster's errors back
    /// to it; `None` for jar jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_origin: Option<SqlOrigin>,
    /// Periodic savepoints, retention and redeploying from a chosen savepoint.
    #[serde(default, skip_serializing_if = "SavepointLifecycle::is_empty")]
    pub lifecycle: SavepointLifecycle,
}

/// The savepoint lifecycle settings of a job (`spec.savepoint.periodic`, `retain`,
/// `restoreFrom`, `redeployNonce`), resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointLifecycle {
    /// `spec.savepoint.periodic`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periodic_ms: Option<i64>,
    /// `spec.savepoint.retain`, else `savepoints.retain` of `weir.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<RetainPolicy>,
    /// `spec.savepoint.restoreFrom`: the savepoint a bump of `redeploy_nonce` redeploys from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
    /// `spec.savepoint.redeployNonce`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redeploy_nonce: u64,
}

impl SavepointLifecycle {
    pub fn is_empty(&self) -> bool {
        *self == SavepointLifecycle::default()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Savepoint retention, resolved: see [`crate::spec::RetainSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainPolicy {
    /// Keep at most this many savepoints of a job (the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Dispose savepoints older than this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<i64>,
}

impl RetainPolicy {
    /// Whether the policy disposes anything at all.
    pub fn is_set(&self) -> bool {
        self.count.is_some() || self.max_age_ms.is_some()
    }
}

fn preflight_default() -> bool {
    true
}

/// Where line 1 of an SQL script is: line `line` of `file`, shifted right by `indent` columns
/// (the indentation of an inline `sql: |` block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqlOrigin {
    pub file: String,
    pub line: u32,
    pub indent: u32,
}

/// What is submitted to Flink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Program {
    #[serde(rename_all = "camelCase")]
    Jar {
        jar: JarRef,
        entry_class: Option<String>,
        args: Vec<String>,
    },
    /// A SQL script run by the SQL runner jar.
    #[serde(rename_all = "camelCase")]
    Sql {
        script: String,
        /// Repo-relative file the script came from, when `sqlFile` was used.
        source_file: Option<String>,
        runner: JarRef,
        runner_class: String,
    },
}

/// A jar and the SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JarRef {
    pub location: JarLocation,
    /// Hex SHA-256 of the jar's bytes (computed for repo files, declared for URLs).
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum JarLocation {
    /// Repo-relative path, read from the same tree (working tree or Git revision) as the definition.
    Repo { path: String },
    /// `http(s)://` or `file://` URL; the download must match `JarRef::sha256`.
    Url { url: String },
}

impl JarRef {
    /// A short human name for the jar (its file name).
    pub fn file_name(&self) -> &str {
        let s = match &self.location {
            JarLocation::Repo { path } => path.as_str(),
            JarLocation::Url { url } => url.as_str(),
        };
        s.rsplit('/').next().unwrap_or(s)
    }
}

impl DesiredJob {
    /// The program arguments sent to Flink (for SQL jobs: the runner's arguments).
    pub fn program_args(&self) -> Vec<String> {
        match &self.program {
            Program::Jar { args, .. } => args.clone(),
            Program::Sql { script, .. } => {
                use base64::Engine;
                vec![
                    "--sql-base64".to_string(),
                    base64::engine::general_purpose::STANDARD.encode(script.as_bytes()),
                ]
            }
        }
    }

    /// A copy safe to store and show: secret configuration values, secret program arguments and
    /// secret SQL options replaced by a marker (see [`crate::redact`]).
    pub fn redacted(&self) -> DesiredJob {
        let mut copy = self.clone();
        for (k, v) in copy.flink_configuration.iter_mut() {
            *v = crate::redact::config_value(k, v);
        }
        match &mut copy.program {
            Program::Jar { args, .. } => *args = crate::redact::args(args),
            Program::Sql { script, .. } => *script = crate::redact::sql(script),
        }
        copy
    }

    /// The secret values of the definition that [`DesiredJob::redacted`] hides by their key
    /// (secret configuration values, arguments after secret flags): registered as known
    /// secrets (`redact::register_secret`) so that Flink's text quoting one is scrubbed too.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .flink_configuration
            .iter()
            .filter(|(k, _)| crate::redact::is_secret_key(k))
            .map(|(_, v)| v.clone())
            .collect();
        if let Program::Jar { args, .. } = &self.program {
            out.extend(crate::redact::arg_secret_values(args));
        }
        out
    }

    pub fn jar(&self) -> &JarRef {
        match &self.program {
            Program::Jar { jar, .. } => jar,
            Program::Sql { runner, .. } => runner,
        }
    }

    pub fn entry_class(&self) -> Option<&str> {
        match &self.program {
            Program::Jar { entry_class, .. } => entry_class.as_deref(),
            Program::Sql { runner_class, .. } => Some(runner_class),
        }
    }

    /// Hash of everything whose change requires a redeploy: the program (jar content, entry class,
    /// args or SQL), the Flink configuration and the restart nonce. Parallelism, state, upgrade mode
    /// and savepoint settings are deliberately left out: they are handled by rescale, suspend/resume
    /// or are record-only.
    pub fn code_fingerprint(&self) -> [u8; 32] {
        let mut canonical = serde_json::json!({
            "jarSha256": self.jar().sha256,
            "entryClass": self.entry_class(),
            "args": match &self.program { Program::Jar { args, .. } => args.clone(), Program::Sql { .. } => vec![] },
            "sql": match &self.program { Program::Sql { script, .. } => Some(script), Program::Jar { .. } => None },
            "flinkConfiguration": self.flink_configuration,
            "restartNonce": self.restart_nonce,
        });
        // Only when set, so that the fingerprint (and the job id) of every job without it stays
        // what earlier versions computed.
        if self.lifecycle.redeploy_nonce != 0 {
            canonical["redeployNonce"] = self.lifecycle.redeploy_nonce.into();
        }
        Sha256::digest(canonical.to_string().as_bytes()).into()
    }
}
