//! Following the remote: a bare mirror under the state directory, fetched with git2.
//!
//! The branch is fetched with a forced refspec (`+refs/heads/B:refs/remotes/origin/B`), so a
//! force-push simply moves the mirror's ref. Trees are read from the mirror at the fetched commit
//! ([`RepoSource::git_tree`]): there is never a working checkout.
//!
//! Transports: local paths and `file://`; HTTPS with a token (basic auth) and the system's CAs
//! plus an optional private CA; SSH with a private key, the server's host key checked against a
//! `known_hosts` file ([`super::known_hosts`]). Every fetch goes through [`Mirror::callbacks`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, RemoteCallbacks,
    Repository,
};

use super::config::RepoConfig;
use super::known_hosts::KnownHosts;
use crate::git::RepoSource;
use crate::text::error_chain;

/// Why a fetch failed: which host, and the cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot fetch branch `{branch}` from {url} (host {host}): {cause}")]
pub struct FetchError {
    pub url: String,
    pub host: String,
    pub branch: String,
    pub cause: String,
}

/// How to log in over SSH and which host keys to accept.
#[derive(Clone)]
pub struct SshAuth {
    /// Private key file; read by libssh2 at each fetch, so a rotated key is picked up.
    pub key: PathBuf,
    pub passphrase: Option<String>,
    /// OpenSSH `known_hosts`; read at each fetch.
    pub known_hosts: PathBuf,
}

/// Why [`Mirror::callbacks`] refused a credential or a server, kept aside because libgit2
/// replaces some callback errors with its own message (a refused host key becomes "invalid or
/// unknown remote ssh hostkey").
#[derive(Clone, Default)]
pub struct Refusal(Arc<Mutex<Option<String>>>);

impl Refusal {
    fn refuse(&self, why: String) -> git2::Error {
        let e = git2::Error::from_str(&why);
        if let Ok(mut r) = self.0.lock() {
            *r = Some(why);
        }
        e
    }

    /// The cause of a failed operation: our refusal if there was one, else libgit2's message.
    pub fn cause(&self, e: &git2::Error) -> String {
        if let Some(why) = self.0.lock().ok().and_then(|r| r.clone()) {
            return why;
        }
        // libgit2 reports an unverifiable server certificate as a generic SSL error.
        if e.class() == git2::ErrorClass::Ssl && e.message().contains("certificate") {
            return format!(
                "{}: the server's TLS certificate is not signed by a trusted CA (the system's, \
                 or repo.caFile) or does not name the host",
                e.message()
            );
        }
        e.message().to_string()
    }
}

