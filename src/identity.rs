//! Flink job ids that carry weir's identity.
//!
//! weir chooses the 32-hex job id of every submission itself, so that the cluster alone tells which
//! definition a running job belongs to and which version of it runs, even when weir's store is
//! empty or lost. Flink rejects an id it has seen before, so every submission also gets a fresh
//! nonce. Layout of the 128 bits (big-endian, hex digits in brackets):
//!
//! ```text
//! magic 8 [2] | name hash 48 [12] | code fingerprint 32 [8] | parallelism 16 [4] | nonce 24 [6]
//! ```
//!
//! A Flink-generated (random) id passes for a weir id with probability 2^-56 per definition name,
//! so jobs started outside weir are practically never mistaken for managed ones.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The fixed first byte of every weir-chosen job id.
pub const MAGIC: u8 = 0x3e;

/// A Flink job id (16 bytes, shown as 32 lowercase hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub [u8; 16]);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid Flink job id {text:?}: expected 32 hex digits")]
pub struct InvalidJobId {
    pub text: String,
    #[source]
    pub source: Option<hex::FromHexError>,
}

impl FromStr for JobId {
    type Err = InvalidJobId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        if s.len() != 32 {
            return Err(InvalidJobId {
                text: s.to_string(),
                source: None,
            });
        }
        hex::decode_to_slice(s, &mut out).map_err(|e| InvalidJobId {
            text: s.to_string(),
            source: Some(e),
        })?;
        Ok(JobId(out))
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a weir job id says about the job it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// First 48 bits of SHA-256 of the definition name.
    pub name_hash: u64,
    /// First 32 bits of the definition's code fingerprint.
    pub code_hash: u32,
    /// The parallelism the job was submitted with (saturating at 65535).
    pub parallelism: u16,
    pub nonce: u32,
}

/// The environment (`--env`, `WEIR_ENV`, the daemon's `environment:`) this process plans and
/// applies, chosen once at start-up before anything is loaded. Process-wide because every part
/// that tells jobs apart by name (loader, observer, planner, executor, status) must agree on
/// it, and one process only ever works for one environment.
static ENVIRONMENT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Chooses the environment of this process; `false` when one was chosen already (differently).
pub fn select_environment(environment: Option<String>) -> bool {
    let same = environment.clone();
    ENVIRONMENT.set(environment).is_ok() || ENVIRONMENT.get() == Some(&same)
}

/// The environment of this process, if one was chosen.
pub fn environment() -> Option<&'static str> {
    ENVIRONMENT.get().and_then(|e| e.as_deref())
}

/// 48-bit hash of a definition name, in the environment of this process (see
/// [`name_hash_in`]).
pub fn name_hash(name: &str) -> u64 {
    name_hash_in(environment(), name)
}

/// 48-bit hash of a definition name in `environment`. Without an environment it is the hash of
/// the name alone, as before environments existed (invariant: upgrading weir never changes
/// which running jobs it recognises). In one it is the hash of `name@environment` (`@` is in no
/// job name), so two environments sharing a cluster do not take each other's jobs for theirs.
pub fn name_hash_in(environment: Option<&str>, name: &str) -> u64 {
    let d = match environment {
        None => Sha256::digest(name.as_bytes()),
        Some(env) => Sha256::digest(format!("{name}@{env}").as_bytes()),
    };
    u64::from_be_bytes([0, 0, d[0], d[1], d[2], d[3], d[4], d[5]])
}

/// 32-bit prefix of a code fingerprint.
pub fn code_hash(fingerprint: &[u8; 32]) -> u32 {
    u32::from_be_bytes([
        fingerprint[0],
        fingerprint[1],
        fingerprint[2],
        fingerprint[3],
    ])
}

impl Identity {
    pub fn new(name: &str, fingerprint: &[u8; 32], parallelism: u32, nonce: u32) -> Self {
        Identity {
            name_hash: name_hash(name),
            code_hash: code_hash(fingerprint),
            parallelism: parallelism.min(u16::MAX as u32) as u16,
            nonce: nonce & 0x00ff_ffff,
        }
    }

    pub fn job_id(&self) -> JobId {
        let mut b = [0u8; 16];
        b[0] = MAGIC;
        b[1..7].copy_from_slice(&self.name_hash.to_be_bytes()[2..8]);
        b[7..11].copy_from_slice(&self.code_hash.to_be_bytes());
        b[11..13].copy_from_slice(&self.parallelism.to_be_bytes());
        b[13..16].copy_from_slice(&self.nonce.to_be_bytes()[1..4]);
        JobId(b)
    }

    /// Decodes a job id; `None` for ids weir did not choose.
    pub fn decode(id: &JobId) -> Option<Identity> {
        let b = id.0;
        if b[0] != MAGIC {
            return None;
        }
        Some(Identity {
            name_hash: u64::from_be_bytes([0, 0, b[1], b[2], b[3], b[4], b[5], b[6]]),
            code_hash: u32::from_be_bytes([b[7], b[8], b[9], b[10]]),
            parallelism: u16::from_be_bytes([b[11], b[12]]),
            nonce: u32::from_be_bytes([0, b[13], b[14], b[15]]),
        })
    }

    pub fn belongs_to(&self, name: &str) -> bool {
        self.name_hash == name_hash(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let fp = [7u8; 32];
        let id = Identity::new("orders-enricher", &fp, 4, 0x00ab_cdef);
        let job_id = id.job_id();
        assert_eq!(job_id.to_string().len(), 32);
        assert!(job_id.to_string().starts_with("3e"));
        let back = Identity::decode(&job_id).unwrap();
        assert_eq!(back, id);
        assert!(back.belongs_to("orders-enricher"));
        assert!(!back.belongs_to("orders-enricher-2"));
        assert_eq!(back.parallelism, 4);
        assert_eq!(back.code_hash, 0x0707_0707);
        let parsed: JobId = job_id.to_string().parse().unwrap();
        assert_eq!(parsed, job_id);
    }

    #[test]
    fn foreign_ids_are_not_weir_ids() {
        let id: JobId = "a1b2c3d4e5f60718293a4b5c6d7e8f90".parse().unwrap();
        assert!(Identity::decode(&id).is_none());
        assert!("xyz".parse::<JobId>().is_err());
        assert!("zz".repeat(16).parse::<JobId>().is_err());
    }

    /// Invariant 5: without environments, a definition keeps the job ids of earlier versions.
    /// The id was computed by weir before environments existed.
    #[test]
    fn ids_without_environment_are_unchanged() {
        let id = Identity::new("orders-enricher", &[7u8; 32], 4, 0x00ab_cdef).job_id();
        assert_eq!(id.to_string(), "3efcec63af78bd070707070004abcdef");
        assert_eq!(name_hash_in(None, "orders-enricher"), 0xfcec_63af_78bd);
    }

    #[test]
    fn environments_have_their_own_identity() {
        let none = name_hash_in(None, "orders");
        let staging = name_hash_in(Some("staging"), "orders");
        let prod = name_hash_in(Some("prod"), "orders");
        assert_ne!(none, staging);
        assert_ne!(staging, prod);
        assert_eq!(prod, name_hash_in(Some("prod"), "orders"));
    }

    #[test]
    fn nonce_distinguishes_submissions() {
        let fp = [1u8; 32];
        let a = Identity::new("j", &fp, 1, 1).job_id();
        let b = Identity::new("j", &fp, 1, 2).job_id();
        assert_ne!(a, b);
    }
}
