//! The SSH server's host key checked against an OpenSSH `known_hosts` file, as `ssh` does with
//! `StrictHostKeyChecking yes`: an unknown host or a different key is refused, never learnt.
//!
//! Supported entries: host patterns (`host`, `[host]:port`, comma lists, `*`/`?` globs,
//! `!negation`), hashed names (`|1|salt|hash`, HMAC-SHA1 of the name as `ssh-keygen -H` writes
//! them) and `@revoked` keys. `@cert-authority` lines are skipped: host certificates are not
//! offered through libgit2, so such a line can never vouch for a key here.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Patterns(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

/// A parsed `known_hosts` file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// Why a host key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyError {
    /// No entry names the host.
    Unknown {
        host: String,
        key_type: String,
        fingerprint: String,
        file: PathBuf,
    },
    /// Entries name the host, none with the presented key.
    Mismatch {
        host: String,
        key_type: String,
        fingerprint: String,
        file: PathBuf,
        /// `line N: type fingerprint` of each entry for the host.
        known: Vec<String>,
    },
    /// Entries name the host, all with keys of other types. libgit2 lets libssh2 choose the host
    /// key type from `~/.ssh/known_hosts`, not from this file, so the file should hold every key
    /// type the server has (`ssh-keyscan` prints them all).
    OtherType {
        host: String,
        key_type: String,
        fingerprint: String,
        file: PathBuf,
        known_types: Vec<String>,
    },
    /// The key is listed as `@revoked`.
    Revoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
}

impl fmt::Display for HostKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostKeyError::Unknown {
                host,
                key_type,
                fingerprint,
                file,
            } => write!(
                f,
                "host key verification failed: the {key_type} key of {host} ({fingerprint}) is \
                 not in known_hosts {} (no entry for {host}; add it, e.g. from `ssh-keyscan`, \
                 after checking the fingerprint)",
                file.display()
            ),
            HostKeyError::Mismatch {
                host,
                key_type,
                fingerprint,
                file,
                known,
            } => write!(
                f,
                "host key verification failed: the {key_type} key of {host} ({fingerprint}) does \
                 not match known_hosts {} ({}); the server's key changed or the connection is \
                 intercepted",
                file.display(),
                known.join(", ")
            ),
            HostKeyError::OtherType {
                host,
                key_type,
                fingerprint,
                file,
                known_types,
            } => write!(
                f,
                "host key verification failed: the server {host} offered its {key_type} key \
                 ({fingerprint}), and known_hosts {} has only {} keys for it; add the server's \
                 {key_type} key after checking its fingerprint",
                file.display(),
                known_types.join(", ")
            ),
            HostKeyError::Revoked {
                host,
                fingerprint,
                file,
                line,
            } => write!(
                f,
                "host key verification failed: the key of {host} ({fingerprint}) is marked \
                 @revoked in known_hosts {} (line {line})",
                file.display()
            ),
        }
    }
}

/// The known_hosts file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read known_hosts {}", path.display())]
pub struct KnownHostsError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl KnownHosts {
    pub fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
        let text = std::fs::read_to_string(path).map_err(|source| KnownHostsError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(KnownHosts::parse(path, &text))
    }

    /// Parses the file's text; lines that cannot be parsed are ignored, as OpenSSH does.
    pub fn parse(path: &Path, text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_line(i + 1, l))
            .collect();
        KnownHosts {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// How many usable entries (not `@cert-authority`) the file has.
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.marker != Marker::CertAuthority)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Accepts `key` (the SSH wire-format public key blob, as base64-encoded in the file) of
    /// type `key_type` (e.g. `ssh-ed25519`) for `host` on `port`.
    pub fn check(
        &self,
        host: &str,
        port: u16,
        key_type: &str,
        key: &[u8],
    ) -> Result<(), HostKeyError> {
        let name = lookup_name(host, port);
        let fingerprint = fingerprint(key);
        let for_host: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.marker != Marker::CertAuthority && e.hosts.matches(&name))
            .collect();
        if let Some(e) = for_host
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.key == key)
        {
            return Err(HostKeyError::Revoked {
                host: name,
                fingerprint,
                file: self.path.clone(),
                line: e.line,
            });
        }
        let known: Vec<&&Entry> = for_host
            .iter()
            .filter(|e| e.marker == Marker::None)
            .collect();
        if known.iter().any(|e| e.key_type == key_type && e.key == key) {
            return Ok(());
        }
        if known.is_empty() {
            return Err(HostKeyError::Unknown {
                host: name,
                key_type: key_type.to_string(),
                fingerprint,
                file: self.path.clone(),
            });
        }
        if !known.iter().any(|e| e.key_type == key_type) {
            let mut known_types: Vec<String> = known.iter().map(|e| e.key_type.clone()).collect();
            known_types.dedup();
            return Err(HostKeyError::OtherType {
                host: name,
                key_type: key_type.to_string(),
                fingerprint,
                file: self.path.clone(),
                known_types,
            });
        }
        Err(HostKeyError::Mismatch {
            host: name,
            key_type: key_type.to_string(),
            fingerprint,
            file: self.path.clone(),
            known: known
                .iter()
                .map(|e| {
                    format!(
                        "line {}: {} {}",
                        e.line,
                        e.key_type,
                        self::fingerprint(&e.key)
                    )
                })
                .collect(),
        })
    }
}

/// The name a host is looked up by: `host` on port 22, `[host]:port` otherwise (lower case).
fn lookup_name(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// OpenSSH's fingerprint: `SHA256:` and the unpadded base64 of the blob's SHA-256.
pub fn fingerprint(key: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(key))
    )
}

