//! Parsed job files by Git blob id, so that a daemon loading commit after commit parses only the
//! job files that changed.
//!
//! Only the parse is cached: the YAML tree (packed, see [`KeptParse`]), the structural problems
//! and the deserialized [`JobFile`], which are a function of the file's bytes alone (the blob id
//! names those bytes).
//! Everything that depends on other files — `weir.yaml` (clusters, the SQL runner, default
//! savepoint directories), a `sqlFile`, a repo jar, duplicate names across files — is checked on
//! every load from the cached parse, exactly as for a fresh one. A change of any of those files
//! therefore changes the outcome as it always did, with nothing to invalidate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use git2::Oid;

use super::job_parse::ParsedYaml;
use super::yaml::{self, Node, Problem};
use crate::spec::JobFile;

/// The parses of the last load's job files, by blob id. Share one between the loads of one
/// repo (e.g. the daemon's successive commits); each load keeps only what it used, so the cache
/// holds at most one repo's job files.
#[derive(Default)]
pub struct ParseCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    parsed: Parses,
    last_hits: usize,
    last_misses: usize,
}

impl ParseCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// (job files reused, job files parsed) by the last load that used this cache.
    pub fn last_load_stats(&self) -> (usize, usize) {
        let e = self.lock();
        (e.last_hits, e.last_misses)
    }

    /// Takes the entries out for one load (concurrent loads then simply miss).
    pub(super) fn begin(&self) -> Generation {
        Generation {
            previous: std::mem::take(&mut self.lock().parsed),
            next: HashMap::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// Keeps what `generation` used, for the next load.
    pub(super) fn finish(&self, generation: Generation) {
        let mut e = self.lock();
        e.parsed = generation.next;
        e.last_hits = generation.hits;
        e.last_misses = generation.misses;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A job file's parse and the SHA-256 of its bytes, by blob id: a load that finds a file's blob
/// id here needs neither its parse nor its bytes. The digest is kept as bytes: a hex string per
/// file was one more small allocation the daemon kept and copied in every load.
pub(super) type Parses = HashMap<Oid, (Arc<KeptParse>, [u8; 32])>;

/// A job file's parse as the cache keeps it between loads: the tree packed into one byte string
/// (as nodes, the trees of 1,000 job files were 3.1 MiB of a daemon's 10 MiB heap in 36,000
/// allocations; BENCHMARKS.md, issue 14, eighth pass), and the deserialized file only when the
/// tree cannot give it again (it repeats the tree's strings). A load unpacks what it uses.
pub(super) struct KeptParse {
    problems: Vec<Problem>,
    /// `None`: the text did not parse.
    tree: Option<Box<[u8]>>,
    /// Boxed: most kept parses hold none, and a `JobFile` is hundreds of bytes.
    value: Option<Box<JobFile>>,
    value_in_tree: bool,
}

impl KeptParse {
    /// What to keep of `parse`.
    pub fn of(parse: &ParsedYaml<JobFile>) -> Self {
        let (tree, value) = match &parse.parsed {
            Some((tree, value)) => (Some(tree.pack()), value.as_ref()),
            None => (None, None),
        };
        KeptParse {
            problems: parse.problems.clone(),
            tree,
            value: value
                .filter(|_| !parse.value_in_tree)
                .map(|v| Box::new(v.clone())),
            value_in_tree: parse.value_in_tree,
        }
    }

    /// Whether it holds a deserialized job file of its own.
    #[cfg(test)]
    pub fn holds_a_job_file(&self) -> bool {
        self.value.is_some()
    }

    /// The parse kept, as parsed; `None` if it cannot be had again (never expected: the file
    /// is then parsed anew).
    pub fn unpack(&self) -> Option<ParsedYaml<JobFile>> {
        let parsed = match &self.tree {
            Some(packed) => {
                let tree = Node::unpack(packed)?;
                let value = if self.value_in_tree {
                    Some(yaml::typed_from_tree(&tree)?)
                } else {
                    self.value.as_deref().cloned()
                };
                Some((tree, value))
            }
            None => None,
        };
        Some(ParsedYaml {
            problems: self.problems.clone(),
            parsed,
            value_in_tree: self.value_in_tree,
        })
    }
}

/// One load's view of the cache: what the previous load parsed (read by the parsing threads),
/// and what this one used.
pub(super) struct Generation {
    previous: Parses,
    next: Parses,
    hits: usize,
    misses: usize,
}

impl Generation {
    /// The parses of the previous load.
    pub fn previous(&self) -> &Parses {
        &self.previous
    }

    /// Keeps the parse of blob `id` (`None`: not parsed) and its SHA-256 for the next load.
    pub fn keep(&mut self, id: Oid, parsed: &Option<Arc<KeptParse>>, sha256: &str) {
        if let Some(known) = self.previous.get(&id) {
            self.hits += 1;
            self.next.insert(id, known.clone());
        } else if let Some(parsed) = parsed {
            let mut digest = [0; 32];
            if hex::decode_to_slice(sha256, &mut digest).is_ok() {
                self.misses += 1;
                self.next.insert(id, (parsed.clone(), digest));
            }
        }
    }
}
