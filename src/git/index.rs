//! A tree's entries by path, from one walk: reading N files of a commit then costs one walk and N
//! hash lookups instead of N path lookups that each look up every directory on the way.

use std::collections::HashMap;
use std::path::Path;

use git2::{ErrorCode, ObjectType, Oid, Repository, Tree, TreeEntry};

use super::join_dir;

/// What a path names in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexedEntry {
    pub id: Oid,
    pub kind: Option<ObjectType>,
    pub filemode: i32,
}

impl IndexedEntry {
    fn of(entry: &TreeEntry<'_>) -> Self {
        IndexedEntry {
            id: entry.id(),
            kind: entry.kind(),
            filemode: entry.filemode(),
        }
    }
}

/// Every entry of a tree (recursively), by repo-relative path.
pub(super) struct TreeIndex {
    entries: HashMap<String, IndexedEntry>,
}

impl TreeIndex {
    /// Walks `tree` once. `None` when the tree holds a name that a path lookup would not find the
    /// way the index would (not UTF-8, empty, containing `/`, or twice in one tree): callers then
    /// look paths up one by one, as before, so such trees behave exactly as they always did.
    pub fn build(repo: &Repository, tree: &Tree<'_>) -> Option<TreeIndex> {
        let mut entries = HashMap::new();
        let mut pending: Vec<(String, Tree<'_>)> = vec![(String::new(), tree.clone())];
        while let Some((dir, tree)) = pending.pop() {
            for entry in tree.iter() {
                let name = entry.name()?;
                if name.is_empty() || name.contains('/') {
                    return None;
                }
                let path = join_dir(&dir, name);
                if entry.kind() == Some(ObjectType::Tree) {
                    pending.push((path.clone(), repo.find_tree(entry.id()).ok()?));
                }
                if entries.insert(path, IndexedEntry::of(&entry)).is_some() {
                    return None;
                }
            }
        }
        Some(TreeIndex { entries })
    }

    /// The entry at `path`, a normalized repo-relative path; `None` when the tree has none.
    pub fn get(&self, path: &str) -> Option<IndexedEntry> {
        self.entries.get(path).copied()
    }
}

/// The entry at `path` of `tree`, through `index` when there is one. `Ok(None)`: not found.
pub(super) fn lookup(
    index: Option<&TreeIndex>,
    tree: &Tree<'_>,
    path: &str,
) -> Result<Option<IndexedEntry>, git2::Error> {
    if let Some(index) = index {
        return Ok(index.get(path));
    }
    match tree.get_path(Path::new(path)) {
        Ok(e) => Ok(Some(IndexedEntry::of(&e))),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index answers every lookup exactly like `Tree::get_path`.
    #[test]
    fn index_agrees_with_path_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let blob = |s: &str| repo.blob(s.as_bytes()).unwrap();
        let mut inner = repo.treebuilder(None).unwrap();
        inner.insert("b.yaml", blob("b"), 0o100644).unwrap();
        inner.insert("link.yaml", blob("x"), 0o120000).unwrap();
        let inner = inner.write().unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("a.yaml", blob("a"), 0o100644).unwrap();
        root.insert("jobs", inner, 0o040000).unwrap();
        let root = repo.find_tree(root.write().unwrap()).unwrap();

        let index = TreeIndex::build(&repo, &root).expect("a plain tree is indexed");
        for path in [
            "a.yaml",
            "jobs",
            "jobs/b.yaml",
            "jobs/link.yaml",
            "jobs/missing.yaml",
            "a.yaml/b",
            "missing/b.yaml",
        ] {
            assert_eq!(
                lookup(Some(&index), &root, path).unwrap(),
                lookup(None, &root, path).unwrap(),
                "{path}"
            );
        }
        assert_eq!(
            lookup(Some(&index), &root, "jobs/link.yaml")
                .unwrap()
                .map(|e| e.filemode),
            Some(0o120000)
        );
    }
}
