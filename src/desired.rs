//! The desired state: a validated, resolved view of a jobs repo at one revision.
//!
//! The loader turns the raw files (`spec`) into these values; the planner only ever sees these.
//! Everything a job's deployment depends on is resolved here (SQL files read, jar content hashed)
//! so that the fingerprint of a job changes exactly when what would run on Flink changes.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::{JobMode, RepoConfig, RunState, UpgradeMode};
use crate::textmap::TextMap;

/// A whole repo at one revision, as far as it could be loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesiredState {
    /// Git commit (or `worktree`) plus a digest of every input file; see [`Revision`].
    pub revision: Revision,
    pub config: RepoConfig,
    /// Valid job definitions, sorted by name.
    pub jobs: Vec<DesiredJob>,
    /// The environment (a key of `environments` in `weir.yaml`) this state is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Jobs of the repo that `spec.environments` keeps out of this environment, sorted: their
    /// copies in other environments are not foreign jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs_elsewhere: Vec<String>,
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
///
/// Its short texts (name, file, cluster, program args, and the entries of its maps) are
/// `CompactString`s, inline up to 24 bytes: the daemon keeps every definition between reconciles
/// and rebuilds them in each, and one allocation per text scattered them over the heap.
/// Serialized, they are the same strings (records, plans and fingerprints do not change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredJob {
    pub name: CompactString,
    /// Repo-relative path of the definition file.
    pub file: CompactString,
    pub cluster: CompactString,
    pub state: RunState,
    pub upgrade_mode: UpgradeMode,
    pub parallelism: u32,
    pub program: Program,
    /// Flink configuration with values rendered as text, sorted by key.
    pub flink_configuration: TextMap,
    pub initial_savepoint: Option<String>,
    pub allow_non_restored_state: bool,
    /// Savepoint target directory for this job (job setting, else the cluster's).
    pub savepoint_dir: Option<String>,
    pub restart_nonce: u64,
    pub labels: TextMap,
    /// Pre-flight the program before a change submits it (`spec.preflight`, default true).
    #[serde(default = "preflight_default")]
    pub preflight: bool,
    /// Where an SQL script's first line is in the repo, for mapping the cluster's errors back
    /// to it; `None` for jar jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_origin: Option<SqlOrigin>,
    /// Extra jars shipped in the uploaded bundle as `lib/*.jar` (`spec.dependencies`), in the
    /// order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// The `${env:NAME}` secrets the job's texts refer to: name → keyed digest of the value
    /// (see [`crate::secrets`]), `None` when weir's environment did not set it. Never a value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Option<String>>,
    /// `spec.mode`; absent in records of earlier versions, which only knew streaming jobs.
    #[serde(default, skip_serializing_if = "JobMode::is_streaming")]
    pub mode: JobMode,
    /// `spec.schedule` with its time zone (batch jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Automatic rollback (`spec.rollback` over `weir.yaml`'s `rollback`).
    #[serde(default)]
    pub rollback: Rollback,
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
    /// `spec.savepoint.periodic` given as a cron expression (UTC): a savepoint is due once a fire
    /// time passed since the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periodic_cron: Option<String>,
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

/// Whether and how a change of the job is watched and rolled back (see `apply::rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    pub enabled: bool,
    pub health_window_seconds: u32,
}

impl Rollback {
    /// A job's `spec.rollback` over `weir.yaml`'s `rollback` over the defaults.
    pub fn resolve(
        job: Option<&crate::spec::RollbackSpec>,
        repo: Option<&crate::spec::RollbackSpec>,
    ) -> Rollback {
        let (enabled, health_window_seconds) = crate::spec::RollbackSpec::resolve(job, repo);
        Rollback {
            enabled,
            health_window_seconds,
        }
    }
}

impl Default for Rollback {
    fn default() -> Self {
        Rollback {
            enabled: true,
            health_window_seconds: crate::spec::DEFAULT_HEALTH_WINDOW_SECONDS,
        }
    }
}

/// When `weir serve` runs a scheduled batch job: a validated cron expression and time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub cron: String,
    /// IANA name; `None` is UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
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
        args: Vec<CompactString>,
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
    /// The SQL runner built into weir (no `sqlRunner` in `weir.yaml`): the build for the target
    /// cluster's Flink major version is chosen when the jar is staged. `JarRef::sha256` is then
    /// [`EMBEDDED_RUNNER_ID`], not the bytes' digest, so that a weir upgrade that rebuilds the
    /// runner does not change any job's fingerprint.
    Embedded,
}

