//! Loading a jobs repo (`weir.yaml` + `jobs/**/*.yaml`) into a [`DesiredState`].
//!
//! The loader never stops at the first problem: it reads `weir.yaml`, then every job file, and
//! reports every problem it finds as a [`Diagnostic`] (`file:line:col: field: message`). Valid jobs
//! are kept even when other files are invalid, so that callers can decide what to do with a
//! partially valid repo (the files that produced errors are listed in
//! [`LoadOutcome::invalid_files`]: a job whose file is invalid must not be treated as deleted).
//!
//! Parsing uses serde-saphyr with tight budgets (`yaml::options`) after a size check, so YAML
//! bombs, deep nesting and huge files produce a diagnostic rather than a hang or an OOM.
//! Positions come from a tree of the document built with serde-saphyr's `Spanned` (module
//! `yaml`); structural problems (unknown and missing fields, wrong shapes, bad enum values) are
//! found all at once by a walk over that tree guided by the generated JSON Schema (module
//! `shape`), then the typed deserialization reports what only serde can see.

mod batch;
mod cache;
mod checks;
pub mod clusters;
mod config_checks;
mod dependencies;
mod environments;
mod lifecycle;
mod notify;
mod program;
mod schema;
mod shape;
mod variables;
mod yaml;

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::desired::{DesiredJob, DesiredState, JarRef, Program, Revision, SqlOrigin};
use crate::diagnostic::Diagnostic;
use crate::git::{AccessLog, EntryKind, GitError, ListedEntry, ReadError, RepoFiles, RepoSource};
use crate::spec::{self, ClusterConfig, JobFile, RepoConfig};
use crate::text::error_chain;

pub use cache::ParseCache;
use checks::{
    ReadFailure, check_url, env_var_message, is_env_var_name, looks_like_uri, read_failure,
    uri_message,
};
use config_checks::{check_cluster_ref, check_clusters, check_config};
pub use environments::load_every_environment;
use program::{JarFields, check_entry_class};
pub use schema::{job_file_schema, repo_config_schema, schema_file_text};
use yaml::{Node, ParseFailure, Pos, Problem, Seg, Value, path, suggest};

/// The repo configuration file, at the root of the jobs repo.
pub const REPO_CONFIG_FILE: &str = "weir.yaml";
/// The directory holding job definitions (any depth, `*.yaml` / `*.yml`).
pub const JOBS_DIR: &str = "jobs";
/// Largest accepted YAML file (`weir.yaml`, job files).
pub const MAX_YAML_BYTES: u64 = 1024 * 1024;
/// Largest accepted `sqlFile`.
pub const MAX_SQL_BYTES: u64 = 4 * 1024 * 1024;
/// Largest accepted repo jar.
pub const MAX_JAR_BYTES: u64 = 1024 * 1024 * 1024;
/// Accepted parallelism.
pub const PARALLELISM_RANGE: std::ops::RangeInclusive<u32> = 1..=32768;

/// Everything a load produced.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadOutcome {
    /// The desired state with every valid job; `None` only when `weir.yaml` itself could not be
    /// read or deserialized.
    pub desired: Option<DesiredState>,
    /// Every problem found, `weir.yaml` first, then by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
    /// Repo-relative paths of the files with at least one diagnostic, sorted. A job file listed
    /// here produced no job in `desired`.
    pub invalid_files: Vec<String>,
}

