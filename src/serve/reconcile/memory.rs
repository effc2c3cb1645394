//! What the worker must not forget when the daemon restarts: self-heal attempts and the jobs whose
//! apply failed at a revision, kept in the store's `daemon_state`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::status::BlockedInfo;
use crate::clock::now_ms;
use crate::store::Store;

/// Self-heal bookkeeping of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heal {
    pub attempts: u32,
    pub last_attempt_ms: i64,
    pub next_at_ms: i64,
}

/// A job whose change failed at a revision, with its cluster state seen around the failure
/// ([`crate::observe::Observation::job_fingerprint`] before the apply and after it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    pub digest: String,
    pub fingerprints: BTreeSet<String>,
    pub info: BlockedInfo,
    /// The cluster refused the job's program at pre-flight (not an apply that failed): it is
    /// not pre-flighted again (pre-flight runs its `main()` on the cluster) until the revision
    /// changes, whatever the cluster state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preflight: bool,
}

/// Stored under [`MEMORY_KEY`]: a restart must neither reset the self-heal attempt limit nor
/// retry a revision that failed.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// The revision the self-heal counters belong to; a new definition starts them again.
    pub heal_digest: Option<String>,
    pub heal: BTreeMap<String, Heal>,
    /// By job name.
    pub blocked: BTreeMap<String, Blocked>,
}

const MEMORY_KEY: &str = "reconcile";

impl Memory {
    /// Starts the self-heal counters again when the definition (revision digest) is new.
    /// Returns whether it was.
    pub fn new_definition(&mut self, digest: &str) -> bool {
        let new = self.heal_digest.as_deref() != Some(digest);
        if new {
            self.heal.clear();
            self.heal_digest = Some(digest.to_string());
        }
        new
    }

    /// The blocks in force, for the status.
    pub fn blocked_infos(&self) -> Vec<BlockedInfo> {
        self.blocked.values().map(|b| b.info.clone()).collect()
    }
}

/// Reads the memory an earlier run left (an empty one when there is none or it is unreadable).
pub async fn load(store: &Store) -> Memory {
    match store.daemon_state(MEMORY_KEY).await {
        Ok(Some(json)) => match serde_json::from_str::<Memory>(&json) {
            Ok(m) => {
                if !m.heal.is_empty() || !m.blocked.is_empty() {
                    info!(
                        self_heal = m.heal.len(),
                        blocked = m.blocked.len(),
                        "remembered self-heal attempts and failed revisions"
                    );
                }
                m
            }
            Err(e) => {
                warn!("ignoring the stored reconcile memory: {e}");
                Memory::default()
            }
        },
        Ok(None) => Memory::default(),
        Err(e) => {
            warn!("reading the reconcile memory: {e}");
            Memory::default()
        }
    }
}

/// Writes the memory (failures are logged: the next save tries again).
pub async fn save(store: &Store, memory: &RefCell<Memory>) {
    let json = match serde_json::to_string(&*memory.borrow()) {
        Ok(j) => j,
        Err(e) => {
            warn!("serialising the reconcile memory: {e}");
            return;
        }
    };
    if let Err(e) = store.put_daemon_state(MEMORY_KEY, &json, now_ms()).await {
        warn!("saving the reconcile memory: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_memory_reads_back_the_same() {
        // The shape an earlier daemon wrote; field names are part of the store.
        let stored = r#"{"healDigest":"d1","heal":{"a":{"attempts":2,"lastAttemptMs":5,"nextAtMs":9}},
            "blocked":{"b":{"digest":"d1","fingerprints":["f1"],"info":{"job":"b","revision":"c0ffee",
            "applyId":"apply-1","error":"boom"}}}}"#;
        let m: Memory = serde_json::from_str(stored).unwrap();
        assert_eq!(m.heal["a"].attempts, 2);
        assert_eq!(m.blocked["b"].info.apply_id, "apply-1");
        let again: Memory = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again.heal, m.heal);
        assert_eq!(again.blocked_infos().len(), 1);
    }

    #[test]
    fn a_new_definition_starts_self_heal_again() {
        let mut m = Memory::default();
        assert!(m.new_definition("d1"));
        m.heal.insert(
            "a".into(),
            Heal {
                attempts: 3,
                last_attempt_ms: 0,
                next_at_ms: 0,
            },
        );
        assert!(!m.new_definition("d1"));
        assert_eq!(m.heal.len(), 1);
        assert!(m.new_definition("d2"));
        assert!(m.heal.is_empty());
    }
}
