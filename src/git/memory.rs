//! An in-memory repo, for tests and for loading text that is not in a repo.

use std::collections::BTreeMap;

use super::{
    AccessLog, EntryKind, FileContent, GitError, ListedEntry, ReadError, RepoFiles, RevisionInfo,
    check_relative,
};

/// An in-memory repo, for tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    pub files: BTreeMap<String, Vec<u8>>,
    /// Reported as the revision's commit (never dirty).
    pub commit: Option<String>,
}

impl MemoryFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a file.
    pub fn with(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.to_string(), content.into());
        self
    }
}

impl RepoFiles for MemoryFiles {
    fn origin(&self) -> String {
        "in-memory repo".to_string()
    }

    fn entries(&self, dir: &str) -> Result<Vec<ListedEntry>, GitError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .files
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .map(|p| ListedEntry::new(p.clone(), EntryKind::File))
            .collect())
    }

    fn read(&self, path: &str, limit: u64) -> Result<FileContent, GitError> {
        let err = |source| GitError::Read {
            path: path.to_string(),
            origin: self.origin(),
            source,
        };
        check_relative(path).map_err(err)?;
        let bytes = self
            .files
            .get(path)
            .ok_or_else(|| err(ReadError::NotFound))?;
        if bytes.len() as u64 > limit {
            return Err(err(ReadError::TooLarge {
                size: bytes.len() as u64,
                limit,
            }));
        }
        Ok(FileContent {
            bytes: bytes.clone(),
            blob_id: None,
        })
    }

    fn revision(&self, _accessed: &AccessLog) -> Result<RevisionInfo, GitError> {
        Ok(RevisionInfo {
            commit: self.commit.clone(),
            dirty: false,
        })
    }
}