impl LoadOutcome {
    /// True when no problem was found.
    pub fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// Whether `path` (repo-relative) is a job definition file: under `jobs/`, named `*.yaml` or
/// `*.yml`, with no hidden (`.`-prefixed) component (editor lock and backup files).
pub fn is_job_file(path: &str) -> bool {
    path.starts_with("jobs/")
        && (path.ends_with(".yaml") || path.ends_with(".yml"))
        && !path.split('/').any(|c| c.starts_with('.'))
}

/// Load the repo from a working tree or a Git revision.
pub fn load_repo(source: &RepoSource) -> LoadOutcome {
    with_secrets_known(load_from(source))
}

/// The definitions' secret values are known secrets of the process from now on (a program that
/// prints its password bare is scrubbed too).
fn with_secrets_known(outcome: LoadOutcome) -> LoadOutcome {
    let values = outcome.desired.iter().flat_map(|d| &d.jobs);
    crate::redact::register_secrets(values.flat_map(DesiredJob::secret_values));
    outcome
}

/// Like [`load_repo`], reusing the parses of job files whose blob a previous load with `cache`
/// parsed already (see [`ParseCache`]). The outcome is the same as [`load_repo`]'s.
pub fn load_repo_cached(source: &RepoSource, cache: &ParseCache) -> LoadOutcome {
    let generation = cache.begin();
    let mut loader = Loader::new(source);
    loader.cache = Some(generation);
    let (outcome, generation) = loader.run();
    if let Some(generation) = generation {
        cache.finish(generation);
    }
    with_secrets_known(outcome)
}

/// Load the repo from any file source (e.g. [`crate::git::MemoryFiles`] in tests), for the
/// environment of the process ([`crate::identity::environment`]).
pub fn load_from(files: &(dyn RepoFiles + Sync)) -> LoadOutcome {
    Loader::new(files).run().0
}

/// Load the repo from any file source for `environment` (`None`: a repo without environments).
pub fn load_in(files: &(dyn RepoFiles + Sync), environment: Option<&str>) -> LoadOutcome {
    let mut loader = Loader::new(files);
    loader.environment = environment.map(str::to_string);
    with_secrets_known(loader.run().0)
}

/// The environments `weir.yaml` of `files` defines (none when it does not load).
pub fn environments_of(files: &(dyn RepoFiles + Sync)) -> Vec<String> {
    let Ok(content) = files.read(REPO_CONFIG_FILE, MAX_YAML_BYTES) else {
        return Vec::new();
    };
    let parsed: ParsedYaml<RepoConfig> = parse_yaml_text(
        &content.bytes,
        schema::cached_repo_config_schema(),
        "the repo configuration",
    );
    parsed
        .parsed
        .and_then(|(_, config)| config)
        .map(|c| c.environments.into_keys().collect())
        .unwrap_or_default()
}

/// The SQL runner, as resolved from `weir.yaml`.
enum Runner {
    /// `weir.yaml` is unusable: SQL jobs cannot be checked against it.
    Unknown,
    NotConfigured,
    Invalid,
    Ready {
        jar: JarRef,
        class: String,
    },
}

/// What the job checks need from `weir.yaml`.
struct Context<'c> {
    config: Option<&'c RepoConfig>,
    runner: Runner,
    /// The variables (of the environment), as text.
    variables: BTreeMap<String, String>,
}

/// One job file's result.
struct JobOutcome {
    file: String,
    /// `metadata.name` and its position, when present (even if the file is otherwise invalid).
    name: Option<(String, Pos)>,
    job: Option<DesiredJob>,
}

struct Loader<'a> {
    files: &'a (dyn RepoFiles + Sync),
    log: AccessLog,
    /// Path → hex SHA-256 of every file read.
    digests: BTreeMap<String, String>,
    diagnostics: Vec<Diagnostic>,
    /// Repo jar path → its SHA-256, or why it could not be read.
    jar_hashes: BTreeMap<String, Result<String, ReadFailure>>,
    /// Parsed job files of earlier loads, by blob id.
    cache: Option<cache::Generation>,
    /// The environment loaded (see [`environments`]).
    environment: Option<String>,
    /// Valid jobs that `spec.environments` keeps out of the environment.
    jobs_elsewhere: Vec<String>,
}

impl<'a> Loader<'a> {
    fn new(files: &'a (dyn RepoFiles + Sync)) -> Self {
        Loader {
            files,
            log: AccessLog::new(),
            digests: BTreeMap::new(),
            diagnostics: Vec::new(),
            jar_hashes: BTreeMap::new(),
            cache: None,
            environment: crate::identity::environment().map(str::to_string),
            jobs_elsewhere: Vec::new(),
        }
    }

