//! The checks of one file against the rest of the repo, and what they record.
//!
//! A [`Checker`] checks one file (`weir.yaml`, or a job file with what it refers to: its
//! `sqlFile`, its jars) into its own [`Records`]: the files read (access log, digests) and the
//! diagnostics. Job files are checked on the parsing threads, each into its own records, which
//! the loader then takes in file order: a parallel load records exactly what a sequential one
//! would. Only the jar hashes are shared, computed once per jar ([`JarHashes`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::cache::KeptParse;
use super::checks::{ReadFailure, looks_like_uri, read_failure, uri_message};
use super::config_checks::{check_cluster_ref, check_config};
use super::job_parse::{JobRead, ParsedYaml, parse_yaml_text};
use super::program::{JarFields, check_entry_class};
use super::yaml::{Node, Problem, Seg, path};
use super::{
    Context, JobOutcome, MAX_YAML_BYTES, PARALLELISM_RANGE, REPO_CONFIG_FILE, Runner, batch,
    dependencies, environments, lifecycle, schema, variables,
};
use crate::desired::{DesiredJob, Program, SqlOrigin};
use crate::diagnostic::Diagnostic;
use crate::git::{AccessLog, GitError, ReadError, RepoFiles};
use crate::spec::{self, JobFile, RepoConfig};
use crate::text::error_chain;
use crate::textmap::TextMap;

/// What reading and checking files recorded.
#[derive(Default)]
pub(super) struct Records {
    /// The files read (and found missing) and the directory listings.
    pub(super) log: AccessLog,
    /// Path → hex SHA-256 of every file read.
    pub(super) digests: BTreeMap<String, String>,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// Valid jobs that `spec.environments` keeps out of the environment.
    pub(super) jobs_elsewhere: Vec<String>,
}

impl Records {
    /// Records a file read: its blob id in the access log, its SHA-256 in the digests.
    pub(super) fn track(&mut self, path: &str, blob_id: Option<git2::Oid>, sha256: String) {
        self.log.record_file(path, blob_id);
        self.digests.insert(path.to_string(), sha256);
    }

    pub(super) fn emit(&mut self, file: &str, mut problems: Vec<Problem>) {
        problems.sort_by_key(|p| p.pos);
        self.diagnostics
            .extend(problems.into_iter().map(|p| p.into_diagnostic(file)));
    }

    /// Takes in what another checker recorded, after what this one recorded.
    pub(super) fn absorb(&mut self, other: Records) {
        self.log.absorb(other.log);
        self.digests.extend(other.digests);
        self.diagnostics.extend(other.diagnostics);
        self.jobs_elsewhere.extend(other.jobs_elsewhere);
    }
}

/// A repo jar's SHA-256, computed once per load (jobs often share a jar), whichever thread
/// asks first; each asker still records the read in its own [`Records`].
#[derive(Default)]
pub(super) struct JarHashes(Mutex<HashMap<String, Arc<OnceLock<JarHash>>>>);

/// A repo jar's hash, or why it could not be read.
#[derive(Clone)]
pub(super) struct JarHash {
    pub(super) result: Result<String, ReadFailure>,
    /// Its blob id, when read from a Git tree.
    pub(super) blob_id: Option<git2::Oid>,
    /// The jar does not exist (the access log records that too).
    pub(super) missing: bool,
}

impl JarHashes {
    /// The hash of `file`, computed by `hash` unless another checker did.
    pub(super) fn get_or_hash(&self, file: &str, hash: impl FnOnce() -> JarHash) -> JarHash {
        let cell = {
            let mut cells = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            cells.entry(file.to_string()).or_default().clone()
        };
        cell.get_or_init(hash).clone()
    }
}

/// What every checker of one load shares.
pub(super) struct Shared<'a> {
    pub(super) files: &'a (dyn RepoFiles + Sync),
    /// The environment loaded (see [`super::environments`]).
    pub(super) environment: Option<String>,
    pub(super) jar_hashes: JarHashes,
}

