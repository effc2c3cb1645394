//! `${env:NAME}` secrets: values taken from the environment of the weir process (the CLI or the
//! daemon) so that passwords and SASL configurations reach jobs without entering Git.
//!
//! A secret's value never enters a desired job: the job keeps the template (`${env:NAME}` in its
//! SQL, arguments or configuration) plus a keyed digest of each value ([`DesiredJob::secrets`]),
//! so plans, diffs, the store and notifications show `${env:NAME}`, and rotating a secret still
//! changes the job's fingerprint (a redeploy "secret NAME changed"). The value is put in only at
//! the edge, in the request that submits or pre-flights the program ([`for_flink`]), and every
//! value read is a known secret of the process ([`crate::redact::register_secret`]), so Flink
//! echoing one is scrubbed.
//!
//! The digest is HMAC-SHA256 under a key of the installation ([`install_key`]): the digests in
//! the store do not let anyone who reads it test guesses of a low-entropy password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::desired::{DesiredJob, Program};

// `${`, `$${` and `${env:` are spelled with `\u{7b}` so that the braces of the code stay
// balanced for scripts/layers.py, which counts them to measure functions.
const ESCAPED_OPEN: &str = "$$\u{7b}";
const ENV_OPEN: &str = "$\u{7b}env:";

/// The environment variable that, when set, is the digest key (any text; hashed). Several weir
/// installations that must agree on fingerprints (a CLI and a daemon on different hosts) set
/// the same value.
pub const KEY_VAR: &str = "WEIR_SECRET_DIGEST_KEY";
/// The key file written next to the store when [`KEY_VAR`] is not set.
pub const KEY_FILE: &str = "secret-digest.key";

/// Where the digest key comes from; chosen once per process before the first load.
static KEY_SOURCE: OnceLock<PathBuf> = OnceLock::new();
static KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Makes `dir` (the store's directory) hold this installation's digest key, unless
/// [`KEY_VAR`] is set. Without a call the key is random per process: digests then only compare
/// within one process (enough for `weir validate`), never across runs.
pub fn install_key(dir: &Path) {
    let _ = KEY_SOURCE.set(dir.join(KEY_FILE));
}

fn key() -> &'static [u8; 32] {
    KEY.get_or_init(|| {
        if let Ok(text) = std::env::var(KEY_VAR)
            && !text.is_empty()
        {
            return Sha256::digest(text.as_bytes()).into();
        }
        match KEY_SOURCE.get() {
            Some(file) => key_from_file(file).unwrap_or_else(|e| {
                tracing::warn!(
                    "cannot read or create the secret digest key {}: {e}; using a key of this \
                     process only (secrets will look changed to the next run)",
                    file.display()
                );
                rand::random()
            }),
            None => rand::random(),
        }
    })
}

/// The key stored in `file`, created (readable by the owner only) when missing.
fn key_from_file(file: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(file) {
        Ok(bytes) if bytes.len() == 64 => {
            let mut key = [0u8; 32];
            hex::decode_to_slice(&bytes, &mut key)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            Ok(key)
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "expected 64 hex digits",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let key: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(file) {
                Ok(mut f) => {
                    std::io::Write::write_all(&mut f, hex::encode(key).as_bytes())?;
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_from_file(file),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The keyed digest of secret `name` holding `value` (hex, 128 bits).
pub fn digest(name: &str, value: &str) -> String {
    digest_with(key(), name, value)
}

fn digest_with(key: &[u8; 32], name: &str, value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The names `text` refers to with `${env:NAME}` (an escaped `$${` is text), in order of first use.
pub fn env_refs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let _ = expand(text, |name| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        Some(String::new())
    });
    out
}

/// `text` with `$${` written as `${` and every `${env:NAME}` replaced by `lookup(NAME)`; the
/// first name `lookup` does not know is the error. Other `${…}` stay as written (the loader has
/// replaced the variables already).
fn expand(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix(ESCAPED_OPEN) {
            out.push_str(&ESCAPED_OPEN[1..]);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(ENV_OPEN)
            && let Some(end) = after.find('}')
        {
            let name = &after[..end];
            out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Every secret the texts refer to, with its keyed digest, or `None` when the process
/// environment does not set it. Every value read becomes a known secret of the process.
pub fn digests<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for text in texts {
        for name in env_refs(text) {
            if out.contains_key(&name) {
                continue;
            }
            let value = std::env::var(&name).ok();
            if let Some(v) = &value {
                crate::redact::register_secret(v);
            }
            let digest = value.map(|v| digest(&name, &v));
            out.insert(name, digest);
        }
    }
    out
}

/// The secrets of `job` that the environment of the process did not set when it was loaded.
pub fn unset(job: &DesiredJob) -> Vec<&str> {
    job.secrets
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|(n, _)| n.as_str())
        .collect()
}

/// A secret that the process environment does not set (any more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "secret `${{env:{name}}}` is not set in the environment of weir's process; set {name} where \
     weir runs"
)]
pub struct UnsetSecret {
    pub name: String,
}

/// Why a definition's secrets cannot be sent as planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Unset(#[from] UnsetSecret),
    #[error(
        "secret `${{env:{name}}}` has changed since the plan was made; run `weir plan` again \
         (the plan's job ids carry the digest of the value it was made with)"
    )]
    Changed { name: String },
}

