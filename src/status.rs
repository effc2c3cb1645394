//! `weir status` and `weir history` tables.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::desired::DesiredState;
use crate::identity::name_hash;
use crate::observe::{ClusterObservation, Observation, is_active};
use crate::plan::{JobHistory, Plan};
use crate::store::HistoryEntry;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub name: String,
    pub cluster: String,
    /// `Synced`, `OutOfSync` (the plan has a change for it), `Error` (the plan refuses to act on
    /// it, e.g. two copies run) or `Unknown` (cluster unreachable).
    pub sync: String,
    pub flink_state: String,
    pub job_id: String,
    pub last_savepoint: String,
    /// The Flink version of the job's cluster (`GET /config`), when it answered.
    pub flink_version: Option<String>,
    /// `healthy`, `degraded` or `failing` for a running job (see `lifecycle::health`); `None`
    /// when the job does not run or its health could not be read.
    pub health: Option<crate::lifecycle::health::Health>,
    /// Why the job is not healthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_reasons: Vec<String>,
}

pub fn rows(
    desired: &DesiredState,
    observation: &Observation,
    history: &BTreeMap<String, JobHistory>,
    plan: &Plan,
) -> Vec<StatusRow> {
    // Indexed once: a lookup per job instead of a scan of every observed job (and every change)
    // per job, which is quadratic in the number of jobs.
    let mut observed: BTreeMap<(&str, u64), Vec<&crate::observe::ObservedJob>> = BTreeMap::new();
    for (cluster, c) in &observation.clusters {
        if let ClusterObservation::Reachable { jobs, .. } = c {
            for j in jobs {
                if let Some(i) = j.identity {
                    observed
                        .entry((cluster.as_str(), i.name_hash))
                        .or_default()
                        .push(j);
                }
            }
        }
    }
    let changed: std::collections::BTreeSet<&str> =
        plan.changes.iter().map(|c| c.job.as_str()).collect();
    desired
        .jobs
        .iter()
        .map(|job| {
            let (sync, state, id) = match observation.clusters.get(job.cluster.as_str()) {
                Some(ClusterObservation::Reachable { .. }) => {
                    let key = (job.cluster.as_str(), name_hash(&job.name));
                    let newest = observed
                        .get(&key)
                        .and_then(|mine| newest(mine.iter().copied()));
                    let out_of_sync = changed.contains(job.name.as_str());
                    // The plan refuses to act on the job (e.g. two copies run): never Synced.
                    let error = plan
                        .errors
                        .iter()
                        .any(|e| e.job.as_deref() == Some(job.name.as_str()));
                    let sync = if error {
                        "Error"
                    } else if out_of_sync {
                        "OutOfSync"
                    } else {
                        "Synced"
                    };
                    (
                        sync.to_string(),
                        newest
                            .map(|j| j.state.to_string())
                            .unwrap_or_else(|| "-".into()),
                        newest
                            .map(|j| j.id.to_string())
                            .unwrap_or_else(|| "-".into()),
                    )
                }
                _ => ("Unknown".into(), "unreachable".into(), "-".into()),
            };
            StatusRow {
                name: job.name.to_string(),
                cluster: job.cluster.to_string(),
                sync,
                flink_state: state,
                job_id: id,
                last_savepoint: history
                    .get(job.name.as_str())
                    .and_then(|h| h.last_savepoint.clone())
                    .unwrap_or_else(|| "-".into()),
                flink_version: match observation.clusters.get(job.cluster.as_str()) {
                    Some(ClusterObservation::Reachable { flink_version, .. }) => {
                        flink_version.clone()
                    }
                    _ => None,
                },
                health: None,
                health_reasons: Vec::new(),
            }
        })
        .collect()
}

/// The job that stands for a definition among its observed jobs: an active one before a
/// terminal one, then the most recently started.
pub fn newest<'a>(
    jobs: impl Iterator<Item = &'a crate::observe::ObservedJob>,
) -> Option<&'a crate::observe::ObservedJob> {
    jobs.min_by_key(|j| (!is_active(&j.state), std::cmp::Reverse(j.start_time_ms)))
}

/// Left-aligned columns separated by two spaces, without borders; no trailing spaces. Cells are
/// names from the repo and text from Flink: control characters are escaped, so that a cell
/// cannot forge a row or send terminal escapes.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for r in rows {
        table.add_row(r.iter().map(|cell| crate::text::escape_controls(cell)));
    }
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn table(rows: &[StatusRow]) -> String {
    let data: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.cluster.clone(),
                r.sync.clone(),
                r.flink_state.clone(),
                r.health.map_or("-", |h| h.as_str()).to_string(),
                r.job_id.clone(),
                r.last_savepoint.clone(),
            ]
        })
        .collect();
    columns(
        &[
            "NAME",
            "CLUSTER",
            "SYNC",
            "FLINK STATE",
            "HEALTH",
            "JOB ID",
            "LAST SAVEPOINT",
        ],
        &data,
    )
}

pub fn history_table(entries: &[HistoryEntry]) -> String {
    if entries.is_empty() {
        return "No plans or applies recorded yet.\n".into();
    }
    let data: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                crate::clock::table_time(e.at_ms),
                format!("{:?}", e.kind).to_lowercase(),
                e.id.clone(),
                e.revision.clone(),
                e.trigger.to_string(),
                match &e.error {
                    // Records of older versions were stored unscrubbed.
                    Some(err) => format!("{}: {}", e.summary_or_outcome, crate::redact::text(err)),
                    None => e.summary_or_outcome.clone(),
                },
            ]
        })
        .collect();
    columns(
        &["TIME", "KIND", "ID", "REVISION", "TRIGGER", "OUTCOME"],
        &data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_without_borders_or_trailing_spaces() {
        let rows = vec![
            vec!["orders-enricher".into(), "local".into(), "Synced".into()],
            vec!["a".into(), "".into(), "OutOfSync".into()],
        ];
        assert_eq!(
            columns(&["NAME", "CLUSTER", "SYNC"], &rows),
            "NAME             CLUSTER  SYNC\n\
             orders-enricher  local    Synced\n\
             a                         OutOfSync\n"
        );
        assert_eq!(columns(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn cells_cannot_forge_rows_or_send_escapes() {
        let rows = vec![vec!["a\u{1b}[2J\nFORGED".into(), "x".into()]];
        let out = columns(&["NAME", "B"], &rows);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
    }
}
