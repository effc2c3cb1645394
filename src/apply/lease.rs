//! A lease on the cluster per definition, so two weir processes (two stores, two CI jobs, the
//! CLI and the daemon) never apply the same job on one cluster at once, while changes of
//! different jobs never wait for each other.
//!
//! The lease is a marker jar in Flink's upload directory (the one piece of shared, listable
//! state every Flink session cluster has): `weir-lock-<name hash hex>-<expiry ms>-<holder>.jar`,
//! an empty zip. A process uploads its marker, lists the jars again and goes ahead only when its
//! marker is strictly the oldest unexpired one of that name hash (by Flink's upload time);
//! otherwise it deletes its marker and refuses. A tie refuses both: a process that listed before
//! the other's upload may already have gone ahead, so a tie must never let the later one win. Expired
//! markers (a holder that crashed) are ignored and deleted. The holder id is the apply id, so a
//! resumed apply takes over its own earlier lease.

use crate::clock::now_ms;
use crate::flink::{FlinkClient, UploadedJar};
use crate::identity;
use crate::plan::Change;

use super::{Applier, ApplyError, StepError};

const PREFIX: &str = "weir-lock-";

/// Slack on top of the step timeouts: the lease outlives the longest change it guards.
const LEASE_SLACK_MS: i64 = 5 * 60 * 1000;

/// A marker jar seen in `GET /jars`.
#[derive(Debug, Clone, PartialEq)]
struct Marker {
    jar_id: String,
    name_hash: String,
    expiry_ms: i64,
    holder: String,
    uploaded_ms: i64,
}

pub(super) fn marker_name(name_hash: &str, expiry_ms: i64, holder: &str) -> String {
    format!("{PREFIX}{name_hash}-{expiry_ms}-{holder}.jar")
}

fn parse(jar: &UploadedJar) -> Option<Marker> {
    let rest = jar.name.strip_prefix(PREFIX)?.strip_suffix(".jar")?;
    let (name_hash, rest) = rest.split_once('-')?;
    let (expiry, holder) = rest.split_once('-')?;
    Some(Marker {
        jar_id: jar.id.clone(),
        name_hash: name_hash.to_string(),
        expiry_ms: expiry.parse().ok()?,
        holder: holder.to_string(),
        uploaded_ms: jar.uploaded_ms.unwrap_or(0),
    })
}

/// The unexpired markers of `name_hash`, the holder first; and the expired ones.
fn markers(jars: &[UploadedJar], name_hash: &str, now: i64) -> (Vec<Marker>, Vec<Marker>) {
    let (mut live, expired): (Vec<Marker>, Vec<Marker>) = jars
        .iter()
        .filter_map(parse)
        .filter(|m| m.name_hash == name_hash)
        .partition(|m| m.expiry_ms > now);
    live.sort_by(|a, b| {
        (a.uploaded_ms, &a.holder, &a.jar_id).cmp(&(b.uploaded_ms, &b.holder, &b.jar_id))
    });
    (live, expired)
}