/// Checks, before anything is touched, that every secret of `job` is set and still holds the
/// value the plan was made with.
pub fn check_as_planned(job: &DesiredJob) -> Result<(), SecretError> {
    for (name, planned) in &job.secrets {
        let value = std::env::var(name).map_err(|_| UnsetSecret { name: name.clone() })?;
        crate::redact::register_secret(&value);
        if planned.as_deref() != Some(digest(name, &value).as_str()) {
            return Err(SecretError::Changed { name: name.clone() });
        }
    }
    for_flink(job)?;
    Ok(())
}

/// `job` as sent to Flink: `${env:NAME}` replaced by the values of the process environment and
/// `$${` written as `${`. Only the submission and pre-flight requests hold this; nothing stores,
/// renders or logs it.
pub fn for_flink(job: &DesiredJob) -> Result<DesiredJob, UnsetSecret> {
    let lookup = |name: &str| {
        let value = std::env::var(name).ok()?;
        crate::redact::register_secret(&value);
        Some(value)
    };
    let fill = |text: &str| expand(text, lookup).map_err(|name| UnsetSecret { name });
    let mut out = job.clone();
    for value in out.flink_configuration.values_mut() {
        *value = fill(value)?.into();
    }
    match &mut out.program {
        Program::Jar { args, .. } => {
            for arg in args.iter_mut() {
                *arg = fill(arg)?.into();
            }
        }
        Program::Sql { script, .. } => *script = fill(script)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_secrets_and_escapes_only() {
        let env = |n: &str| (n == "PW").then(|| "hunter2".to_string());
        assert_eq!(
            expand("a ${env:PW} $${env:PW} ${other} $ $$x", env).unwrap(),
            "a hunter2 ${env:PW} ${other} $ $$x"
        );
        assert_eq!(expand("${env:NOPE}", env).unwrap_err(), "NOPE");
        assert_eq!(
            expand("${env:unterminated", env).unwrap(),
            "${env:unterminated"
        );
    }

    #[test]
    fn finds_references_once() {
        assert_eq!(
            env_refs("${env:A} $${env:B} ${env:A} ${env:C}"),
            vec!["A".to_string(), "C".to_string()]
        );
    }

    #[test]
    fn digests_are_keyed() {
        let a = digest_with(&[1; 32], "PW", "hunter2");
        assert_eq!(a, digest_with(&[1; 32], "PW", "hunter2"));
        assert_ne!(a, digest_with(&[2; 32], "PW", "hunter2"));
        assert_ne!(a, digest_with(&[1; 32], "PW", "hunter3"));
        assert_ne!(a, digest_with(&[1; 32], "PW2", "hunter2"));
        assert!(!a.contains("hunter2"));
        assert_eq!(a.len(), 32);
    }

    /// The edge: values go into the request's copy only, escapes become `${`, and an unset one
    /// is an error (nothing is sent with a reference in it).
    #[test]
    fn values_are_put_in_only_for_flink() {
        let path = std::env::var("PATH").expect("PATH is set in tests");
        let mut job = crate::plan::fixtures::job("a");
        job.flink_configuration
            .insert("k".into(), "x=${env:PATH};$${env:PATH}".into());
        if let Program::Jar { args, .. } = &mut job.program {
            args.push("${env:PATH}".into());
        }
        let sent = for_flink(&job).unwrap();
        assert_eq!(
            sent.flink_configuration["k"],
            format!("x={path};${{env:PATH}}")
        );
        let Program::Jar { args, .. } = &sent.program else {
            panic!()
        };
        assert_eq!(args.last().unwrap(), &path);
        // The desired job itself keeps the reference.
        assert_eq!(job.flink_configuration["k"], "x=${env:PATH};$${env:PATH}");
        job.flink_configuration
            .insert("u".into(), "${env:WEIR_TEST_NEVER_SET_ANYWHERE}".into());
        assert_eq!(
            for_flink(&job).unwrap_err().name,
            "WEIR_TEST_NEVER_SET_ANYWHERE"
        );
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join(KEY_FILE);
        let first = key_from_file(&file).unwrap();
        assert_eq!(key_from_file(&file).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }
}
