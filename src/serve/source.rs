//! Following the remote: a bare mirror under the state directory, fetched with git2.
//!
//! The branch is fetched with a forced refspec (`+refs/heads/B:refs/remotes/origin/B`), so a
//! force-push simply moves the mirror's ref. Trees are read from the mirror at the fetched commit
//! ([`RepoSource::git_tree`]): there is never a working checkout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{AutotagOption, Cred, CredentialType, FetchOptions, RemoteCallbacks, Repository};

use crate::git::RepoSource;

/// Why a fetch failed: which host, and the cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot fetch branch `{branch}` from {url} (host {host}): {cause}")]
pub struct FetchError {
    pub url: String,
    pub host: String,
    pub branch: String,
    pub cause: String,
}

/// The remote, its branch, and the mirror that holds what was fetched.
pub struct Mirror {
    path: PathBuf,
    url: String,
    branch: String,
    username: String,
    token: Option<String>,
    timeout: Duration,
}

impl Mirror {
    pub fn new(
        state_dir: &Path,
        url: &str,
        branch: &str,
        username: Option<String>,
        token: Option<String>,
        timeout: Duration,
    ) -> Mirror {
        Mirror {
            path: state_dir.join("mirror.git"),
            url: url.to_string(),
            branch: branch.to_string(),
            username: username.unwrap_or_else(|| "x-access-token".into()),
            token,
            timeout,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The remote URL with any user info removed (for logs and the API).
    pub fn display_url(&self) -> String {
        display_url(&self.url)
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches the branch (blocking; run it on a blocking thread) and returns its commit.
    pub fn fetch(&self) -> Result<String, FetchError> {
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let mut ids = self.fetch_refspecs(&self.branch, &[(refspec, self.tracking_ref())])?;
        Ok(ids.remove(0))
    }

    /// Fetches other refs of the remote (e.g. a pull request's `refs/pull/7/head`) into refs of
    /// the mirror, forced: `(remote ref, mirror ref)` pairs. Returns the commit of each, in order.
    /// Blocking, like [`Mirror::fetch`]. The followed branch's tracking ref is not touched.
    pub fn fetch_refs(&self, refs: &[(&str, &str)]) -> Result<Vec<String>, FetchError> {
        let what: Vec<&str> = refs.iter().map(|(r, _)| *r).collect();
        let specs: Vec<(String, String)> = refs
            .iter()
            .map(|(remote, local)| (format!("+{remote}:{local}"), local.to_string()))
            .collect();
        self.fetch_refspecs(&what.join(", "), &specs)
    }

    /// One fetch of `(refspec, local ref)` pairs; the commit of each local ref afterwards.
    fn fetch_refspecs(
        &self,
        what: &str,
        refspecs: &[(String, String)],
    ) -> Result<Vec<String>, FetchError> {
        let err = |cause: String| FetchError {
            url: self.display_url(),
            host: host_of(&self.url),
            branch: what.to_string(),
            cause,
        };
        let repo = self
            .open()
            .map_err(|e| err(format!("mirror: {}", e.message())))?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| err(e.message().to_string()))?;
        let mut callbacks = RemoteCallbacks::new();
        let mut asked = 0;
        let token = self.token.clone();
        let username = self.username.clone();
        callbacks.credentials(move |_url, user_from_url, allowed| {
            asked += 1;
            // libgit2 asks again after a rejected credential: give up instead of looping.
            if asked > 1 {
                return Err(git2::Error::from_str(
                    "authentication failed (credentials were rejected)",
                ));
            }
            match &token {
                Some(t) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                    Cred::userpass_plaintext(user_from_url.unwrap_or(&username), t)
                }
                Some(_) => Err(git2::Error::from_str(
                    "the remote asks for a credential type other than a token",
                )),
                None => Err(git2::Error::from_str(
                    "the remote asks for credentials and no token is configured",
                )),
            }
        });
        let deadline = Instant::now() + self.timeout;
        callbacks.transfer_progress(move |_| Instant::now() < deadline);
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(AutotagOption::None);
        let specs: Vec<&str> = refspecs.iter().map(|(s, _)| s.as_str()).collect();
        remote
            .fetch(&specs, Some(&mut options), None)
            .map_err(|e| {
                if Instant::now() >= deadline {
                    err(format!("timed out after {:?}", self.timeout))
                } else {
                    err(e.message().to_string())
                }
            })?;
        refspecs
            .iter()
            .map(|(spec, local)| {
                repo.refname_to_id(local)
                    .map(|oid| oid.to_string())
                    .map_err(|e| {
                        let name = spec.trim_start_matches('+').split(':').next();
                        err(format!(
                            "the remote has no `{}` ({})",
                            name.unwrap_or(spec),
                            e.message()
                        ))
                    })
            })
            .collect()
    }

    fn open(&self) -> Result<Repository, git2::Error> {
        match Repository::open_bare(&self.path) {
            Ok(r) => Ok(r),
            Err(_) => {
                if let Some(parent) = self.path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                Repository::init_bare(&self.path)
            }
        }
    }

    /// The tree of `commit`, read from the mirror without a checkout.
    pub fn source(&self, commit: &str) -> Result<RepoSource, crate::git::GitError> {
        RepoSource::git_tree(&self.path, commit)
    }

    /// The commit the mirror holds for the branch (from an earlier run), if any.
    pub fn last_fetched(&self) -> Option<String> {
        let repo = Repository::open_bare(&self.path).ok()?;
        repo.refname_to_id(&self.tracking_ref())
            .ok()
            .map(|o| o.to_string())
    }
}

/// `url` without user info (`https://user:token@host/x` → `https://host/x`).
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.scheme() != "file" => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The host of a remote URL; `local` for paths and `file://` URLs.
pub fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => "local".into(),
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "local".into(),
        },
        // scp-like `git@host:path`
        Err(_) => match url
            .split_once('@')
            .and_then(|(_, rest)| rest.split_once(':'))
        {
            Some((host, _)) if !url.starts_with('/') => host.to_string(),
            _ => "local".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_display_urls() {
        assert_eq!(host_of("https://github.com/a/b.git"), "github.com");
        assert_eq!(host_of("http://127.0.0.1:9/a.git"), "127.0.0.1:9");
        assert_eq!(host_of("/srv/git/jobs.git"), "local");
        assert_eq!(host_of("file:///srv/git/jobs.git"), "local");
        assert_eq!(host_of("git@gitlab.com:a/b.git"), "gitlab.com");
        assert_eq!(
            display_url("https://u:secret@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
    }

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn fetches_survives_force_push_and_reports_a_missing_remote() {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("remote.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("weir.yaml"), "a: 1\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "one"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        let mirror = Mirror::new(
            &dir.path().join("state"),
            &format!("file://{}", bare.display()),
            "main",
            None,
            None,
            Duration::from_secs(30),
        );
        let first = mirror.fetch().unwrap();
        let source = mirror.source(&first).unwrap();
        assert_eq!(source.read_file("weir.yaml").unwrap(), b"a: 1\n");
        // Rewrite history and force-push.
        std::fs::write(work.join("weir.yaml"), "a: 2\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "--amend", "-m", "rewritten"]);
        git(&work, &["push", "-q", "-f", bare.to_str().unwrap(), "main"]);
        let second = mirror.fetch().unwrap();
        assert_ne!(first, second);
        assert_eq!(
            mirror
                .source(&second)
                .unwrap()
                .read_file("weir.yaml")
                .unwrap(),
            b"a: 2\n"
        );
        assert_eq!(mirror.last_fetched().as_deref(), Some(second.as_str()));
        // The remote goes away: the error names the host and the cause; the mirror keeps the
        // last fetched commit.
        std::fs::rename(&bare, dir.path().join("gone.git")).unwrap();
        let e = mirror.fetch().unwrap_err();
        assert_eq!(e.host, "local");
        assert!(!e.cause.is_empty());
        assert_eq!(mirror.last_fetched().as_deref(), Some(second.as_str()));
        // A branch that does not exist.
        std::fs::rename(dir.path().join("gone.git"), &bare).unwrap();
        let other = Mirror::new(
            &dir.path().join("state2"),
            bare.to_str().unwrap(),
            "nope",
            None,
            None,
            Duration::from_secs(30),
        );
        assert!(other.fetch().is_err());
    }
}