fn parse_line(line: usize, text: &str) -> Option<Entry> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let key = STANDARD.decode(fields.next()?).ok()?;
    // The blob names its own type; an entry whose type field disagrees is malformed.
    if blob_type(&key)? != key_type {
        return None;
    }
    let hosts = if let Some(hashed) = first.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|')?;
        Hosts::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        }
    } else {
        Hosts::Patterns(first.split(',').map(|p| p.to_ascii_lowercase()).collect())
    };
    Some(Entry {
        line,
        marker,
        hosts,
        key_type,
        key,
    })
}

/// The key type string at the start of an SSH public key blob.
fn blob_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut matched = false;
                for p in patterns {
                    if let Some(negated) = p.strip_prefix('!') {
                        if glob(negated.as_bytes(), name.as_bytes()) {
                            return false;
                        }
                    } else if glob(p.as_bytes(), name.as_bytes()) {
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

/// `*` and `?` wildcards, as in OpenSSH's `match_pattern`.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up ed25519 blob: the type string, then 32 key bytes.
    fn blob(seed: u8) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&11u32.to_be_bytes());
        b.extend_from_slice(b"ssh-ed25519");
        b.extend_from_slice(&32u32.to_be_bytes());
        b.extend_from_slice(&[seed; 32]);
        b
    }

    fn line(hosts: &str, seed: u8) -> String {
        format!("{hosts} ssh-ed25519 {}\n", STANDARD.encode(blob(seed)))
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    fn kh(text: &str) -> KnownHosts {
        KnownHosts::parse(Path::new("/etc/weir/known_hosts"), text)
    }

    #[test]
    fn plain_names_ports_and_patterns() {
        let k = kh(&format!(
            "# comment\n\n{}{}{}{}garbage line\n",
            line("git.example.com,10.0.0.5", 1),
            line("[git.example.com]:2222", 2),
            line("*.corp.example,!bad.corp.example", 3),
            line("[127.0.0.1]:*", 4),
        ));
        assert_eq!(k.len(), 4);
        assert!(
            k.check("git.example.com", 22, "ssh-ed25519", &blob(1))
                .is_ok()
        );
        assert!(
            k.check("GIT.example.com", 22, "ssh-ed25519", &blob(1))
                .is_ok()
        );
        assert!(k.check("10.0.0.5", 22, "ssh-ed25519", &blob(1)).is_ok());
        // A plain name does not cover other ports, as in OpenSSH.
        assert!(
            k.check("git.example.com", 2222, "ssh-ed25519", &blob(2))
                .is_ok()
        );
        let e = k
            .check("git.example.com", 2222, "ssh-ed25519", &blob(1))
            .unwrap_err();
        assert!(matches!(e, HostKeyError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("[git.example.com]:2222"), "{e}");
        assert!(e.to_string().contains("line 4"), "{e}");
        assert!(
            k.check("a.corp.example", 22, "ssh-ed25519", &blob(3))
                .is_ok()
        );
        let e = k
            .check("bad.corp.example", 22, "ssh-ed25519", &blob(3))
            .unwrap_err();
        assert!(matches!(e, HostKeyError::Unknown { .. }), "{e}");
        assert!(k.check("127.0.0.1", 40123, "ssh-ed25519", &blob(4)).is_ok());
        let e = k
            .check("other.example", 22, "ssh-ed25519", &blob(1))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("not in known_hosts /etc/weir/known_hosts"),
            "{msg}"
        );
        assert!(msg.contains("other.example"), "{msg}");
        assert!(msg.contains(&fingerprint(&blob(1))), "{msg}");
    }

    #[test]
    fn hashed_names_and_revoked_keys() {
        let k = kh(&format!(
            "{}{}@revoked * {} {}\n@cert-authority *.example.com ssh-ed25519 {}\n",
            line(&hashed("git.example.com", b"0123456789abcdefghij"), 1),
            line(&hashed("[127.0.0.1]:2200", b"salt-salt-salt-salt-"), 2),
            "ssh-ed25519",
            STANDARD.encode(blob(9)),
            STANDARD.encode(blob(8)),
        ));
        assert!(
            k.check("git.example.com", 22, "ssh-ed25519", &blob(1))
                .is_ok()
        );
        assert!(k.check("127.0.0.1", 2200, "ssh-ed25519", &blob(2)).is_ok());
        assert!(matches!(
            k.check("127.0.0.1", 2201, "ssh-ed25519", &blob(2)),
            Err(HostKeyError::Unknown { .. })
        ));
        assert!(matches!(
            k.check("git.example.com", 22, "ssh-ed25519", &blob(7)),
            Err(HostKeyError::Mismatch { .. })
        ));
        // A revoked key is refused even where another entry would accept it.
        let e = k
            .check("anything.example", 22, "ssh-ed25519", &blob(9))
            .unwrap_err();
        assert!(e.to_string().contains("@revoked"), "{e}");
        // A CA line vouches for nothing here.
        assert!(
            k.check("x.example.com", 22, "ssh-ed25519", &blob(8))
                .is_err()
        );
    }

    #[test]
    fn the_type_must_match_too() {
        let k = kh(&line("h", 1));
        let e = k.check("h", 22, "ssh-rsa", &blob(1)).unwrap_err();
        assert!(matches!(e, HostKeyError::OtherType { .. }), "{e}");
        assert!(e.to_string().contains("has only ssh-ed25519 keys"), "{e}");
        // An entry whose type field contradicts its blob is ignored.
        let bad = format!("h ssh-rsa {}\n", STANDARD.encode(blob(1)));
        assert!(kh(&bad).is_empty());
        assert!(glob(b"a*b?c", b"axxbyc"));
        assert!(!glob(b"a*b?c", b"axxbc"));
    }
}
