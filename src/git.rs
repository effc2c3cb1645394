//! Where the files of a jobs repo come from.
//!
//! A [`RepoSource`] is either a working-tree directory or a Git revision whose tree is read
//! straight from the object database (no checkout, no touching the working tree). Both implement
//! [`RepoFiles`], the small read-only interface the loader uses; [`MemoryFiles`] implements it
//! over an in-memory map for tests.
//!
//! Paths are always repo-relative with `/` separators. A jobs repo may live in a subdirectory of
//! a Git repository: paths are then relative to that subdirectory, not to the Git root.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use git2::{ErrorCode, ObjectType, Oid, Repository, Tree};
use sha2::{Digest, Sha256};

mod index;
mod listing;
mod memory;
mod tree;
mod work_tree;

use index::{TreeIndex, lookup};
pub use listing::{EntryKind, ListedEntry};
use listing::{kind_of, tree_entries};
pub use memory::MemoryFiles;

/// Mode bits of a symbolic link in a Git tree.
const GIT_FILEMODE_LINK: i32 = 0o120000;

/// Why a file could not be read or a directory listed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no such file")]
    NotFound,
    #[error("file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    /// Symlinks, directories, submodules, paths escaping the repo.
    #[error("{0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Git(#[from] git2::Error),
}

/// Errors of [`RepoSource`] and [`RepoFiles`] operations.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open directory {path}")]
    OpenDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a Git repository at {path}")]
    OpenRepo {
        path: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot resolve revision `{rev}` to a commit in {repo}")]
    ResolveRevision {
        rev: String,
        repo: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot read `{path}` from {origin}")]
    Read {
        path: String,
        origin: String,
        #[source]
        source: ReadError,
    },
    #[error("cannot list `{dir}` in {origin}")]
    List {
        dir: String,
        origin: String,
        #[source]
        source: ReadError,
    },
    #[error("cannot compare the working tree with HEAD of {repo}")]
    Head {
        repo: String,
        #[source]
        source: git2::Error,
    },
}

impl GitError {
    /// The underlying read problem, for `Read` and `List` errors.
    pub fn read_error(&self) -> Option<&ReadError> {
        match self {
            GitError::Read { source, .. } | GitError::List { source, .. } => Some(source),
            _ => None,
        }
    }

    /// True when the file (or directory) does not exist in the source.
    pub fn is_not_found(&self) -> bool {
        matches!(self.read_error(), Some(ReadError::NotFound))
    }
}

/// A file's content and, when the source knows Git, its blob id (used for dirty detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub bytes: Vec<u8>,
    pub blob_id: Option<Oid>,
}

/// SHA-256 and size of a file, computed without keeping the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
    pub blob_id: Option<Oid>,
}

/// The commit the files correspond to, and whether the files read differ from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionInfo {
    pub commit: Option<String>,
    pub dirty: bool,
}

/// Who made a Git commit, when, and why (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitInfo {
    /// The full commit id.
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    /// Author time, unix epoch milliseconds.
    pub authored_at_ms: i64,
    /// The whole message, without trailing whitespace.
    pub message: String,
}

/// Which files (and directory listings) a load looked at, so that a working tree can be compared
/// with its HEAD commit for exactly those inputs.
#[derive(Debug, Clone, Default)]
pub struct AccessLog {
    /// Path → blob id of the content read (`None`: the file did not exist).
    files: BTreeMap<String, Option<Oid>>,
    listings: Vec<Listing>,
}

#[derive(Debug, Clone)]
struct Listing {
    dir: String,
    filter: fn(&str) -> bool,
    found: Vec<String>,
}

impl AccessLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a file read (`blob_id`) or found missing (`None`).
    pub fn record_file(&mut self, path: &str, blob_id: Option<Oid>) {
        self.files.insert(path.to_string(), blob_id);
    }

    /// Takes in the records of `other` (a load checks job files on several threads, each
    /// with its own log).
    pub fn absorb(&mut self, other: AccessLog) {
        self.files.extend(other.files);
        self.listings.extend(other.listings);
    }

    /// Record a listing of `dir`, keeping the files accepted by `filter` (`found` is the filtered,
    /// sorted result). A working tree whose filtered listing differs from HEAD's is dirty.
    pub fn record_listing(&mut self, dir: &str, filter: fn(&str) -> bool, found: Vec<String>) {
        self.listings.push(Listing {
            dir: dir.to_string(),
            filter,
            found,
        });
    }

    /// Paths recorded as read, sorted.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

