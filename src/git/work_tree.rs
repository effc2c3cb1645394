//! A working-tree directory as a [`RepoFiles`](super::RepoFiles) source: files resolved inside the
//! root without following symlinks out of it, and the dirty check against the checked-out commit.

use super::*;

impl WorkTree {
    /// Resolve `path` to a regular file inside the root, refusing symlinks and escapes.
    fn locate(&self, path: &str) -> Result<(PathBuf, std::fs::Metadata), ReadError> {
        check_relative(path)?;
        let full = self.root.join(path);
        let link_meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(ReadError::NotFound);
            }
            Err(e) => return Err(e.into()),
        };
        if link_meta.file_type().is_symlink() {
            return Err(ReadError::Unsupported("symbolic links are not supported"));
        }
        if link_meta.is_dir() {
            return Err(ReadError::Unsupported("is a directory"));
        }
        if !link_meta.is_file() {
            return Err(ReadError::Unsupported("is not a regular file"));
        }
        // A symlinked parent directory could still lead outside the repo.
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            return Err(ReadError::Unsupported("resolves outside the repository"));
        };
        match self.canonical_inside(parent)? {
            Some(dir) => Ok((dir.join(name), link_meta)),
            None => Err(ReadError::Unsupported("resolves outside the repository")),
        }
    }

    /// `dir` resolved, when it lies inside the root (`None`: it leads outside).
    fn canonical_inside(&self, dir: &Path) -> Result<Option<PathBuf>, ReadError> {
        if let Some(known) = lock(&self.inside).get(dir) {
            return Ok(known.clone());
        }
        let canon = dir.canonicalize()?;
        let inside = canon.starts_with(&self.root).then_some(canon);
        lock(&self.inside).insert(dir.to_path_buf(), inside.clone());
        Ok(inside)
    }

    fn read_err(&self, path: &str, source: ReadError) -> GitError {
        GitError::Read {
            path: path.to_string(),
            origin: self.origin(),
            source,
        }
    }

    pub(super) fn origin(&self) -> String {
        format!("working tree {}", self.root.display())
    }

    pub(super) fn list_entries(&self, dir: &str) -> Result<Vec<ListedEntry>, GitError> {
        let list_err = |source| GitError::List {
            dir: dir.to_string(),
            origin: self.origin(),
            source,
        };
        if !dir.is_empty() {
            check_relative(dir).map_err(list_err)?;
        }
        let base = self.root.join(dir);
        match std::fs::symlink_metadata(&base) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(list_err(ReadError::Unsupported(
                    "is a symbolic link; symbolic links are not followed",
                )));
            }
            Ok(_) => return Err(list_err(ReadError::Unsupported("is not a directory"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(list_err(e.into())),
        }
        let mut out = Vec::new();
        let walker = walkdir::WalkDir::new(&base)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git");
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().map_or_else(|| base.clone(), Path::to_path_buf);
                    let why = std::io::Error::from(e).to_string();
                    out.push(ListedEntry::new(
                        self.display_rel(&path),
                        EntryKind::Unreadable(why),
                    ));
                    continue;
                }
            };
            let Some(rel) = entry
                .path()
                .strip_prefix(&self.root)
                .ok()
                .and_then(path_to_repo_string)
            else {
                out.push(ListedEntry::new(
                    self.display_rel(entry.path()),
                    EntryKind::Unreadable("its name is not valid UTF-8".to_string()),
                ));
                continue;
            };
            out.push(ListedEntry::new(rel, kind_of(entry.file_type())));
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// `path` relative to the root, for messages (lossy for non-UTF-8 names).
    fn display_rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    pub(super) fn read_file(&self, path: &str, limit: u64) -> Result<FileContent, GitError> {
        let (full, meta) = self.locate(path).map_err(|e| self.read_err(path, e))?;
        if meta.len() > limit {
            return Err(self.read_err(
                path,
                ReadError::TooLarge {
                    size: meta.len(),
                    limit,
                },
            ));
        }
        // Sized up front: one read of the content and one to see the end.
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
        File::open(&full)
            .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
            .map_err(|e| self.read_err(path, e.into()))?;
        if bytes.len() as u64 > limit {
            // The file grew between the size check and the read.
            return Err(self.read_err(
                path,
                ReadError::TooLarge {
                    size: bytes.len() as u64,
                    limit,
                },
            ));
        }
        let blob_id = match &self.git {
            Some(_) => Some(
                Oid::hash_object(ObjectType::Blob, &bytes)
                    .map_err(|e| self.read_err(path, e.into()))?,
            ),
            None => None,
        };
        Ok(FileContent { bytes, blob_id })
    }

    pub(super) fn hash_file(&self, path: &str, limit: u64) -> Result<FileHash, GitError> {
        let (full, meta) = self.locate(path).map_err(|e| self.read_err(path, e))?;
        if meta.len() > limit {
            return Err(self.read_err(
                path,
                ReadError::TooLarge {
                    size: meta.len(),
                    limit,
                },
            ));
        }
        let mut file = File::open(&full).map_err(|e| self.read_err(path, e.into()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| self.read_err(path, e.into()))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(self.read_err(path, ReadError::TooLarge { size, limit }));
            }
            hasher.update(&buf[..n]);
        }
        let blob_id = match &self.git {
            Some(_) => Some(
                Oid::hash_file(ObjectType::Blob, &full)
                    .map_err(|e| self.read_err(path, e.into()))?,
            ),
            None => None,
        };
        Ok(FileHash {
            sha256: hex::encode(hasher.finalize()),
            size,
            blob_id,
        })
    }

    pub(super) fn revision(&self, accessed: &AccessLog) -> Result<RevisionInfo, GitError> {
        let Some(git) = &self.git else {
            return Ok(RevisionInfo {
                commit: None,
                dirty: false,
            });
        };
        let repo = lock(&git.repo);
        let head_err = |source| GitError::Head {
            repo: repo.workdir().unwrap_or(repo.path()).display().to_string(),
            source,
        };
        let commit = match repo.head().and_then(|h| h.peel_to_commit()) {
            Ok(c) => c,
            // No commit yet: nothing to compare with.
            Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
                return Ok(RevisionInfo {
                    commit: None,
                    dirty: false,
                });
            }
            Err(e) => return Err(head_err(e)),
        };
        let root_tree = commit.tree().map_err(head_err)?;
        let tree = if git.prefix.is_empty() {
            Some(root_tree)
        } else {
            match root_tree.get_path(Path::new(&git.prefix)) {
                Ok(e) if e.kind() == Some(ObjectType::Tree) => {
                    Some(repo.find_tree(e.id()).map_err(head_err)?)
                }
                Ok(_) => None,
                Err(e) if e.code() == ErrorCode::NotFound => None,
                Err(e) => return Err(head_err(e)),
            }
        };
        let dirty = differs_from_tree(&repo, tree.as_ref(), accessed).map_err(head_err)?;
        Ok(RevisionInfo {
            commit: Some(commit.id().to_string()),
            dirty,
        })
    }
}