/// A file name safe for Flink's upload directory; apply ids (`apply-<time>-<hex>`) pass as they
/// are, so a marker names the apply record of its holder (the holder is the rest of the name
/// after the expiry, `-` included).
fn holder_id(apply_id: &str) -> String {
    apply_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// An empty zip (the end-of-central-directory record alone): a jar Flink lists and never runs.
const EMPTY_JAR: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A lease this process holds; released with [`Applier::release_lease`].
pub(super) struct Lease {
    jar_id: String,
}

impl Applier {
    /// How long a lease lasts: longer than the longest change (stop, submit and start waits).
    fn lease_ms(&self) -> i64 {
        let steps =
            self.savepoint_timeout + self.run_timeout + self.submit_settle + self.start_timeout;
        i64::try_from(steps.as_millis()).unwrap_or(i64::MAX / 2) + LEASE_SLACK_MS
    }

    /// Takes the lease of `change`'s definition on its cluster, or refuses when another
    /// process holds it (naming the holder and when its lease ends).
    pub(super) async fn acquire_lease(
        &self,
        change: &Change,
        apply_id: &str,
        client: &FlinkClient,
    ) -> Result<Lease, ApplyError> {
        let job = change.job.as_str();
        let hash = format!("{:016x}", identity::name_hash(job));
        let holder = holder_id(apply_id);
        let flink = Self::flink(job);
        let now = now_ms();
        let (live, expired) = markers(&client.list_jars().await.map_err(&flink)?, &hash, now);
        // Expired markers (crashed holders), this apply's own earlier marker (a resumed apply
        // takes over its lease) and the marker of an apply of this store that has finished (its
        // process died and the resume finished it: it runs no more) go; a failed delete is
        // harmless (another process may have deleted it first).
        for m in expired.iter().chain(live.iter()) {
            if m.expiry_ms <= now || m.holder == holder || self.finished_here(&m.holder).await? {
                let _ = client.delete_jar(&m.jar_id).await;
            }
        }
        let name = marker_name(&hash, now + self.lease_ms(), &holder);
        let mine = client
            .upload_jar(&name, EMPTY_JAR.to_vec())
            .await
            .map_err(&flink)?;
        let (listed, _) = markers(&client.list_jars().await.map_err(&flink)?, &hash, now_ms());
        let mut live = Vec::new();
        for m in listed {
            if m.jar_id == mine || !self.finished_here(&m.holder).await? {
                live.push(m);
            }
        }
        let uploaded = live
            .iter()
            .find(|m| m.jar_id == mine)
            .map_or(i64::MAX, |m| m.uploaded_ms);
        let older = live
            .iter()
            .find(|m| m.jar_id != mine && m.uploaded_ms <= uploaded);
        match older {
            Some(first) => {
                let _ = client.delete_jar(&mine).await;
                Err(ApplyError::step(
                    job,
                    StepError::LeaseHeld {
                        holder: first.holder.clone(),
                        until_ms: first.expiry_ms,
                    },
                ))
            }
            None => Ok(Lease { jar_id: mine }),
        }
    }

    /// `holder` is an apply of this store that has finished.
    async fn finished_here(&self, holder: &str) -> Result<bool, ApplyError> {
        Ok(self
            .store
            .apply(holder)
            .await?
            .is_some_and(|a| a.outcome.is_some()))
    }

    /// Ends a lease. Best effort: a marker that cannot be deleted expires on its own.
    pub(super) async fn release_lease(&self, client: &FlinkClient, lease: Lease) {
        if client.delete_jar(&lease.jar_id).await.is_err() {
            self.say(&format!(
                "could not delete the lease marker {}; it expires on its own",
                lease.jar_id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar(id: &str, name: &str, at: i64) -> UploadedJar {
        UploadedJar {
            id: id.into(),
            name: name.into(),
            uploaded_ms: Some(at),
            entry_classes: Vec::new(),
        }
    }

    #[test]
    fn markers_are_ordered_by_upload_then_holder_and_expired_ones_set_apart() {
        let jars = [
            jar("1_x", &marker_name("00ab", 5_000, "b"), 100),
            jar("2_x", &marker_name("00ab", 5_000, "a"), 100),
            jar("3_x", &marker_name("00ab", 50, "c"), 10),
            jar("4_x", &marker_name("00cd", 5_000, "d"), 1),
            jar("5_x", "weir-0123456789abcdef-job.jar", 1),
        ];
        let (live, expired) = markers(&jars, "00ab", 1_000);
        let holders: Vec<&str> = live.iter().map(|m| m.holder.as_str()).collect();
        assert_eq!(holders, ["a", "b"]);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].holder, "c");
    }

    #[test]
    fn holder_ids_keep_the_marker_parseable() {
        assert_eq!(holder_id("apply-01H-x/.."), "apply-01H-x");
        let name = marker_name("00ab", 7, &holder_id("apply-01H-x"));
        let m = parse(&jar("1_x", &name, 1)).unwrap();
        assert_eq!((m.expiry_ms, m.holder.as_str()), (7, "apply-01H-x"));
    }
}