/// Stands in for the SHA-256 of the embedded SQL runner in fingerprints and names: the SHA-256 of
/// `weir:embedded-sql-runner` (fixed forever; see [`JarLocation::Embedded`]).
pub const EMBEDDED_RUNNER_ID: &str =
    "6389fe16c963dc9d14b6a25c4cb0dcae223bb01b98d45cb8494a9e61145c6b41";

/// File name of the embedded SQL runner, as shown in plans.
pub const EMBEDDED_RUNNER_FILE: &str = "weir-sql-runner.jar";

/// A job dependency (`spec.dependencies` entry), resolved as far as loading can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub source: DependencySource,
    /// Hex SHA-256 of the jar: computed for repo files, declared for URLs, the pin (if any) for
    /// Maven coordinates (else known once fetched, from the repository's checksum files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `file:line:col` of the entry, for errors found when the jar is fetched.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DependencySource {
    Repo {
        path: String,
    },
    Url {
        url: String,
    },
    /// A Maven artifact, looked up in `repositories` in order.
    Maven {
        coordinate: crate::artifact::maven::Coordinate,
        repositories: Vec<crate::spec::MavenRepository>,
    },
}

impl Dependency {
    /// The name of its `lib/` entry in the bundle.
    pub fn file_name(&self) -> String {
        match &self.source {
            DependencySource::Repo { path } => last_segment(path).to_string(),
            DependencySource::Url { url } => {
                last_segment(url.split(['?', '#']).next().unwrap_or(url)).to_string()
            }
            DependencySource::Maven { coordinate, .. } => coordinate.file_name(),
        }
    }

    /// How plans show it: name, version and the start of the SHA-256 when known.
    pub fn label(&self) -> String {
        let name = match &self.source {
            DependencySource::Maven { coordinate, .. } => coordinate.to_string(),
            _ => self.file_name(),
        };
        match &self.sha256 {
            Some(sha) => format!("{name} (sha256 {})", &sha[..sha.len().min(12)]),
            None => name,
        }
    }

    /// What identifies its content in the code fingerprint.
    fn fingerprint(&self) -> DependencyFingerprint {
        let (kind, what) = match &self.source {
            DependencySource::Repo { path } => ("path", path.clone()),
            DependencySource::Url { url } => ("url", url.clone()),
            DependencySource::Maven { coordinate, .. } => ("maven", coordinate.to_string()),
        };
        BTreeMap::from([(kind, Some(what)), ("sha256", self.sha256.clone())])
    }
}

/// A dependency in [`CodeFingerprint`]: `{"<kind>": "<what>", "sha256": …}` (a map, so that its
/// keys come in byte order: `url` sorts after `sha256`).
type DependencyFingerprint = BTreeMap<&'static str, Option<String>>;

fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

impl JarRef {
    /// A short human name for the jar (its file name).
    pub fn file_name(&self) -> &str {
        let s = match &self.location {
            JarLocation::Repo { path } => path.as_str(),
            JarLocation::Url { url } => url.as_str(),
            JarLocation::Embedded => EMBEDDED_RUNNER_FILE,
        };
        s.rsplit('/').next().unwrap_or(s)
    }
}