/// Lets libgit2 cache large tree objects. By default it caches only trees under 4 KiB (about 97
/// entries), so with many job files in one directory every per-file lookup re-read, inflated
/// and hashed that directory's tree again: loading grew with the square of the files per
/// directory (22 s instead of 1.5 s for 10,000 files in `jobs/`; see BENCHMARKS.md).
/// Idempotent; runs before this module opens any repository.
pub fn tune_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 options are process-global and not synchronised with other libgit2
        // calls; `Once` runs this a single time, before this module opens any repository (and
        // `main` calls it before any other thread exists).
        let _ = unsafe { git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 64 << 20) };
    });
}

/// [`tune_libgit2`] for `main`, called before any other thread exists, with one more saving:
/// libgit2 initialises OpenSSL at start, and OpenSSL's default trust settings parse the whole
/// CA bundle file (~140 certificates: 0.7 MiB in 225,000 allocations by heaptrack, for a process
/// that fetches over HTTPS, if at all, from one host). When OpenSSL's default certificate directory is hashed (as Debian's
/// `ca-certificates` keeps it) and neither `SSL_CERT_FILE` nor `SSL_CERT_DIR` is set, the bundle
/// file is hidden from that initialisation only: OpenSSL then finds a CA in the directory by
/// its hash when a connection needs it. `repo.caFile` is added later as before.
///
/// The bundle is hidden by pointing `SSL_CERT_FILE` at an empty file that exists: git2 probes
/// for certificate locations before it initialises libgit2 and replaces a path that does not.
pub fn start_libgit2() {
    let defer_bundle = std::env::var_os("SSL_CERT_FILE").is_none()
        && std::env::var_os("SSL_CERT_DIR").is_none()
        && openssl_cert_dir().is_some_and(|dir| is_hashed_cert_dir(&dir));
    if defer_bundle {
        // SAFETY: `main` calls this first, while no other thread exists to read the environment.
        unsafe { std::env::set_var("SSL_CERT_FILE", "/dev/null") };
    }
    tune_libgit2();
    if defer_bundle {
        // SAFETY: as above. git2's probe set `SSL_CERT_DIR` to the directory OpenSSL has read
        // already: children (and a daemon executing itself again) see the environment as it was.
        unsafe {
            std::env::remove_var("SSL_CERT_FILE");
            std::env::remove_var("SSL_CERT_DIR");
        }
    }
}

/// OpenSSL's default certificate directory (`OPENSSLDIR/certs`).
fn openssl_cert_dir() -> Option<std::path::PathBuf> {
    // SAFETY: returns a pointer to a static NUL-terminated string compiled into OpenSSL.
    let dir = unsafe { openssl_sys::X509_get_default_cert_dir() };
    if dir.is_null() {
        return None;
    }
    // SAFETY: non-null, static and NUL-terminated (above).
    let dir = unsafe { std::ffi::CStr::from_ptr(dir) };
    Some(std::path::PathBuf::from(dir.to_str().ok()?))
}

/// Whether `dir` holds certificates named by subject hash (`1a2b3c4d.0`), as OpenSSL's
/// directory lookup reads them.
fn is_hashed_cert_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.split_once('.').is_some_and(|(hash, n)| {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && n.parse::<u32>().is_ok()
        })
    })
}

/// Read-only access to the files of a jobs repo.
pub trait RepoFiles {
    /// Human description for messages, e.g. `working tree /src/jobs` or
    /// `revision HEAD~1 (1a2b3c4d5e6f) of /src/jobs`.
    fn origin(&self) -> String;

    /// Every entry under `dir` (recursively; `""` is the root) with its kind, sorted by path.
    /// A missing directory yields an empty list; a `dir` that is a symlink or not a directory is
    /// an error (its content would otherwise be skipped silently).
    fn entries(&self, dir: &str) -> Result<Vec<ListedEntry>, GitError>;

