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
mod checker;
mod checks;
pub mod clusters;
mod config_checks;
mod dependencies;
mod environments;
mod job_parse;
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

use sha2::{Digest, Sha256};

use crate::desired::{DesiredJob, DesiredState, JarRef, Revision};
use crate::diagnostic::Diagnostic;
use crate::git::{EntryKind, ListedEntry, RepoFiles, RepoSource};
use crate::spec::RepoConfig;
use crate::text::error_chain;

pub use cache::ParseCache;
use checker::{Checker, JarHashes, JobChecked, Records, Shared, check_job_file};
use checks::{env_var_message, is_env_var_name};
use config_checks::check_clusters;
pub use environments::load_every_environment;
use job_parse::{
    PARSE_CHUNK, ParsedYaml, parallel_map, parse_threads, parse_yaml_text, read_job_file,
};
pub use schema::{job_file_schema, repo_config_schema, schema_file_text};
use yaml::{Pos, Problem, path};

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

/// [`load_from`] on `threads` threads (tests: a parallel load records what a sequential one does).
#[cfg(test)]
fn load_on_threads(files: &(dyn RepoFiles + Sync), threads: usize) -> LoadOutcome {
    let mut loader = Loader::new(files);
    loader.threads = threads;
    loader.run().0
}

/// Load the repo from any file source for `environment` (`None`: a repo without environments).
pub fn load_in(files: &(dyn RepoFiles + Sync), environment: Option<&str>) -> LoadOutcome {
    let mut loader = Loader::new(files);
    loader.shared.environment = environment.map(str::to_string);
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
    shared: Shared<'a>,
    records: Records,
    /// Parsed job files of earlier loads, by blob id.
    cache: Option<cache::Generation>,
    /// How many threads read, parse and check job files.
    threads: usize,
}

impl<'a> Loader<'a> {
    fn new(files: &'a (dyn RepoFiles + Sync)) -> Self {
        Loader {
            shared: Shared {
                files,
                environment: crate::identity::environment().map(str::to_string),
                jar_hashes: JarHashes::default(),
            },
            records: Records::default(),
            cache: None,
            threads: parse_threads(),
        }
    }

    fn load_config(&mut self) -> (Option<RepoConfig>, Runner) {
        let mut checker = Checker::new(&self.shared);
        let loaded = checker.load_config();
        self.records.absorb(checker.records);
        loaded
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
        self.records
            .log
            .record_listing(JOBS_DIR, is_job_file, job_files.clone());

        let mut outcomes = self.load_jobs(&job_files, &ctx);
        self.check_duplicate_names(&mut outcomes);

        let mut jobs: Vec<DesiredJob> = outcomes.into_iter().filter_map(|o| o.job).collect();
        // In place: a stable sort's scratch is half the jobs (5 MiB at 10,000). By name, then by
        // file (one job per file), so that the order never depends on how the files were listed.
        jobs.sort_unstable_by(|a, b| (&a.name, &a.file).cmp(&(&b.name, &b.file)));
        // The outcomes' allocation, larger than the jobs need, is kept for the whole run.
        jobs.shrink_to_fit();

        let revision = self.revision(&jobs);
        let mut jobs_elsewhere = std::mem::take(&mut self.records.jobs_elsewhere);
        jobs_elsewhere.sort();
        let environment = self.shared.environment.clone();
        let desired = config.map(|config| DesiredState {
            revision,
            config,
            jobs,
            environment,
            jobs_elsewhere,
        });

        let mut diagnostics = std::mem::take(&mut self.records.diagnostics);
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
        let entries = match self.shared.files.entries(JOBS_DIR) {
            Ok(entries) => entries,
            Err(e) => {
                self.records
                    .diagnostics
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
            self.records.diagnostics.push(Diagnostic::whole_file(
                path.as_str(),
                format!("`{path}` {why}"),
            ));
        }
        job_files
    }

    fn revision(&mut self, jobs: &[DesiredJob]) -> Revision {
        let info = match self.shared.files.revision(&self.records.log) {
            Ok(info) => info,
            Err(e) => {
                self.records.diagnostics.push(Diagnostic::whole_file(
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
        for (path, sha) in &self.records.digests {
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

    /// Every job file's outcome, in order. A job file is read, parsed and checked on one of
    /// several threads, a chunk of files at a time (which bounds the parsed trees held at once):
    /// its parse depends on its bytes alone, and its checks record into their own [`Records`],
    /// which are taken here in file order, so that a load records exactly what a sequential
    /// one would.
    fn load_jobs(&mut self, job_files: &[String], ctx: &Context<'_>) -> Vec<JobOutcome> {
        let schema = schema::cached_job_file_schema();
        let keep_parses = self.cache.is_some();
        let mut outcomes = Vec::with_capacity(job_files.len());
        for chunk in job_files.chunks(PARSE_CHUNK) {
            let previous = self.cache.as_ref().map(cache::Generation::previous);
            let shared = &self.shared;
            let checked = parallel_map(chunk, self.threads, |file| {
                let read = read_job_file(shared.files, file, previous, schema);
                check_job_file(shared, file, read, ctx, keep_parses)
            });
            for JobChecked {
                outcome,
                records,
                parse,
            } in checked
            {
                if let (Some(cache), Some((id, parsed, sha256))) = (self.cache.as_mut(), parse) {
                    cache.keep(id, &parsed, &sha256);
                }
                self.records.absorb(records);
                outcomes.push(outcome);
            }
        }
        outcomes
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
            self.records.emit(&file, vec![problem]);
        }
    }
}