    /// The outcome, and the cache generation to keep.
    fn run(mut self) -> (LoadOutcome, Option<cache::Generation>) {
        let (config, runner) = self.load_config();
        let variables = config
            .as_ref()
            .map(|c| variables::as_text(&c.variables))
            .unwrap_or_default();
        let ctx = Context {
            config: config.as_ref(),
            runner,
            variables,
        };

        let job_files = self.list_job_files();
        self.log
            .record_listing(JOBS_DIR, is_job_file, job_files.clone());

        let mut outcomes = self.load_jobs(&job_files, &ctx);
        self.check_duplicate_names(&mut outcomes);

        let mut jobs: Vec<DesiredJob> = outcomes.into_iter().filter_map(|o| o.job).collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));

        let revision = self.revision(&jobs);
        let mut jobs_elsewhere = std::mem::take(&mut self.jobs_elsewhere);
        jobs_elsewhere.sort();
        let environment = self.environment.clone();
        let desired = config.map(|config| DesiredState {
            revision,
            config,
            jobs,
            environment,
            jobs_elsewhere,
        });

        let mut diagnostics = std::mem::take(&mut self.diagnostics);
        diagnostics.sort_by(|a, b| {
            (a.file != REPO_CONFIG_FILE, &a.file, a.line, a.column).cmp(&(
                b.file != REPO_CONFIG_FILE,
                &b.file,
                b.line,
                b.column,
            ))
        });
        let mut invalid_files: Vec<String> = diagnostics.iter().map(|d| d.file.clone()).collect();
        invalid_files.sort();
        invalid_files.dedup();
        let outcome = LoadOutcome {
            desired,
            diagnostics,
            invalid_files,
        };
        (outcome, self.cache)
    }

    /// The job files under `jobs/`. Every entry that could hide a job definition and cannot be
    /// read (a symlink, a FIFO, a directory named like a job file, an unreadable directory) is a
    /// diagnostic: its file is then invalid, which keeps prune from deleting the job it defines.
    fn list_job_files(&mut self) -> Vec<String> {
        let entries = match self.files.entries(JOBS_DIR) {
            Ok(entries) => entries,
            Err(e) => {
                self.diagnostics
                    .push(Diagnostic::whole_file(JOBS_DIR, error_chain(&e)));
                return Vec::new();
            }
        };
        let mut job_files = Vec::new();
        for ListedEntry { path, kind } in entries {
            if path.split('/').any(|c| c.starts_with('.')) {
                continue; // hidden: editor lock files (often symlinks), backups
            }
            let why = match kind {
                EntryKind::File if is_job_file(&path) => {
                    job_files.push(path);
                    continue;
                }
                // Reading it reports the symlink.
                EntryKind::Symlink if is_job_file(&path) => {
                    job_files.push(path);
                    continue;
                }
                EntryKind::File => continue,
                EntryKind::Directory if !is_job_file(&path) => continue,
                EntryKind::Symlink => {
                    "is a symbolic link; weir does not follow symbolic links (job files behind \
                     it would be skipped)"
                        .to_string()
                }
                EntryKind::Directory => "is a directory, not a job file".to_string(),
                EntryKind::Special(why) => why.to_string(),
                EntryKind::Unreadable(why) => format!("cannot be read: {why}"),
            };
            self.diagnostics.push(Diagnostic::whole_file(
                path.as_str(),
                format!("`{path}` {why}"),
            ));
        }
        job_files
    }

    fn revision(&mut self, jobs: &[DesiredJob]) -> Revision {
        let info = match self.files.revision(&self.log) {
            Ok(info) => info,
            Err(e) => {
                self.diagnostics.push(Diagnostic::whole_file(
                    REPO_CONFIG_FILE,
                    format!("cannot determine the Git revision: {}", error_chain(&e)),
                ));
                crate::git::RevisionInfo {
                    commit: None,
                    dirty: false,
                }
            }
        };
        let mut hasher = Sha256::new();
        for (path, sha) in &self.digests {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(sha.as_bytes());
            hasher.update([b'\n']);
        }
        // The digests of `${env:…}` secrets too, so that a plan saved before one changed is
        // stale. Only when there are any: the digests of repos without secrets stay as they were.
        for job in jobs {
            for (name, digest) in &job.secrets {
                let digest = digest.as_deref().unwrap_or("unset");
                hasher.update(format!("secret\0{}\0{name}\0{digest}\n", job.name).as_bytes());
            }
        }
        Revision {
            commit: info.commit,
            dirty: info.dirty,
            digest: hex::encode(hasher.finalize()),
        }
    }

    fn emit(&mut self, file: &str, mut problems: Vec<Problem>) {
        problems.sort_by_key(|p| p.pos);
        self.diagnostics
            .extend(problems.into_iter().map(|p| p.into_diagnostic(file)));
    }

    /// Read a file, recording it in the digest and the access log (the caller reports failures).
    fn read_tracked(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, GitError> {
        match self.files.read(path, limit) {
            Ok(content) => {
                let sha256 = hex::encode(Sha256::digest(&content.bytes));
                self.track(path, content.blob_id, sha256);
                Ok(content.bytes)
            }
            Err(e) => {
                if e.is_not_found() {
                    self.log.record_file(path, None);
                }
                Err(e)
            }
        }
    }

    /// Records a file read: its blob id in the access log, its SHA-256 in the digests.
    fn track(&mut self, path: &str, blob_id: Option<git2::Oid>, sha256: String) {
        self.log.record_file(path, blob_id);
        self.digests.insert(path.to_string(), sha256);
    }

    /// Records a YAML file that could not be read: in the access log when it does not exist, and
    /// its diagnostic.
    fn read_failed(&mut self, file: &str, e: GitError) {
        if e.is_not_found() {
            self.log.record_file(file, None);
        }
        let message = match e.read_error() {
            Some(ReadError::NotFound) if file == REPO_CONFIG_FILE => format!(
                "{REPO_CONFIG_FILE} not found in {}; a jobs repo needs one at its root",
                self.files.origin()
            ),
            _ => error_chain(&read_failure(e, file, "YAML files")),
        };
        self.diagnostics.push(Diagnostic::whole_file(file, message));
    }

    /// Read and parse a YAML file (see [`parse_yaml_text`]). Returns the tree (when the file
    /// parsed) and the value (when it also deserialized without any problem).
    fn parse_yaml_file<T: DeserializeOwned>(
        &mut self,
        file: &str,
        schema: &serde_json::Value,
        what: &str,
    ) -> Option<(Node, Option<T>)> {
        let bytes = match self.files.read(file, MAX_YAML_BYTES) {
            Ok(content) => {
                let sha256 = hex::encode(Sha256::digest(&content.bytes));
                self.track(file, content.blob_id, sha256);
                content.bytes
            }
            Err(e) => {
                self.read_failed(file, e);
                return None;
            }
        };
        let ParsedYaml { problems, parsed } = parse_yaml_text(&bytes, schema, what);
        self.emit(file, problems);
        parsed
    }

    fn load_config(&mut self) -> (Option<RepoConfig>, Runner) {
        let schema = schema::cached_repo_config_schema();
        let Some((tree, config)) = self.parse_yaml_file::<RepoConfig>(
            REPO_CONFIG_FILE,
            schema,
            "the repo configuration with `clusters`",
        ) else {
            return (None, Runner::Unknown);
        };
        let Some(config) = config else {
            return (None, Runner::Unknown);
        };
        let mut problems = Vec::new();
        check_config(&config, &tree, &mut problems);
        dependencies::check_maven_repositories(&config.maven_repositories, &tree, &mut problems);
        environments::check(&config, &tree, &mut problems);
        let Some(config) =
            environments::select(&config, &tree, self.environment.as_deref(), &mut problems)
        else {
            self.emit(REPO_CONFIG_FILE, problems);
            return (None, Runner::Unknown);
        };
        let runner = match &config.sql_runner {
            None => Runner::NotConfigured,
            Some(r) => {
                let before = problems.len();
                let jar = self.resolve_jar(
                    &tree,
                    JarFields {
                        base: path(&["sqlRunner"]),
                        path_key: "jar",
                        path: r.jar.as_deref(),
                        url: r.url.as_deref(),
                        sha256: r.sha256.as_deref(),
                    },
                    &mut problems,
                );
                check_entry_class(
                    &tree,
                    &["sqlRunner"],
                    r.entry_class.as_deref(),
                    &mut problems,
                );
                match jar {
                    Some(jar) if problems.len() == before => Runner::Ready {
                        jar,
                        class: r
                            .entry_class
                            .clone()
                            .unwrap_or_else(|| spec::DEFAULT_SQL_RUNNER_CLASS.to_string()),
                    },
                    _ => Runner::Invalid,
                }
            }
        };
        self.emit(REPO_CONFIG_FILE, problems);
        (Some(config), runner)
    }

    /// Every job file's outcome, in order. Reading, hashing and parsing a job file depend on
    /// nothing but the file and are nearly all of a load's cost: they run on several threads, a
    /// chunk of files at a time (which bounds the parsed trees held at once). What the loader
    /// records (access log, digests, diagnostics) and the checks against the rest of the repo
    /// then run here, file by file in order, exactly as for a sequential load.
    fn load_jobs(&mut self, job_files: &[String], ctx: &Context<'_>) -> Vec<JobOutcome> {
        let schema = schema::cached_job_file_schema();
        let files = self.files;
        let mut outcomes = Vec::with_capacity(job_files.len());
        for chunk in job_files.chunks(PARSE_CHUNK) {
            let previous = self.cache.as_ref().map(cache::Generation::previous);
            let read = parallel_map(chunk, |file| read_job_file(files, file, previous, schema));
            for (file, JobRead { content, parsed }) in chunk.iter().zip(read) {
                let parsed = match content {
                    Ok(content) => {
                        if let (Some(cache), Some(id)) = (self.cache.as_mut(), content.blob_id) {
                            cache.keep(id, &parsed, &content.sha256);
                        }
                        self.track(file, content.blob_id, content.sha256);
                        parsed.inspect(|p| self.emit(file, p.problems.clone()))
                    }
                    Err(e) => {
                        self.read_failed(file, e);
                        None
                    }
                };
                outcomes.push(self.finish_job(file, parsed, ctx));
            }
        }
        outcomes
    }

    /// A job file's outcome, from its parse (`None`: unreadable, already reported). The parse
    /// may be shared with the cache: only the deserialized file is then copied (the checks
    /// consume it), never the tree.
    fn finish_job(
        &mut self,
        file: &str,
        parsed: Option<Arc<ParsedYaml<JobFile>>>,
        ctx: &Context<'_>,
    ) -> JobOutcome {
        let mut parsed = parsed;
        let job_file = parsed.as_mut().and_then(|p| match Arc::get_mut(p) {
            Some(owned) => owned.parsed.as_mut().and_then(|(_, jf)| jf.take()),
            None => p.parsed.as_ref().and_then(|(_, jf)| jf.clone()),
        });
        let Some((tree, _)) = parsed.as_deref().and_then(|p| p.parsed.as_ref()) else {
            return JobOutcome {
                file: file.to_string(),
                name: None,
                job: None,
            };
        };
        let name_path = path(&["metadata", "name"]);
        let name = tree
            .get(&name_path)
            .and_then(|n| Some((n.value.scalar_text()?, n.pos)));
        let job = job_file.and_then(|jf| {
            let mut problems = Vec::new();
            let job = self.check_job(file, tree, jf, ctx, &mut problems);
            self.emit(file, problems);
            job
        });
        JobOutcome {
            file: file.to_string(),
            name,
            job,
        }
    }

    /// The semantic checks of a deserialized job file; the job when there was no problem.
    fn check_job(
        &mut self,
        file: &str,
        tree: &Node,
        jf: JobFile,
        ctx: &Context<'_>,
        problems: &mut Vec<Problem>,
    ) -> Option<DesiredJob> {
        let JobFile {
            metadata, mut spec, ..
        } = jf;
        let environment = self.environment.clone();
        if !environments::job_runs_in(&spec, ctx.config, tree, environment.as_deref(), problems) {
            return self.runs_elsewhere(metadata.name, problems);
        }
        let config_origins = environments::apply_overrides(&mut spec, environment.as_deref());
        check_name_and_parallelism(tree, &metadata.name, spec.parallelism, problems);
        check_labels(tree, &metadata.labels, problems);

        let cluster = ctx
            .config
            .and_then(|config| check_cluster_ref(config, tree, &spec.cluster, problems));

        let program = self.resolve_program(tree, &spec, &ctx.runner, problems);
        let dependencies = self.resolve_dependencies(file, tree, &spec, ctx.config, problems);

        let flink_configuration =
            configuration_as_written(tree, &spec.flink_configuration, &config_origins, problems);
        let schedule = batch::check_batch(tree, &spec, problems);

        let sp = &spec.savepoint;
        check_savepoint_paths(tree, sp, problems);

        let lifecycle = lifecycle::resolve_job(sp, ctx.config, tree, problems);

        if !problems.is_empty() {
            return None;
        }
        let savepoint_dir = sp
            .directory
            .clone()
            .or_else(|| cluster.and_then(|c| c.savepoint_dir.clone()));
        let mut job = DesiredJob {
            name: metadata.name,
            file: file.to_string(),
            cluster: spec.cluster.clone(),
            state: spec.state,
            upgrade_mode: spec.upgrade_mode,
            parallelism: spec.parallelism,
            sql_origin: sql_origin(file, tree, program.as_ref()),
            program: program?,
            flink_configuration,
            initial_savepoint: sp.initial_path.clone(),
            allow_non_restored_state: sp.allow_non_restored_state,
            savepoint_dir,
            restart_nonce: spec.restart_nonce,
            labels: metadata.labels,
            preflight: spec.preflight,
            dependencies,
            secrets: BTreeMap::new(),
            mode: spec.mode,
            schedule,
            rollback: crate::desired::Rollback::resolve(
                spec.rollback.as_ref(),
                ctx.config.and_then(|c| c.rollback.as_ref()),
            ),
            lifecycle,
        };
        let mut other_files = Vec::new();
        let (origins, vars) = (&config_origins, &ctx.variables);
        variables::resolve_job(&mut job, tree, origins, vars, problems, &mut other_files);
        self.diagnostics.extend(other_files);
        problems.is_empty().then_some(job)
    }

    /// A valid job that `spec.environments` keeps out of the environment loaded: no job here,
    /// but its copies in other environments are this repo's.
    fn runs_elsewhere(&mut self, name: String, problems: &[Problem]) -> Option<DesiredJob> {
        if problems.is_empty() {
            self.jobs_elsewhere.push(name);
        }
        None
    }

    /// Jobs sharing a `metadata.name` are all invalid; each file gets a diagnostic naming every
    /// file involved.
    fn check_duplicate_names(&mut self, outcomes: &mut [JobOutcome]) {
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, o) in outcomes.iter().enumerate() {
            if let Some((name, _)) = &o.name {
                by_name.entry(name.as_str()).or_default().push(i);
            }
        }
        let mut problems: Vec<(usize, Problem)> = Vec::new();
        for (name, indices) in &by_name {
            if indices.len() < 2 {
                continue;
            }
            let files: Vec<&str> = indices.iter().map(|&i| outcomes[i].file.as_str()).collect();
            let listed = match files.as_slice() {
                [a, b] => format!("{a} and {b}"),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
                [] => String::new(),
            };
            for &i in indices {
                let pos = outcomes[i]
                    .name
                    .as_ref()
                    .map_or(Pos::START, |(_, pos)| *pos);
                problems.push((
                    i,
                    Problem::new(
                        pos,
                        path(&["metadata", "name"]),
                        format!("duplicate job name `{name}`: defined in {listed}"),
                    ),
                ));
            }
        }
        for (i, problem) in problems {
            let file = outcomes[i].file.clone();
            outcomes[i].job = None;
            self.emit(&file, vec![problem]);
        }
    }
}