    /// Every file under `dir` (recursively; `""` is the root), as sorted repo-relative paths.
    /// A missing directory yields an empty list. Symlinks are listed (reading them fails).
    fn list(&self, dir: &str) -> Result<Vec<String>, GitError> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Symlink))
            .map(|e| e.path)
            .collect())
    }

    /// The content of a file, refusing files larger than `limit` bytes (checked before reading
    /// the content whenever the source can tell the size up front).
    fn read(&self, path: &str, limit: u64) -> Result<FileContent, GitError>;

    /// The Git blob id of a regular file, when the source can name it without reading the file
    /// (a revision's tree can; a working tree cannot). `None` also when the path is not a
    /// regular file: [`RepoFiles::read`] then says why.
    fn blob_id(&self, _path: &str) -> Option<Oid> {
        None
    }

    /// SHA-256 of a file, streamed where possible (for jars).
    fn hash(&self, path: &str, limit: u64) -> Result<FileHash, GitError> {
        let content = self.read(path, limit)?;
        Ok(FileHash {
            sha256: hex::encode(Sha256::digest(&content.bytes)),
            size: content.bytes.len() as u64,
            blob_id: content.blob_id,
        })
    }

    /// The commit behind these files and whether the accessed files differ from it.
    fn revision(&self, accessed: &AccessLog) -> Result<RevisionInfo, GitError>;
}

/// Why a user-written repo path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RepoPathError {
    #[error("must not be empty")]
    Empty,
    #[error("must not contain NUL characters")]
    Nul,
    #[error("must be relative to the repository root (no leading '/')")]
    Absolute,
    #[error("must not point outside the repository ('..')")]
    Escapes,
    #[error("must name a file")]
    NoFile,
}

/// Normalize a user-written repo-relative path: `./a//b/../c` → `a/c`. Rejects absolute paths,
/// paths escaping the repo through `..`, and paths naming no file.
pub fn normalize_repo_path(path: &str) -> Result<String, RepoPathError> {
    if path.is_empty() {
        return Err(RepoPathError::Empty);
    }
    if path.contains('\0') {
        return Err(RepoPathError::Nul);
    }
    if path.starts_with('/') {
        return Err(RepoPathError::Absolute);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(RepoPathError::Escapes);
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(RepoPathError::NoFile);
    }
    Ok(parts.join("/"))
}

fn check_relative(path: &str) -> Result<(), ReadError> {
    match normalize_repo_path(path) {
        Ok(n) if n == path => Ok(()),
        _ => Err(ReadError::Unsupported(
            "path is not a normalized repo-relative path",
        )),
    }
}

fn join_dir(dir: &str, rest: &str) -> String {
    if dir.is_empty() {
        rest.to_string()
    } else {
        format!("{dir}/{rest}")
    }
}

/// Where a load reads from. `Send + Sync`: it can be shared (e.g. in an `Arc`) with the code that
/// later uploads repo jars from the same tree.
pub enum RepoSource {
    /// Files on disk, as they are now.
    WorkTree(WorkTree),
    /// The tree of a commit, read from the object database.
    GitTree(GitTree),
}

/// A working-tree directory, possibly inside a Git repository.
pub struct WorkTree {
    /// Canonical root of the jobs repo.
    root: PathBuf,
    git: Option<GitLink>,
    /// Directory → its canonical path, when it is inside the root (a load reads thousands of
    /// files from a few directories; resolving each file's every component cost more than
    /// reading it).
    inside: Mutex<std::collections::HashMap<PathBuf, Option<PathBuf>>>,
}

struct GitLink {
    repo: Mutex<Repository>,
    /// Path of the jobs repo inside the Git work tree (`""` at the top).
    prefix: String,
}

/// A Git commit's tree (optionally a subdirectory of it).
pub struct GitTree {
    /// Behind a mutex so that a source can be shared between threads (`Repository` is not
    /// `Sync`).
    repo: Mutex<Repository>,
    rev: String,
    commit: Oid,
    /// Tree of the jobs repo: the commit's root tree or the subdirectory's.
    tree: Oid,
    display_path: String,
    /// The tree's entries by path, made on the first read (`None` inside: look paths up one by
    /// one, see [`TreeIndex::build`]).
    index: std::sync::OnceLock<Option<TreeIndex>>,
}