/// Checks one file against the repo, recording into its own [`Records`].
pub(super) struct Checker<'a> {
    pub(super) shared: &'a Shared<'a>,
    pub(super) records: Records,
}

/// A job file checked on a parsing thread.
pub(super) struct JobChecked {
    pub(super) outcome: JobOutcome,
    pub(super) records: Records,
    /// Its blob id, parse and SHA-256, for the parse cache (when the load keeps parses).
    pub(super) parse: Option<(git2::Oid, Option<Arc<KeptParse>>, String)>,
}

/// Checks a job file read and parsed by [`super::job_parse::read_job_file`]. `keep_parse`: the
/// load keeps the parse for the next.
pub(super) fn check_job_file(
    shared: &Shared<'_>,
    file: &str,
    read: JobRead,
    ctx: &Context<'_>,
    keep_parse: bool,
) -> JobChecked {
    let mut checker = Checker::new(shared);
    let JobRead {
        content,
        mut parsed,
        kept,
    } = read;
    let (blob_id, kept) = match content {
        Ok(content) => {
            checker
                .records
                .track(file, content.blob_id, content.sha256.clone());
            if let Some(p) = &parsed {
                checker.records.emit(file, p.problems.clone());
            }
            let blob_id = content.blob_id.filter(|_| keep_parse);
            // Packed before the checks take the deserialized file.
            let kept = blob_id.and(kept.or_else(|| {
                let p = parsed.as_ref()?;
                Some(Arc::new(KeptParse::of(p)))
            }));
            (blob_id.map(|id| (id, content.sha256)), kept)
        }
        Err(e) => {
            checker.read_failed(file, e);
            (None, None)
        }
    };
    let job_file = parsed.as_mut().and_then(|p| p.parsed.as_mut()?.1.take());
    let outcome = checker.finish_job(file, parsed.as_ref(), job_file, ctx);
    JobChecked {
        outcome,
        records: checker.records,
        parse: blob_id.map(|(id, sha256)| (id, kept, sha256)),
    }
}

impl<'a> Checker<'a> {
    pub(super) fn new(shared: &'a Shared<'a>) -> Self {
        Checker {
            shared,
            records: Records::default(),
        }
    }