/// What a job file must hold, for messages.
const JOB_FILE_EXPECTED: &str =
    "one job definition (`apiVersion: weir/v1`, `kind: FlinkJob`, `metadata`, `spec`)";
/// Job files read, then parsed in parallel, at a time.
const PARSE_CHUNK: usize = 512;
/// Below this many files a chunk is parsed on the calling thread (threads cost more).
const PARALLEL_FROM: usize = 64;
/// At most this many parsing threads (the calling thread included).
const MAX_PARSE_THREADS: usize = 4;

/// One YAML file's parse: its problems, and the tree (when the text parsed) with the value (when
/// it also deserialized without any problem).
#[derive(Clone)]
struct ParsedYaml<T> {
    problems: Vec<Problem>,
    parsed: Option<(Node, Option<T>)>,
}

/// Parse a YAML file's text: UTF-8, one document, a mapping at the top, the structural check
/// against `schema`, then the typed deserialization. Pure: a function of the text only.
fn parse_yaml_text<T: DeserializeOwned>(
    bytes: &[u8],
    schema: &serde_json::Value,
    what: &str,
) -> ParsedYaml<T> {
    let failed = |problem: Problem| ParsedYaml {
        problems: vec![problem],
        parsed: None,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let pos = Pos::of_byte_offset(bytes, e.valid_up_to());
            return failed(Problem::new(pos, Vec::new(), "file is not valid UTF-8"));
        }
    };
    let tree = match yaml::parse_tree(text) {
        Ok(tree) => tree,
        Err(ParseFailure::Empty) => {
            return failed(Problem::new(
                Pos::START,
                Vec::new(),
                format!("empty file; expected {what}"),
            ));
        }
        Err(ParseFailure::MultipleDocuments(pos)) => {
            return failed(Problem::new(
                pos,
                Vec::new(),
                format!(
                    "more than one YAML document (`---`); the file must hold exactly one: {what}"
                ),
            ));
        }
        Err(ParseFailure::Invalid(problem)) => return failed(problem),
    };
    if !matches!(tree.value, Value::Map(_)) {
        let message = format!(
            "expected a mapping at the top level ({what}), found {}",
            tree.value.describe()
        );
        return failed(Problem::new(tree.pos, Vec::new(), message));
    }
    let mut problems = yaml::duplicate_keys(&tree);
    problems.extend(shape::check(schema, &tree));
    let value = match yaml::parse_typed::<T>(text, &tree) {
        Ok(value) => Some(value),
        Err(p) => {
            let duplicate = problems.iter().any(|q| q.pos == p.pos)
                || (!problems.is_empty() && yaml::is_structural(&p));
            if !duplicate {
                problems.push(p);
            }
            None
        }
    };
    let value = if problems.is_empty() { value } else { None };
    ParsedYaml {
        problems,
        parsed: Some((tree, value)),
    }
}