impl RepoSource {
    /// The working tree at `dir` (which must be a directory). When `dir` is inside a Git
    /// repository, the revision reports HEAD and whether the loaded files differ from it.
    pub fn work_tree(dir: impl AsRef<Path>) -> Result<Self, GitError> {
        let dir = dir.as_ref();
        let open_err = |source| GitError::OpenDir {
            path: dir.display().to_string(),
            source,
        };
        let root = dir.canonicalize().map_err(open_err)?;
        if !root.is_dir() {
            return Err(open_err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        tune_libgit2();
        let git = Repository::discover(&root).ok().and_then(|repo| {
            let workdir = repo.workdir()?.canonicalize().ok()?;
            let prefix = path_to_repo_string(root.strip_prefix(&workdir).ok()?)?;
            if prefix == ".git" || prefix.starts_with(".git/") {
                return None;
            }
            Some(GitLink {
                repo: Mutex::new(repo),
                prefix,
            })
        });
        Ok(RepoSource::WorkTree(WorkTree {
            root,
            git,
            inside: Mutex::default(),
        }))
    }

    /// The tree of `rev` (a branch, tag, sha, `HEAD~1`, ...) of the Git repository containing
    /// `dir`. When `dir` is a subdirectory of the repository's work tree, files are read from that
    /// subdirectory of the commit.
    pub fn git_tree(dir: impl AsRef<Path>, rev: &str) -> Result<Self, GitError> {
        let dir = dir.as_ref();
        let display_path = dir.display().to_string();
        tune_libgit2();
        let repo = Repository::discover(dir).map_err(|source| GitError::OpenRepo {
            path: display_path.clone(),
            source,
        })?;
        let prefix = match (repo.workdir(), dir.canonicalize()) {
            (Some(workdir), Ok(canon)) => workdir
                .canonicalize()
                .ok()
                .and_then(|w| canon.strip_prefix(w).ok().and_then(path_to_repo_string))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let commit = repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|source| GitError::ResolveRevision {
                rev: rev.to_string(),
                repo: display_path.clone(),
                source,
            })?;
        let commit_id = commit.id();
        let root_tree = commit.tree().map_err(|source| GitError::ResolveRevision {
            rev: rev.to_string(),
            repo: display_path.clone(),
            source,
        })?;
        let tree = if prefix.is_empty() {
            root_tree.id()
        } else {
            let origin = format!("revision {rev} ({}) of {display_path}", short(commit_id));
            let read_err = |source| GitError::Read {
                path: prefix.clone(),
                origin: origin.clone(),
                source,
            };
            match root_tree.get_path(Path::new(&prefix)) {
                Ok(e) if e.kind() == Some(ObjectType::Tree) => e.id(),
                Ok(_) => return Err(read_err(ReadError::Unsupported("not a directory"))),
                Err(e) if e.code() == ErrorCode::NotFound => {
                    return Err(read_err(ReadError::NotFound));
                }
                Err(e) => return Err(read_err(ReadError::Git(e))),
            }
        };
        drop(root_tree);
        drop(commit);
        Ok(RepoSource::GitTree(GitTree {
            repo: Mutex::new(repo),
            rev: rev.to_string(),
            commit: commit_id,
            tree,
            display_path,
            index: std::sync::OnceLock::new(),
        }))
    }

    /// The whole content of a file, without a size limit (e.g. a repo jar to upload). The loader
    /// uses [`RepoFiles::read`], which enforces one.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, GitError> {
        RepoFiles::read(self, path, u64::MAX).map(|c| c.bytes)
    }

    /// The commit sha of a Git revision source (a work tree reports its HEAD via
    /// [`RepoFiles::revision`]).
    pub fn revision_commit(&self) -> Option<String> {
        match self {
            RepoSource::WorkTree(_) => None,
            RepoSource::GitTree(g) => Some(g.commit.to_string()),
        }
    }

    /// Author, time and message of `commit` (a sha or any revision) in the Git repository behind
    /// this source; `None` when there is no Git repository or it does not have that commit.
    pub fn commit_info(&self, commit: &str) -> Option<CommitInfo> {
        let repo = match self {
            RepoSource::WorkTree(w) => &w.git.as_ref()?.repo,
            RepoSource::GitTree(g) => &g.repo,
        };
        let repo = lock(repo);
        let c = repo.revparse_single(commit).ok()?.peel_to_commit().ok()?;
        let author = c.author();
        Some(CommitInfo {
            sha: c.id().to_string(),
            author_name: String::from_utf8_lossy(author.name_bytes()).into_owned(),
            author_email: String::from_utf8_lossy(author.email_bytes()).into_owned(),
            authored_at_ms: author.when().seconds().saturating_mul(1000),
            message: String::from_utf8_lossy(c.message_raw_bytes())
                .trim_end()
                .to_string(),
        })
    }
}

fn path_to_repo_string(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_string()
}

impl RepoFiles for RepoSource {
    fn origin(&self) -> String {
        match self {
            RepoSource::WorkTree(w) => w.origin(),
            RepoSource::GitTree(g) => g.origin(),
        }
    }
    fn entries(&self, dir: &str) -> Result<Vec<ListedEntry>, GitError> {
        match self {
            RepoSource::WorkTree(w) => w.list_entries(dir),
            RepoSource::GitTree(g) => g.list_entries(dir),
        }
    }
    fn read(&self, path: &str, limit: u64) -> Result<FileContent, GitError> {
        match self {
            RepoSource::WorkTree(w) => w.read_file(path, limit),
            RepoSource::GitTree(g) => g.read_file(path, limit),
        }
    }
    fn blob_id(&self, path: &str) -> Option<Oid> {
        match self {
            RepoSource::WorkTree(_) => None,
            RepoSource::GitTree(g) => g.blob_id(path),
        }
    }
    fn hash(&self, path: &str, limit: u64) -> Result<FileHash, GitError> {
        match self {
            RepoSource::WorkTree(w) => w.hash_file(path, limit),
            RepoSource::GitTree(g) => g.hash_file(path, limit),
        }
    }
    fn revision(&self, accessed: &AccessLog) -> Result<RevisionInfo, GitError> {
        match self {
            RepoSource::WorkTree(w) => w.revision(accessed),
            RepoSource::GitTree(g) => g.revision(accessed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Signature;

    /// The CA bundle is hidden from OpenSSL's initialisation only when its directory can stand
    /// in: certificates named by subject hash.
    #[test]
    fn only_a_directory_of_hash_named_certificates_stands_in_for_the_ca_bundle() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_hashed_cert_dir(dir.path()), "empty");
        std::fs::write(dir.path().join("ca-certificates.crt"), "").unwrap();
        std::fs::write(dir.path().join("1a2b3c4d.pem"), "").unwrap();
        std::fs::write(dir.path().join("1a2b3c4.0"), "").unwrap();
        assert!(!is_hashed_cert_dir(dir.path()), "no hash-named certificate");
        std::fs::write(dir.path().join("1a2b3c4d.0"), "").unwrap();
        assert!(is_hashed_cert_dir(dir.path()));
        assert!(!is_hashed_cert_dir(&dir.path().join("missing")));
        // This machine's OpenSSL names its directory (Debian's is hashed by ca-certificates).
        assert!(openssl_cert_dir().is_some());
    }

    fn commit_all(repo: &Repository, message: &str) -> Oid {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        // Also record deletions.
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree_id = index.write_tree().unwrap();
        let tree = repo.find_tree(tree_id).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let parents: Vec<git2::Commit<'_>> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parent_refs)
            .unwrap()
    }

    fn write(root: &Path, path: &str, content: &str) {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    fn is_yaml(p: &str) -> bool {
        p.ends_with(".yaml")
    }

    #[test]
    fn sources_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RepoSource>();
        assert_send_sync::<GitError>();
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize_repo_path("a/b.jar").unwrap(), "a/b.jar");
        assert_eq!(normalize_repo_path("./a//x/../b.jar").unwrap(), "a/b.jar");
        assert!(
            normalize_repo_path("/etc/passwd")
                .unwrap_err()
                .to_string()
                .contains("leading '/'")
        );
        assert!(normalize_repo_path("../x").unwrap_err() == RepoPathError::Escapes);
        assert!(
            normalize_repo_path("a/../../x")
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
        assert!(normalize_repo_path("").is_err());
        assert!(
            normalize_repo_path("a/..")
                .unwrap_err()
                .to_string()
                .contains("name a file")
        );
    }

    #[test]
    fn git_tree_reads_the_commit_not_the_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        write(dir.path(), "weir.yaml", "v1\n");
        write(dir.path(), "jobs/a.yaml", "a1\n");
        let first = commit_all(&repo, "first");
        write(dir.path(), "weir.yaml", "v2\n");
        write(dir.path(), "jobs/sub/b.yaml", "b\n");
        let second = commit_all(&repo, "second");
        // Uncommitted changes in the work tree.
        write(dir.path(), "weir.yaml", "v3-dirty\n");
        write(dir.path(), "jobs/c.yaml", "c\n");

        let head = RepoSource::git_tree(dir.path(), "HEAD").unwrap();
        assert_eq!(head.read("weir.yaml", 100).unwrap().bytes, b"v2\n");
        assert_eq!(
            head.list("jobs").unwrap(),
            vec!["jobs/a.yaml", "jobs/sub/b.yaml"]
        );
        assert_eq!(head.revision_commit(), Some(second.to_string()));
        let info = head.revision(&AccessLog::new()).unwrap();
        assert_eq!(info.commit, Some(second.to_string()));
        assert!(!info.dirty);

        let prev = RepoSource::git_tree(dir.path(), "HEAD~1").unwrap();
        assert_eq!(prev.read("weir.yaml", 100).unwrap().bytes, b"v1\n");
        assert_eq!(prev.list("jobs").unwrap(), vec!["jobs/a.yaml"]);
        assert_eq!(prev.revision_commit(), Some(first.to_string()));

        let by_sha = RepoSource::git_tree(dir.path(), &first.to_string()[..10]).unwrap();
        assert_eq!(by_sha.read("weir.yaml", 100).unwrap().bytes, b"v1\n");

        // Errors name the path / revision.
        let err = head.read("jobs/missing.yaml", 100).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("jobs/missing.yaml"), "{err}");
        let err = head.read("weir.yaml", 2).unwrap_err();
        assert!(matches!(
            err.read_error(),
            Some(ReadError::TooLarge { size: 3, limit: 2 })
        ));
        let err = RepoSource::git_tree(dir.path(), "no-such-branch")
            .err()
            .unwrap();
        assert!(err.to_string().contains("no-such-branch"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        assert!(head.list("nope").unwrap().is_empty());
        assert_eq!(head.read_file("weir.yaml").unwrap(), b"v2\n");
        let h = head.hash("weir.yaml", 100).unwrap();
        assert_eq!(h.sha256, hex::encode(Sha256::digest(b"v2\n")));
    }

    #[test]
    fn tags_and_branches_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        write(dir.path(), "weir.yaml", "tagged\n");
        let c = commit_all(&repo, "one");
        let obj = repo.find_object(c, None).unwrap();
        repo.tag_lightweight("v1.0", &obj, false).unwrap();
        repo.branch("release", &repo.find_commit(c).unwrap(), false)
            .unwrap();
        write(dir.path(), "weir.yaml", "later\n");
        commit_all(&repo, "two");
        for rev in ["v1.0", "release"] {
            let src = RepoSource::git_tree(dir.path(), rev).unwrap();
            assert_eq!(src.read("weir.yaml", 100).unwrap().bytes, b"tagged\n");
        }
    }