impl DesiredJob {
    /// The program arguments sent to Flink (for SQL jobs: the runner's arguments).
    pub fn program_args(&self) -> Vec<String> {
        match &self.program {
            Program::Jar { args, .. } => args.iter().map(|a| a.to_string()).collect(),
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
            *v = crate::redact::config_value(k, v).into();
        }
        match &mut copy.program {
            Program::Jar { args, .. } => {
                *args = crate::redact::args(args)
                    .into_iter()
                    .map(CompactString::from)
                    .collect()
            }
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
            .map(|(_, v)| v.to_string())
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

    /// Whether this is a batch job (`spec.mode: batch`).
    pub fn is_batch(&self) -> bool {
        self.mode == JobMode::Batch
    }

    /// Hash of everything whose change requires a redeploy: the program (jar content, entry class,
    /// args or SQL), the Flink configuration, the restart nonce and, for batch jobs only, the
    /// mode. Parallelism, state, upgrade mode, savepoint settings and the schedule are
    /// deliberately left out: they are handled by rescale, suspend/resume, the scheduler or are
    /// record-only. Streaming jobs hash exactly what earlier versions hashed, so their job ids
    /// stay recognised across an upgrade of weir.
    pub fn code_fingerprint(&self) -> [u8; 32] {
        let (args, sql) = match &self.program {
            Program::Jar { args, .. } => (args.as_slice(), None),
            Program::Sql { script, .. } => (&[][..], Some(script.as_str())),
        };
        let canonical = CodeFingerprint {
            args,
            // Only present when there are dependencies: the fingerprint (and so the job ids)
            // of every job without them stays what earlier versions of weir computed.
            dependencies: self
                .dependencies
                .iter()
                .map(Dependency::fingerprint)
                .collect(),
            entry_class: self.entry_class(),
            flink_configuration: &self.flink_configuration,
            jar_sha256: &self.jar().sha256,
            // Only for batch jobs, only when set, only when there are secrets: likewise.
            mode: self.is_batch().then_some(JobMode::Batch.as_str()),
            redeploy_nonce: self.lifecycle.redeploy_nonce,
            restart_nonce: self.restart_nonce,
            secrets: &self.secrets,
            sql,
        };
        let mut hasher = Sha256::new();
        serde_json::to_writer(HashWriter(&mut hasher), &canonical)
            .expect("serializing strings, numbers and maps of strings cannot fail");
        hasher.finalize().into()
    }
}

/// What [`DesiredJob::code_fingerprint`] hashes, as compact JSON. The bytes are a stored
/// contract (they make the job ids weir finds on clusters): the fields are in the byte order of
/// their names, which is the order the earlier `serde_json::Value` rendering wrote them in (a
/// test holds the two to the same bytes), and the optional ones are left out exactly when that
/// rendering left them out. Written straight into the hasher: building a `Value` of every job
/// for it was a tenth of a 10,000-job plan.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CodeFingerprint<'a> {
    args: &'a [CompactString],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<DependencyFingerprint>,
    entry_class: Option<&'a str>,
    flink_configuration: &'a TextMap,
    jar_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    redeploy_nonce: u64,
    restart_nonce: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secrets: &'a BTreeMap<String, Option<String>>,
    sql: Option<&'a str>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Feeds serialized bytes to a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;
    use crate::artifact::maven::Coordinate;

    /// Invariant 5: a job without dependencies keeps the fingerprint (and so the job ids) that
    /// weir computed before dependencies existed. The value was computed before the change.
    #[test]
    fn unchanged_for_jobs_without_dependencies() {
        let job = crate::plan::fixtures::job("a");
        assert_eq!(
            hex::encode(job.code_fingerprint()),
            "f49bf7e249785d3cec9542140d9c116fa7cd3c7174797113771e95998592ffcc"
        );
    }

    /// The fingerprint as weir computed it before it was serialized straight into the hasher:
    /// through a `serde_json::Value`. Kept as the reference the bytes must not leave.
    fn fingerprint_through_value(job: &DesiredJob) -> [u8; 32] {
        let mut canonical = serde_json::json!({
            "jarSha256": job.jar().sha256,
            "entryClass": job.entry_class(),
            "args": match &job.program { Program::Jar { args, .. } => args.clone(), Program::Sql { .. } => vec![] },
            "sql": match &job.program { Program::Sql { script, .. } => Some(script), Program::Jar { .. } => None },
            "flinkConfiguration": job.flink_configuration,
            "restartNonce": job.restart_nonce,
        });
        if !job.dependencies.is_empty() {
            canonical["dependencies"] = job
                .dependencies
                .iter()
                .map(|d| {
                    let (kind, what) = match &d.source {
                        DependencySource::Repo { path } => ("path", path.clone()),
                        DependencySource::Url { url } => ("url", url.clone()),
                        DependencySource::Maven { coordinate, .. } => {
                            ("maven", coordinate.to_string())
                        }
                    };
                    serde_json::json!({ kind: what, "sha256": d.sha256 })
                })
                .collect();
        }
        if !job.secrets.is_empty() {
            canonical["secrets"] = serde_json::json!(job.secrets);
        }
        if job.is_batch() {
            canonical["mode"] = serde_json::Value::from(JobMode::Batch.as_str());
        }
        if job.lifecycle.redeploy_nonce != 0 {
            canonical["redeployNonce"] = job.lifecycle.redeploy_nonce.into();
        }
        Sha256::digest(canonical.to_string().as_bytes()).into()
    }

    /// Invariant 5: every kind of job (jar and SQL, with and without entry class, arguments that
    /// need escaping, dependencies of every source, secrets, batch, both nonces) hashes to the
    /// same bytes as through a `serde_json::Value`.
    #[test]
    fn the_same_bytes_as_through_a_json_value() {
        let plain = crate::plan::fixtures::job("a");
        let mut variants = vec![plain.clone()];
        let mut jar = plain.clone();
        if let Program::Jar {
            args, entry_class, ..
        } = &mut jar.program
        {
            *args = vec![
                "--quote".into(),
                "\"é\\n\u{1}".into(),
                CompactString::default(),
            ];
            *entry_class = None;
        }
        jar.flink_configuration
            .insert("taskmanager.numberOfTaskSlots".into(), "4".into());
        jar.flink_configuration.insert("a\"b".into(), "ü".into());
        jar.restart_nonce = u64::MAX;
        variants.push(jar.clone());
        let mut sql = plain.clone();
        sql.program = Program::Sql {
            script: "INSERT INTO t SELECT * FROM s;\n-- \"quoted\" \t".into(),
            source_file: Some("sql/a.sql".into()),
            runner: plain.jar().clone(),
            runner_class: "weir.SqlRunner".into(),
        };
        variants.push(sql.clone());
        let mut batch = sql.clone();
        batch.mode = JobMode::Batch;
        variants.push(batch);
        let mut nonce = jar.clone();
        nonce.lifecycle.redeploy_nonce = 7;
        variants.push(nonce);
        let mut secret = jar.clone();
        secret
            .secrets
            .insert("DB_PASSWORD".into(), Some("ab".repeat(32)));
        secret.secrets.insert("UNSET".into(), None);
        variants.push(secret);
        let mut deps = sql.clone();
        for (source, sha256) in [
            (
                DependencySource::Url {
                    url: "https://example.com/u.jar".into(),
                },
                Some("ef".repeat(32)),
            ),
            (
                DependencySource::Repo {
                    path: "lib/x.jar".into(),
                },
                None,
            ),
            (
                DependencySource::Maven {
                    coordinate: Coordinate::parse("org.example:udfs:1.0").unwrap(),
                    repositories: Vec::new(),
                },
                Some("01".repeat(32)),
            ),
        ] {
            deps.dependencies.push(Dependency {
                source,
                sha256,
                origin: "jobs/a.yaml:9:7".into(),
            });
        }
        variants.push(deps);
        for (i, job) in variants.iter().enumerate() {
            assert_eq!(
                hex::encode(job.code_fingerprint()),
                hex::encode(fingerprint_through_value(job)),
                "variant {i}"
            );
        }
    }

    #[test]
    fn dependencies_are_part_of_it() {
        let base = crate::plan::fixtures::job("a");
        let mut with = base.clone();
        with.dependencies.push(Dependency {
            source: DependencySource::Maven {
                coordinate: Coordinate::parse("org.example:udfs:1.0").unwrap(),
                repositories: Vec::new(),
            },
            sha256: None,
            origin: "jobs/a.yaml:9:7".into(),
        });
        assert_ne!(with.code_fingerprint(), base.code_fingerprint());
        let mut bumped = with.clone();
        bumped.dependencies[0].source = DependencySource::Maven {
            coordinate: Coordinate::parse("org.example:udfs:1.1").unwrap(),
            repositories: Vec::new(),
        };
        assert_ne!(bumped.code_fingerprint(), with.code_fingerprint());
        // Where the entry is written, and which repositories serve it, is not the code.
        let mut moved = with.clone();
        moved.dependencies[0].origin = "jobs/a.yaml:20:7".into();
        assert_eq!(moved.code_fingerprint(), with.code_fingerprint());
        let mut pinned = with.clone();
        pinned.dependencies[0].sha256 = Some("cd".repeat(32));
        assert_ne!(pinned.code_fingerprint(), with.code_fingerprint());
    }
}
