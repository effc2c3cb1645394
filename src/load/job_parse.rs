//! Reading and parsing job files, on several threads: what a job file's parse depends on is
//! its bytes alone, so this part of a load runs side by side (see [`parallel_map`]).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::MAX_YAML_BYTES;
use super::cache::{self, KeptParse};
use super::shape;
use super::yaml::{self, ParseFailure, Pos, Problem, TypedFrom, Value};
use crate::git::{GitError, RepoFiles};
use crate::spec::JobFile;

/// What a job file must hold, for messages.
pub(super) const JOB_FILE_EXPECTED: &str =
    "one job definition (`apiVersion: weir/v1`, `kind: FlinkJob`, `metadata`, `spec`)";
/// Job files read, then parsed in parallel, at a time.
pub(super) const PARSE_CHUNK: usize = 512;
/// Below this many files a chunk is parsed on the calling thread (threads cost more).
const PARALLEL_FROM: usize = 64;
/// At most this many parsing threads (the calling thread included).
const MAX_PARSE_THREADS: usize = 4;

/// One YAML file's parse: its problems, and the tree (when the text parsed) with the value (when
/// it also deserialized without any problem).
#[derive(Clone)]
pub(super) struct ParsedYaml<T> {
    pub(super) problems: Vec<Problem>,
    pub(super) parsed: Option<(yaml::Node, Option<T>)>,
    /// The value deserialized from the tree, which gives it again (it may have been taken
    /// since). A job file's parse kept in the [`cache`] keeps no such value: it repeats the
    /// tree's strings (1.3 MiB of a daemon's 10 MiB heap at 1,000 jobs; BENCHMARKS.md, issue
    /// 14, eighth pass), and the checks consume a copy of it anyway.
    pub(super) value_in_tree: bool,
}

/// Parse a YAML file's text: UTF-8, one document, a mapping at the top, the structural check
/// against `schema`, then the typed deserialization. Pure: a function of the text only.
pub(super) fn parse_yaml_text<T: DeserializeOwned>(
    bytes: &[u8],
    schema: &serde_json::Value,
    what: &str,
) -> ParsedYaml<T> {
    let failed = |problem: Problem| ParsedYaml {
        problems: vec![problem],
        parsed: None,
        value_in_tree: false,
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
    let (value, typed_from) = match yaml::parse_typed::<T>(text, &tree) {
        Ok((value, from)) => (Some(value), from),
        Err(p) => {
            let duplicate = problems.iter().any(|q| q.pos == p.pos)
                || (!problems.is_empty() && yaml::is_structural(&p));
            if !duplicate {
                problems.push(p);
            }
            (None, TypedFrom::Text)
        }
    };
    let value = if problems.is_empty() { value } else { None };
    ParsedYaml {
        problems,
        value_in_tree: value.is_some() && typed_from == TypedFrom::Tree,
        parsed: Some((tree, value)),
    }
}

/// A job file read and parsed on a worker thread.
pub(super) struct JobRead {
    /// Its blob id and SHA-256, or why it could not be read.
    pub(super) content: Result<ReadContent, GitError>,
    /// `None` when it could not be read.
    pub(super) parsed: Option<ParsedYaml<JobFile>>,
    /// The cache's entry it was unpacked from, if so.
    pub(super) kept: Option<Arc<KeptParse>>,
}

pub(super) struct ReadContent {
    pub(super) blob_id: Option<git2::Oid>,
    pub(super) sha256: String,
}

/// Reads, hashes and parses one job file; the parse comes from `previous` when an earlier load
/// parsed the same blob (then the file is not even read when the source names its blob id).
pub(super) fn read_job_file(
    files: &(dyn RepoFiles + Sync),
    file: &str,
    previous: Option<&cache::Parses>,
    schema: &serde_json::Value,
) -> JobRead {
    let unpacked = |id: git2::Oid| {
        let (kept, sha256) = previous?.get(&id)?;
        Some((kept.unpack()?, kept.clone(), sha256))
    };
    if let Some(id) = files.blob_id(file)
        && let Some((parsed, kept, sha256)) = unpacked(id)
    {
        return JobRead {
            content: Ok(ReadContent {
                blob_id: Some(id),
                sha256: hex::encode(sha256),
            }),
            parsed: Some(parsed),
            kept: Some(kept),
        };
    }
    let content = match files.read(file, MAX_YAML_BYTES) {
        Ok(content) => content,
        Err(e) => {
            return JobRead {
                content: Err(e),
                parsed: None,
                kept: None,
            };
        }
    };
    let (parsed, kept) = match content.blob_id.and_then(unpacked) {
        Some((parsed, kept, _)) => (parsed, Some(kept)),
        None => (
            parse_yaml_text(&content.bytes, schema, JOB_FILE_EXPECTED),
            None,
        ),
    };
    JobRead {
        content: Ok(ReadContent {
            blob_id: content.blob_id,
            sha256: hex::encode(Sha256::digest(&content.bytes)),
        }),
        parsed: Some(parsed),
        kept,
    }
}

/// How many threads read, parse and check job files: one per core, at most
/// [`MAX_PARSE_THREADS`] (the calling thread included).
pub(super) fn parse_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_PARSE_THREADS)
}

/// `f` of every item, in order, on up to `threads` threads (the calling thread included; only
/// from [`PARALLEL_FROM`] items on).
pub(super) fn parallel_map<I: Sync, O: Send>(
    items: &[I],
    threads: usize,
    f: impl Fn(&I) -> O + Sync,
) -> Vec<O> {
    let run = |part: &[I]| -> Vec<O> { part.iter().map(&f).collect() };
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
