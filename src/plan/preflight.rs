//! What a plan says about pre-flights (the target cluster planning each program a change will
//! submit) and state checks (the new job graph against the running job's). The engine runs the
//! pre-flights and fills these in; this module only holds the shapes and the pure graph diff.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The pre-flight of one change's program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPreflight {
    pub job: String,
    /// The cluster the change submits to.
    pub cluster: String,
    pub status: PreflightStatus,
    /// The cluster that planned the program (the target, or a designated pre-flight cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_on: Option<String>,
    /// Why the program was not checked, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The new job graph against the running (or last) job's, when both are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphDiff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreflightStatus {
    /// The cluster planned the program just now.
    Passed,
    /// The cluster planned this exact program on this Flink version before (from the store).
    Cached,
    /// The cluster refused the program, or its state would not be restored: a plan error.
    Failed,
    /// The program was not checked (`reason` says why).
    NotChecked,
}

impl PreflightStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PreflightStatus::Passed => "passed",
            PreflightStatus::Cached => "passed (cached)",
            PreflightStatus::Failed => "failed",
            PreflightStatus::NotChecked => "not checked",
        }
    }
}

/// One JobVertex (an operator chain) of a job graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vertex {
    /// The JobVertex id: the operator id of the chain's head.
    pub id: String,
    /// The chained operators, e.g. `Source: numbers → to-keyed`.
    pub operators: String,
    pub parallelism: u32,
}

/// A vertex whose parallelism changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rescaled {
    pub id: String,
    pub operators: String,
    pub before: u32,
    pub after: u32,
}

/// The new job graph against the old, by JobVertex id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphDiff {
    /// Vertices in both graphs (their state, if any, is restored).
    pub kept: Vec<Vertex>,
    pub added: Vec<Vertex>,
    /// Vertices of the old graph that the new one lacks: their state would not be restored.
    pub removed: Vec<Vertex>,
    pub parallelism_changed: Vec<Rescaled>,
}

impl GraphDiff {
    /// Compares two graphs by vertex id.
    pub fn of(old: &[Vertex], new: &[Vertex]) -> GraphDiff {
        let old_by_id: BTreeMap<&str, &Vertex> = old.iter().map(|v| (v.id.as_str(), v)).collect();
        let new_by_id: BTreeMap<&str, &Vertex> = new.iter().map(|v| (v.id.as_str(), v)).collect();
        let mut diff = GraphDiff::default();
        for (id, v) in &new_by_id {
            match old_by_id.get(id) {
                Some(before) => {
                    if before.parallelism != v.parallelism {
                        diff.parallelism_changed.push(Rescaled {
                            id: v.id.clone(),
                            operators: v.operators.clone(),
                            before: before.parallelism,
                            after: v.parallelism,
                        });
                    }
                    diff.kept.push((*v).clone());
                }
                None => diff.added.push((*v).clone()),
            }
        }
        diff.removed = old_by_id
            .iter()
            .filter(|(id, _)| !new_by_id.contains_key(*id))
            .map(|(_, v)| (*v).clone())
            .collect();
        diff
    }

    /// True when the topology changes (vertices added or removed).
    pub fn changes_topology(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }

    /// One line, e.g. `3 kept, 1 added, 1 removed, 1 rescaled`.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} kept", self.kept.len())];
        for (n, word) in [
            (self.added.len(), "added"),
            (self.removed.len(), "removed"),
            (self.parallelism_changed.len(), "rescaled"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        parts.join(", ")
    }

    /// Lines for people, one per vertex that is not simply kept.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in &self.removed {
            out.push(format!("- removed {} ({})", v.operators, v.id));
        }
        for v in &self.added {
            out.push(format!("+ added {} ({})", v.operators, v.id));
        }
        for r in &self.parallelism_changed {
            out.push(format!(
                "~ parallelism {} → {}: {} ({})",
                r.before, r.after, r.operators, r.id
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, parallelism: u32) -> Vertex {
        Vertex {
            id: id.into(),
            operators: format!("op-{id}"),
            parallelism,
        }
    }

    #[test]
    fn the_diff_is_by_vertex_id() {
        let old = [v("a", 1), v("b", 2), v("c", 2)];
        let new = [v("a", 1), v("b", 4), v("d", 2)];
        let diff = GraphDiff::of(&old, &new);
        assert_eq!(diff.kept, vec![v("a", 1), v("b", 4)]);
        assert_eq!(diff.added, vec![v("d", 2)]);
        assert_eq!(diff.removed, vec![v("c", 2)]);
        assert_eq!(diff.parallelism_changed.len(), 1);
        assert_eq!(diff.summary(), "2 kept, 1 added, 1 removed, 1 rescaled");
        assert!(diff.changes_topology());
        assert_eq!(
            diff.lines(),
            vec![
                "- removed op-c (c)",
                "+ added op-d (d)",
                "~ parallelism 2 → 4: op-b (b)"
            ]
        );
        assert!(!GraphDiff::of(&old, &old).changes_topology());
    }
}