/// A job file read and parsed on a worker thread.
struct JobRead {
    /// Its blob id and SHA-256, or why it could not be read.
    content: Result<ReadContent, GitError>,
    /// `None` when it could not be read.
    parsed: Option<Arc<ParsedYaml<JobFile>>>,
}

struct ReadContent {
    blob_id: Option<git2::Oid>,
    sha256: String,
}

/// Reads, hashes and parses one job file; the parse comes from `previous` when an earlier load
/// parsed the same blob (then the file is not even read when the source names its blob id).
fn read_job_file(
    files: &(dyn RepoFiles + Sync),
    file: &str,
    previous: Option<&cache::Parses>,
    schema: &serde_json::Value,
) -> JobRead {
    if let Some(previous) = previous
        && let Some(id) = files.blob_id(file)
        && let Some((parsed, sha256)) = previous.get(&id)
    {
        return JobRead {
            content: Ok(ReadContent {
                blob_id: Some(id),
                sha256: sha256.clone(),
            }),
            parsed: Some(parsed.clone()),
        };
    }
    let content = match files.read(file, MAX_YAML_BYTES) {
        Ok(content) => content,
        Err(e) => {
            return JobRead {
                content: Err(e),
                parsed: None,
            };
        }
    };
    let known = content
        .blob_id
        .and_then(|id| previous?.get(&id))
        .map(|(parsed, _)| parsed.clone());
    let parsed = known
        .unwrap_or_else(|| Arc::new(parse_yaml_text(&content.bytes, schema, JOB_FILE_EXPECTED)));
    JobRead {
        content: Ok(ReadContent {
            blob_id: content.blob_id,
            sha256: hex::encode(Sha256::digest(&content.bytes)),
        }),
        parsed: Some(parsed),
    }
}

