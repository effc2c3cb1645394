//! Directory listings: every entry with its kind, so that the loader can tell about what it
//! cannot read instead of skipping it.

use std::path::Path;

use git2::{ErrorCode, ObjectType, Repository, Tree, TreeWalkMode, TreeWalkResult};

use super::{GIT_FILEMODE_LINK, join_dir};

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// Repo-relative path (non-UTF-8 names lossily converted).
    pub path: String,
    pub kind: EntryKind,
}

/// What a listed entry is. Only files can be read; the loader tells about the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    /// A symbolic link (to anything); never followed.
    Symlink,
    Directory,
    /// A FIFO, socket, device or submodule: `why` says which.
    Special(&'static str),
    /// An entry the listing could not look at (permissions, a non-UTF-8 name).
    Unreadable(String),
}

impl ListedEntry {
    pub(super) fn new(path: String, kind: EntryKind) -> Self {
        ListedEntry { path, kind }
    }
}

/// The kind of a working-tree entry (symlinks are not followed).
pub(super) fn kind_of(ft: std::fs::FileType) -> EntryKind {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        return EntryKind::Symlink;
    }
    if ft.is_dir() {
        return EntryKind::Directory;
    }
    if ft.is_file() {
        return EntryKind::File;
    }
    #[cfg(unix)]
    {
        if ft.is_fifo() {
            return EntryKind::Special("is a FIFO (named pipe)");
        }
        if ft.is_socket() {
            return EntryKind::Special("is a socket");
        }
        if ft.is_block_device() || ft.is_char_device() {
            return EntryKind::Special("is a device");
        }
    }
    EntryKind::Special("is not a regular file")
}

/// Every entry under `dir` of `tree`, sorted (empty when `dir` is not a directory there).
pub(super) fn tree_entries(
    repo: &Repository,
    tree: &Tree<'_>,
    dir: &str,
) -> Result<Vec<ListedEntry>, git2::Error> {
    let sub;
    let start = if dir.is_empty() {
        tree
    } else {
        match tree.get_path(Path::new(dir)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => {
                sub = repo.find_tree(e.id())?;
                &sub
            }
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    let mut out = Vec::new();
    start.walk(TreeWalkMode::PreOrder, |root, entry| {
        let name = entry.name().map_or_else(
            || String::from_utf8_lossy(entry.name_bytes()).into_owned(),
            str::to_string,
        );
        let path = join_dir(dir, &format!("{root}{name}"));
        let kind = match entry.kind() {
            _ if entry.name().is_none() => {
                EntryKind::Unreadable("its name is not valid UTF-8".to_string())
            }
            Some(ObjectType::Blob) if entry.filemode() == GIT_FILEMODE_LINK => EntryKind::Symlink,
            Some(ObjectType::Blob) => EntryKind::File,
            Some(ObjectType::Tree) => EntryKind::Directory,
            Some(ObjectType::Commit) => EntryKind::Special("is a submodule"),
            _ => EntryKind::Special("is not a regular file"),
        };
        out.push(ListedEntry::new(path, kind));
        TreeWalkResult::Ok
    })?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