/// The remote, its branch, and the mirror that holds what was fetched.
pub struct Mirror {
    path: PathBuf,
    url: String,
    branch: String,
    username: Option<String>,
    token: Option<String>,
    ssh: Option<SshAuth>,
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
            username,
            token,
            ssh: None,
            timeout,
        }
    }

    pub fn with_ssh(mut self, ssh: SshAuth) -> Mirror {
        self.ssh = Some(ssh);
        self
    }

    /// The mirror of the daemon's `repo`: resolves its secrets, checks that the key, known_hosts
    /// and CA files are usable (so a mistake stops the start, not every fetch) and makes
    /// libgit2 trust `caFile`. Call before any fetch: the CA setting is process-wide.
    pub fn from_config(state_dir: &Path, repo: &RepoConfig) -> anyhow::Result<Mirror> {
        let token = repo
            .token
            .as_ref()
            .map(|t| t.resolve("repo.token"))
            .transpose()?;
        let mut mirror = Mirror::new(
            state_dir,
            &repo.url,
            &repo.branch,
            repo.username.clone(),
            token,
            Duration::from_secs(repo.fetch_timeout_seconds),
        );
        if let (Some(key), Some(known_hosts)) = (&repo.ssh_key, &repo.known_hosts) {
            std::fs::File::open(&key.file)
                .with_context(|| format!("repo.sshKey: opening {}", key.file.display()))?;
            let hosts = KnownHosts::load(known_hosts).context("repo.knownHosts")?;
            if hosts.is_empty() {
                bail!(
                    "repo.knownHosts: {} has no host key entries",
                    known_hosts.display()
                );
            }
            mirror = mirror.with_ssh(SshAuth {
                key: key.file.clone(),
                passphrase: key
                    .passphrase
                    .as_ref()
                    .map(|p| p.resolve("repo.sshKey.passphrase"))
                    .transpose()?,
                known_hosts: known_hosts.clone(),
            });
        }
        if let Some(ca) = &repo.ca_file {
            trust_ca_file(ca)?;
        }
        set_network_timeouts(mirror.timeout)?;
        Ok(mirror)
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

    fn error(&self, cause: String) -> FetchError {
        FetchError {
            url: self.display_url(),
            host: host_of(&self.url),
            branch: self.branch.clone(),
            cause,
        }
    }

    /// Credentials and server verification for any network operation on the remote: the token
    /// over HTTPS, the key over SSH (each offered once: a rejected credential fails the fetch
    /// instead of looping), the SSH host key checked against `known_hosts`. X.509 certificates are
    /// left to libgit2's OpenSSL verification (system CAs plus `caFile`). Map the operation's
    /// error through the returned [`Refusal`].
    pub fn callbacks(&self) -> (RemoteCallbacks<'static>, Refusal) {
        let refusal = Refusal::default();
        let mut callbacks = RemoteCallbacks::new();
        let mut offered = false;
        let token = self.token.clone();
        let ssh = self.ssh.clone();
        let is_ssh = ssh_target(&self.url).is_some();
        let username = self
            .username
            .clone()
            .unwrap_or_else(|| if is_ssh { "git" } else { "x-access-token" }.to_string());
        let refused = refusal.clone();
        callbacks.credentials(move |_url, user_from_url, allowed| {
            let user = user_from_url.unwrap_or(&username);
            // Over SSH without a user in the URL, libgit2 first asks only for the user name.
            if allowed == CredentialType::USERNAME {
                return Cred::username(user);
            }
            if offered {
                return Err(
                    refused.refuse(if allowed.contains(CredentialType::SSH_KEY) {
                        "authentication failed: the server rejected the SSH key".into()
                    } else {
                        "authentication failed: the server rejected the token".into()
                    }),
                );
            }
            offered = true;
            if allowed.contains(CredentialType::SSH_KEY) {
                return match &ssh {
                    Some(s) => Cred::ssh_key(user, None, &s.key, s.passphrase.as_deref()),
                    None => Err(refused.refuse(
                        "authentication failed: the server asks for an SSH key and repo.sshKey \
                         is not configured"
                            .into(),
                    )),
                };
            }
            match &token {
                Some(t) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                    Cred::userpass_plaintext(user, t)
                }
                Some(_) => Err(refused.refuse(
                    "authentication failed: the server asks for a credential type other than a \
                     token"
                        .into(),
                )),
                None => Err(refused.refuse(
                    "authentication failed: the server asks for credentials and repo.token is \
                     not configured"
                        .into(),
                )),
            }
        });
        let known_hosts = self.ssh.as_ref().map(|s| s.known_hosts.clone());
        let target = ssh_target(&self.url);
        let refused = refusal.clone();
        callbacks.certificate_check(move |cert, hostname| {
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let (host, port) = match &target {
                Some(t) => (t.host.as_str(), t.port),
                None => (hostname, 22),
            };
            let Some(path) = &known_hosts else {
                return Err(refused.refuse(format!(
                    "host key verification failed: no repo.knownHosts to check the key of {host}"
                )));
            };
            let (Some(key), Some(kind)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
                return Err(refused.refuse(format!(
                    "host key verification failed: libssh2 did not give the host key of {host}"
                )));
            };
            let hosts = KnownHosts::load(path).map_err(|e| refused.refuse(error_chain(&e)))?;
            hosts
                .check(host, port, kind.name(), key)
                .map(|()| CertificateCheckStatus::CertificateOk)
                .map_err(|e| refused.refuse(e.to_string()))
        });
        (callbacks, refusal)
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

    /// One fetch of `(refspec, local ref)` pairs, with every credential and server check of
    /// [`Mirror::callbacks`]; the commit of each local ref afterwards.
    fn fetch_refspecs(
        &self,
        what: &str,
        refspecs: &[(String, String)],
    ) -> Result<Vec<String>, FetchError> {
        let err = |cause: String| FetchError {
            branch: what.to_string(),
            ..self.error(cause)
        };
        let repo = self
            .open()
            .map_err(|e| err(format!("mirror: {}", e.message())))?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| err(e.message().to_string()))?;
        let (mut callbacks, refusal) = self.callbacks();
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
                    err(refusal.cause(&e))
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
    if let Some(t) = ssh_target(url) {
        return if t.port == 22 {
            t.host
        } else {
            format!("{}:{}", t.host, t.port)
        };
    }
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => "local".into(),
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "local".into(),
        },
        Err(_) => "local".into(),
    }
}