    #[test]
    fn work_tree_dirty_detection() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        write(dir.path(), "weir.yaml", "cfg\n");
        write(dir.path(), "jobs/a.yaml", "a\n");
        write(dir.path(), "README.md", "readme\n");
        let head = commit_all(&repo, "first");

        let src = RepoSource::work_tree(dir.path()).unwrap();
        let load = |src: &RepoSource| {
            let mut log = AccessLog::new();
            let jobs: Vec<String> = src
                .list("jobs")
                .unwrap()
                .into_iter()
                .filter(|p| is_yaml(p))
                .collect();
            log.record_listing("jobs", is_yaml, jobs.clone());
            for p in std::iter::once("weir.yaml".to_string()).chain(jobs) {
                match src.read(&p, 1000) {
                    Ok(c) => log.record_file(&p, c.blob_id),
                    Err(e) if e.is_not_found() => log.record_file(&p, None),
                    Err(e) => panic!("{e}"),
                }
            }
            src.revision(&log).unwrap()
        };
        let info = load(&src);
        assert_eq!(info.commit, Some(head.to_string()));
        assert!(!info.dirty);

        // A file the loader does not read changes: still clean.
        write(dir.path(), "README.md", "changed\n");
        assert!(!load(&src).dirty);
        // A non-job file appears under jobs/: still clean.
        write(dir.path(), "jobs/notes.txt", "x\n");
        assert!(!load(&src).dirty);
        // A job file changes.
        write(dir.path(), "jobs/a.yaml", "a2\n");
        assert!(load(&src).dirty);
        write(dir.path(), "jobs/a.yaml", "a\n");
        assert!(!load(&src).dirty);
        // A new job file.
        write(dir.path(), "jobs/b.yaml", "b\n");
        assert!(load(&src).dirty);
        std::fs::remove_file(dir.path().join("jobs/b.yaml")).unwrap();
        // A deleted job file.
        std::fs::remove_file(dir.path().join("jobs/a.yaml")).unwrap();
        assert!(load(&src).dirty);
    }