/// `f` of every item, in order, on up to [`MAX_PARSE_THREADS`] threads (the calling thread
/// included; only from [`PARALLEL_FROM`] items on).
fn parallel_map<I: Sync, O: Send>(items: &[I], f: impl Fn(&I) -> O + Sync) -> Vec<O> {
    let run = |part: &[I]| -> Vec<O> { part.iter().map(&f).collect() };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_PARSE_THREADS);
    if threads <= 1 || items.len() < PARALLEL_FROM {
        return run(items);
    }
    let mut parts = items.chunks(items.len().div_ceil(threads));
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let spawned: Vec<_> = parts
            .map(|part| {
                let handle = std::thread::Builder::new()
                    // Like the main thread's: parsing recurses as deep as the YAML nests.
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, move || run(part));
                (part, handle)
            })
            .collect();
        let mut out = run(first);
        for (part, handle) in spawned {
            match handle {
                Ok(handle) => match handle.join() {
                    Ok(done) => out.extend(done),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to be had: do that part here.
                Err(_) => out.extend(run(part)),
            }
        }
        out
    })
}

/// `spec.flinkConfiguration` with every value as written in the file.
fn configuration_as_written(
    tree: &Node,
    configuration: &BTreeMap<String, spec::ConfigValue>,
    origins: &BTreeMap<String, Vec<Seg>>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in configuration {
        if key.trim().is_empty() {
            let p = label_path(&["spec", "flinkConfiguration"], key);
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                "configuration keys must not be empty",
            ));
        }
        // As written in the file: `0x1F`, `1.0`, `yes` and 20-digit numbers reach Flink
        // unchanged (the typed value is the resolved one).
        let at = origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| label_path(&["spec", "flinkConfiguration"], key));
        let written = tree
            .get(&at)
            .and_then(Node::scalar_as_written)
            .unwrap_or_else(|| value.to_string());
        out.insert(key.clone(), written);
    }
    out
}

