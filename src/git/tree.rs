//! A Git revision as a [`RepoFiles`](super::RepoFiles) source: files read from the object
//! database by path, without a checkout.

use super::*;

impl GitTree {
    pub(super) fn origin(&self) -> String {
        format!(
            "revision {} ({}) of {}",
            self.rev,
            short(self.commit),
            self.display_path
        )
    }

    fn read_err(&self, path: &str, source: ReadError) -> GitError {
        GitError::Read {
            path: path.to_string(),
            origin: self.origin(),
            source,
        }
    }

    /// The blob id and size of `path`, refusing non-files and files over `limit`.
    fn locate(&self, repo: &Repository, path: &str, limit: u64) -> Result<Oid, ReadError> {
        let id = self.regular_file(repo, path)?;
        let (size, _) = repo.odb()?.read_header(id)?;
        if size as u64 > limit {
            return Err(ReadError::TooLarge {
                size: size as u64,
                limit,
            });
        }
        Ok(id)
    }

    /// The blob id of `path` from the tree alone, refusing anything but a regular file.
    fn regular_file(&self, repo: &Repository, path: &str) -> Result<Oid, ReadError> {
        check_relative(path)?;
        let tree = repo.find_tree(self.tree)?;
        let index = self
            .index
            .get_or_init(|| TreeIndex::build(repo, &tree))
            .as_ref();
        let Some(entry) = lookup(index, &tree, path)? else {
            return Err(ReadError::NotFound);
        };
        match entry.kind {
            Some(ObjectType::Blob) if entry.filemode == GIT_FILEMODE_LINK => {
                Err(ReadError::Unsupported("symbolic links are not supported"))
            }
            Some(ObjectType::Blob) => Ok(entry.id),
            Some(ObjectType::Tree) => Err(ReadError::Unsupported("is a directory")),
            Some(ObjectType::Commit) => Err(ReadError::Unsupported("is a submodule")),
            _ => Err(ReadError::Unsupported("is not a regular file")),
        }
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
        let repo = lock(&self.repo);
        let tree = repo.find_tree(self.tree).map_err(|e| list_err(e.into()))?;
        if !dir.is_empty()
            && let Ok(e) = tree.get_path(Path::new(dir))
            && e.kind() != Some(ObjectType::Tree)
        {
            let why = if e.filemode() == GIT_FILEMODE_LINK {
                "is a symbolic link; symbolic links are not followed"
            } else {
                "is not a directory"
            };
            return Err(list_err(ReadError::Unsupported(why)));
        }
        tree_entries(&repo, &tree, dir).map_err(|e| list_err(e.into()))
    }

    /// The blob id of the regular file at `path`, from the tree alone.
    pub(super) fn blob_id(&self, path: &str) -> Option<Oid> {
        self.regular_file(&lock(&self.repo), path).ok()
    }

    pub(super) fn read_file(&self, path: &str, limit: u64) -> Result<FileContent, GitError> {
        let repo = lock(&self.repo);
        let id = self
            .locate(&repo, path, limit)
            .map_err(|e| self.read_err(path, e))?;
        let blob = repo
            .find_blob(id)
            .map_err(|e| self.read_err(path, e.into()))?;
        Ok(FileContent {
            bytes: blob.content().to_vec(),
            blob_id: Some(id),
        })
    }

    pub(super) fn hash_file(&self, path: &str, limit: u64) -> Result<FileHash, GitError> {
        let repo = lock(&self.repo);
        let id = self
            .locate(&repo, path, limit)
            .map_err(|e| self.read_err(path, e))?;
        let blob = repo
            .find_blob(id)
            .map_err(|e| self.read_err(path, e.into()))?;
        Ok(FileHash {
            sha256: hex::encode(Sha256::digest(blob.content())),
            size: blob.size() as u64,
            blob_id: Some(id),
        })
    }

    pub(super) fn revision(&self, _accessed: &AccessLog) -> Result<RevisionInfo, GitError> {
        Ok(RevisionInfo {
            commit: Some(self.commit.to_string()),
            dirty: false,
        })
    }
}