    #[test]
    fn work_tree_in_subdirectory_of_a_repo() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        write(dir.path(), "deploy/weir.yaml", "cfg\n");
        write(dir.path(), "deploy/jobs/a.yaml", "a\n");
        let head = commit_all(&repo, "first");
        let sub = dir.path().join("deploy");

        let src = RepoSource::work_tree(&sub).unwrap();
        assert_eq!(src.list("jobs").unwrap(), vec!["jobs/a.yaml"]);
        let mut log = AccessLog::new();
        let c = src.read("weir.yaml", 100).unwrap();
        log.record_file("weir.yaml", c.blob_id);
        let info = src.revision(&log).unwrap();
        assert_eq!(info.commit, Some(head.to_string()));
        assert!(!info.dirty);

        write(dir.path(), "deploy/weir.yaml", "changed\n");
        let rev = RepoSource::git_tree(&sub, "HEAD").unwrap();
        assert_eq!(rev.read("weir.yaml", 100).unwrap().bytes, b"cfg\n");
        assert_eq!(rev.list("jobs").unwrap(), vec!["jobs/a.yaml"]);
    }

    #[test]
    fn work_tree_outside_git() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "weir.yaml", "cfg\n");
        write(dir.path(), "jobs/x/y.yml", "y\n");
        let src = RepoSource::work_tree(dir.path()).unwrap();
        assert_eq!(src.list("jobs").unwrap(), vec!["jobs/x/y.yml"]);
        assert_eq!(src.list("").unwrap(), vec!["jobs/x/y.yml", "weir.yaml"]);
        let c = src.read("weir.yaml", 100).unwrap();
        assert_eq!(c.bytes, b"cfg\n");
        assert_eq!(c.blob_id, None);
        let info = src.revision(&AccessLog::new()).unwrap();
        assert_eq!(
            info,
            RevisionInfo {
                commit: None,
                dirty: false
            }
        );
        assert!(src.read("nope", 100).unwrap_err().is_not_found());
        assert!(src.read("../etc/passwd", 100).is_err());
        assert!(matches!(
            src.read("jobs", 100).unwrap_err().read_error(),
            Some(ReadError::Unsupported(_))
        ));
        let h = src.hash("weir.yaml", 100).unwrap();
        assert_eq!(h.sha256, hex::encode(Sha256::digest(b"cfg\n")));
        assert_eq!(h.size, 4);
        assert!(matches!(
            src.hash("weir.yaml", 3).unwrap_err().read_error(),
            Some(ReadError::TooLarge { .. })
        ));
        let err = RepoSource::work_tree(dir.path().join("missing"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", "s\n");
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).unwrap();
        let src = RepoSource::work_tree(dir.path()).unwrap();
        let err = src.read("link", 100).unwrap_err();
        assert!(
            matches!(err.read_error(), Some(ReadError::Unsupported(_))),
            "{err:?}"
        );
        let err = src.read("linkdir/secret", 100).unwrap_err();
        assert!(
            matches!(err.read_error(), Some(ReadError::Unsupported(_))),
            "{err:?}"
        );
    }

    #[test]
    fn memory_files() {
        let m = MemoryFiles::new()
            .with("weir.yaml", "x")
            .with("jobs/a.yaml", "a")
            .with("jobsx/b.yaml", "b");
        assert_eq!(m.list("jobs").unwrap(), vec!["jobs/a.yaml"]);
        assert_eq!(m.read("weir.yaml", 10).unwrap().bytes, b"x");
        assert!(m.read("nope", 10).unwrap_err().is_not_found());
    }
}