    /// Read a file, recording it in the digest and the access log (the caller reports failures).
    pub(super) fn read_tracked(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, GitError> {
        match self.shared.files.read(path, limit) {
            Ok(content) => {
                let sha256 = hex::encode(Sha256::digest(&content.bytes));
                self.records.track(path, content.blob_id, sha256);
                Ok(content.bytes)
            }
            Err(e) => {
                if e.is_not_found() {
                    self.records.log.record_file(path, None);
                }
                Err(e)
            }
        }
    }

    /// SHA-256 of a repo jar (see [`JarHashes`]).
    pub(super) fn hash_jar(&mut self, file: &str) -> Result<String, ReadFailure> {
        let files = self.shared.files;
        let hashed = self.shared.jar_hashes.get_or_hash(file, || {
            match files.hash(file, super::MAX_JAR_BYTES) {
                Ok(hash) => JarHash {
                    result: Ok(hash.sha256),
                    blob_id: hash.blob_id,
                    missing: false,
                },
                Err(e) => JarHash {
                    missing: e.is_not_found(),
                    result: Err(read_failure(e, file, "jars")),
                    blob_id: None,
                },
            }
        });
        match &hashed.result {
            Ok(sha256) => self.records.track(file, hashed.blob_id, sha256.clone()),
            Err(_) if hashed.missing => self.records.log.record_file(file, None),
            Err(_) => {}
        }
        hashed.result
    }

    /// Records a YAML file that could not be read: in the access log when it does not exist, and
    /// its diagnostic.
    fn read_failed(&mut self, file: &str, e: GitError) {
        if e.is_not_found() {
            self.records.log.record_file(file, None);
        }
        let message = match e.read_error() {
            Some(ReadError::NotFound) if file == REPO_CONFIG_FILE => format!(
                "{REPO_CONFIG_FILE} not found in {}; a jobs repo needs one at its root",
                self.shared.files.origin()
            ),
            _ => error_chain(&read_failure(e, file, "YAML files")),
        };
        self.records
            .diagnostics
            .push(Diagnostic::whole_file(file, message));
    }

    /// Read and parse a YAML file (see [`parse_yaml_text`]). Returns the tree (when the file
    /// parsed) and the value (when it also deserialized without any problem).
    fn parse_yaml_file<T: DeserializeOwned>(
        &mut self,
        file: &str,
        schema: &serde_json::Value,
        what: &str,
    ) -> Option<(Node, Option<T>)> {
        let bytes = match self.shared.files.read(file, MAX_YAML_BYTES) {
            Ok(content) => {
                let sha256 = hex::encode(Sha256::digest(&content.bytes));
                self.records.track(file, content.blob_id, sha256);
                content.bytes
            }
            Err(e) => {
                self.read_failed(file, e);
                return None;
            }
        };
        let ParsedYaml {
            problems, parsed, ..
        } = parse_yaml_text(&bytes, schema, what);
        self.records.emit(file, problems);
        parsed
    }

    /// `weir.yaml`, checked, for the environment loaded; and the SQL runner it configures.
    pub(super) fn load_config(&mut self) -> (Option<RepoConfig>, Runner) {
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
        let Some(config) = environments::select(
            &config,
            &tree,
            self.shared.environment.as_deref(),
            &mut problems,
        ) else {
            self.records.emit(REPO_CONFIG_FILE, problems);
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
        self.records.emit(REPO_CONFIG_FILE, problems);
        (Some(config), runner)
    }

    /// A job file's outcome, from its parse (`None`: unreadable, already reported) and its
    /// deserialized file (`None`: it did not deserialize).
    fn finish_job(
        &mut self,
        file: &str,
        parsed: Option<&ParsedYaml<JobFile>>,
        job_file: Option<JobFile>,
        ctx: &Context<'_>,
    ) -> JobOutcome {
        let Some((tree, _)) = parsed.and_then(|p| p.parsed.as_ref()) else {
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
            self.records.emit(file, problems);
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
        if !environments::job_runs_in(
            &spec,
            ctx.config,
            tree,
            self.shared.environment.as_deref(),
            problems,
        ) {
            return self.runs_elsewhere(metadata.name, problems);
        }
        let config_origins =
            environments::apply_overrides(&mut spec, self.shared.environment.as_deref());
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
            name: metadata.name.into(),
            file: file.into(),
            cluster: spec.cluster.as_str().into(),
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
        self.records.diagnostics.extend(other_files);
        problems.is_empty().then_some(job)
    }

    /// A valid job that `spec.environments` keeps out of the environment loaded: no job here,
    /// but its copies in other environments are this repo's.
    fn runs_elsewhere(&mut self, name: String, problems: &[Problem]) -> Option<DesiredJob> {
        if problems.is_empty() {
            self.records.jobs_elsewhere.push(name);
        }
        None
    }
}

/// `spec.flinkConfiguration` with every value as written in the file.
fn configuration_as_written(
    tree: &Node,
    configuration: &BTreeMap<String, spec::ConfigValue>,
    origins: &BTreeMap<String, Vec<Seg>>,
    problems: &mut Vec<Problem>,
) -> TextMap {
    let mut out = Vec::with_capacity(configuration.len());
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
        out.push((key.clone(), written));
    }
    out.into_iter().collect()
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
fn check_labels(tree: &Node, labels: &TextMap, problems: &mut Vec<Problem>) {
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
                line: pos.line,
                indent: pos.column.saturating_sub(1),
            })
        }
    }
}