/// True when any accessed file or listing differs from `tree` (`None`: the directory does not
/// exist in the commit at all).
fn differs_from_tree(
    repo: &Repository,
    tree: Option<&Tree<'_>>,
    accessed: &AccessLog,
) -> Result<bool, git2::Error> {
    // One walk of the tree instead of one path lookup per file read.
    let index = tree.and_then(|t| TreeIndex::build(repo, t));
    for (path, blob_id) in &accessed.files {
        let in_tree = match tree {
            None => None,
            Some(t) => lookup(index.as_ref(), t, path)?
                .filter(|e| e.kind == Some(ObjectType::Blob))
                .map(|e| e.id),
        };
        if in_tree != *blob_id {
            return Ok(true);
        }
    }
    for listing in &accessed.listings {
        let in_tree: Vec<String> = match tree {
            None => Vec::new(),
            Some(t) => list_tree(repo, t, &listing.dir)?
                .into_iter()
                .filter(|p| (listing.filter)(p))
                .collect(),
        };
        if in_tree != listing.found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every blob (files and symlinks) under `dir` of `tree`, sorted.
fn list_tree(repo: &Repository, tree: &Tree<'_>, dir: &str) -> Result<Vec<String>, git2::Error> {
    Ok(tree_entries(repo, tree, dir)?
        .into_iter()
        .filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Symlink))
        .map(|e| e.path)
        .collect())
}