/// `metadata.name` is a valid job name and `spec.parallelism` is in range.
fn check_name_and_parallelism(
    tree: &Node,
    name: &str,
    parallelism: u32,
    problems: &mut Vec<Problem>,
) {
    let name_path = path(&["metadata", "name"]);
    if let Err(why) = spec::check_job_name(name) {
        problems.push(Problem::new(
            tree.value_pos(&name_path),
            name_path,
            format!("invalid job name `{name}`: {why}"),
        ));
    }
    if !PARALLELISM_RANGE.contains(&parallelism) {
        let p = path(&["spec", "parallelism"]);
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            format!(
                "must be between {} and {}, found {parallelism}",
                PARALLELISM_RANGE.start(),
                PARALLELISM_RANGE.end(),
            ),
        ));
    }
}

/// `spec.savepoint.directory` is a URI and `initialPath` is not blank.
fn check_savepoint_paths(tree: &Node, sp: &spec::SavepointSpec, problems: &mut Vec<Problem>) {
    if let Some(dir) = &sp.directory {
        let p = path(&["spec", "savepoint", "directory"]);
        if !looks_like_uri(dir) {
            problems.push(Problem::new(tree.value_pos(&p), p, uri_message(dir)));
        }
    }
    if let Some(initial) = &sp.initial_path
        && initial.trim().is_empty()
    {
        let p = path(&["spec", "savepoint", "initialPath"]);
        problems.push(Problem::new(tree.value_pos(&p), p, "must not be empty"));
    }
}