/// Where an SSH remote is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

/// The SSH server of `ssh://`, `git+ssh://`, `ssh+git://` and scp-like `[user@]host:path` URLs
/// (Git's rule: a colon before any slash); `None` for every other URL and for local paths.
pub fn ssh_target(url: &str) -> Option<SshTarget> {
    if let Some((scheme, _)) = url.split_once("://") {
        if !matches!(scheme, "ssh" | "git+ssh" | "ssh+git") {
            return None;
        }
        let u = reqwest::Url::parse(url).ok()?;
        let host = u.host_str()?.trim_start_matches('[').trim_end_matches(']');
        return Some(SshTarget {
            user: Some(u.username().to_string()).filter(|s| !s.is_empty()),
            host: host.to_string(),
            port: u.port().unwrap_or(22),
        });
    }
    let colon = url.find(':')?;
    if url[..colon].contains('/') {
        return None;
    }
    let (user, host) = match url[..colon].rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, &url[..colon]),
    };
    // A single letter is a Windows drive (`C:\...`), not a host.
    if host.is_empty() || host.len() == 1 {
        return None;
    }
    Some(SshTarget {
        user,
        host: host.to_string(),
        port: 22,
    })
}

/// Bounds connecting and every network read: the fetch deadline alone is only checked while
/// objects arrive, so a host that drops packets or a server that stops answering would hold the
/// worker for the OS's TCP timeouts (or forever).
fn set_network_timeouts(fetch_timeout: Duration) -> anyhow::Result<()> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    let connect = fetch_timeout.min(Duration::from_secs(30));
    // SAFETY: as in `trust_ca_file`, called once at start before any other libgit2 use.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect))?;
        git2::opts::set_server_timeout_in_milliseconds(ms(fetch_timeout))?;
    }
    Ok(())
}

/// Makes libgit2 (OpenSSL) trust the CA certificates in `path` in addition to the system's.
fn trust_ca_file(path: &Path) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("repo.caFile: reading {}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!(
            "repo.caFile: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    // SAFETY: libgit2 options must not change while other libgit2 calls run; the daemon calls
    // this once at start, before its worker (the only user of libgit2) exists.
    unsafe { git2::opts::set_ssl_cert_file(path) }
        .map_err(|e| anyhow::anyhow!("repo.caFile: {}: {}", path.display(), e.message()))
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
            host_of("ssh://git@127.0.0.1:2222/srv/a.git"),
            "127.0.0.1:2222"
        );
        assert_eq!(host_of("ssh://git@[::1]/srv/a.git"), "::1");
        assert_eq!(
            ssh_target("git@gitlab.com:a/b.git"),
            Some(SshTarget {
                user: Some("git".into()),
                host: "gitlab.com".into(),
                port: 22
            })
        );
        assert_eq!(ssh_target("gitlab.com:a/b.git").unwrap().user, None);
        assert_eq!(ssh_target("git+ssh://h/a.git").unwrap().port, 22);
        assert_eq!(ssh_target("ssh://u@h:2222/a.git").unwrap().port, 2222);
        assert_eq!(ssh_target("https://h/a.git"), None);
        assert_eq!(ssh_target("/srv/a:b.git"), None);
        assert_eq!(ssh_target("./a:b"), None);
        assert_eq!(ssh_target("C:\\repos\\a"), None);
        assert_eq!(ssh_target("file:///srv/a.git"), None);
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
