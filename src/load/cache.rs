//! Parsed job files by Git blob id, so that a daemon loading commit after commit parses only the
//! job files that changed.
//!
//! Only the parse is cached: the YAML tree, the structural problems and the deserialized
//! [`JobFile`], which are a function of the file's bytes alone (the blob id names those bytes).
//! Everything that depends on other files — `weir.yaml` (clusters, the SQL runner, default
//! savepoint directories), a `sqlFile`, a repo jar, duplicate names across files — is checked on
//! every load from the cached parse, exactly as for a fresh one. A change of any of those files
//! therefore changes the outcome as it always did, with nothing to invalidate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use git2::Oid;

use super::job_parse::ParsedYaml;
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

/// A job file's parse and the SHA-256 of its bytes (hex), by blob id: a load that finds a
/// file's blob id here needs neither its parse nor its bytes.
pub(super) type Parses = HashMap<Oid, (Arc<ParsedYaml<JobFile>>, String)>;

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
    pub fn keep(&mut self, id: Oid, parsed: &Option<Arc<ParsedYaml<JobFile>>>, sha256: &str) {
        if let Some(known) = self.previous.get(&id) {
            self.hits += 1;
            self.next.insert(id, known.clone());
        } else if let Some(parsed) = parsed {
            self.misses += 1;
            self.next.insert(id, (parsed.clone(), sha256.to_string()));
        }
    }
}