/// Label keys must not be empty.
fn check_labels(tree: &Node, labels: &BTreeMap<String, String>, problems: &mut Vec<Problem>) {
    for key in labels.keys() {
        if key.trim().is_empty() {
            let p = label_path(&["metadata", "labels"], key);
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                "label keys must not be empty",
            ));
        }
    }
}

/// A path ending in a map key (cluster name, label, configuration key).
fn label_path(base: &[&str], key: &str) -> Vec<Seg> {
    let mut p = path(base);
    p.push(Seg::Key(key.to_string()));
    p
}

/// Where line 1 of an SQL job's script is: line 1 of its `sqlFile`, or where the block of an
/// inline `sql:` starts in the job file (the tree's position of a block scalar is its first
/// content character, so its column gives the block's indentation).
fn sql_origin(file: &str, tree: &Node, program: Option<&Program>) -> Option<SqlOrigin> {
    match program? {
        Program::Jar { .. } => None,
        Program::Sql {
            source_file: Some(script),
            ..
        } => Some(SqlOrigin {
            file: script.clone(),
            line: 1,
            indent: 0,
        }),
        Program::Sql {
            source_file: None, ..
        } => {
            let pos = tree.value_pos(&path(&["spec", "sql"]));
            Some(SqlOrigin {
                file: file.to_string(),
                line: u32::try_from(pos.line).unwrap_or(u32::MAX),
                indent: u32::try_from(pos.column.saturating_sub(1)).unwrap_or(0),
            })
        }
    }
}
