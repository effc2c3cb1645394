//! Rendering plans for people (text, markdown) and programs (JSON).

use std::fmt::Write;

use similar::TextDiff;

use crate::plan::{Action, Change, FieldDiff, Plan, Restore};

/// Unified line diff of one field (`--- before` / `+++ after`), or the single new value.
pub fn unified(diff: &FieldDiff) -> String {
    let before = diff.before.clone().unwrap_or_default();
    let after = diff.after.clone().unwrap_or_default();
    let before = if before.is_empty() || before.ends_with('\n') {
        before
    } else {
        before + "\n"
    };
    let after = if after.is_empty() || after.ends_with('\n') {
        after
    } else {
        after + "\n"
    };
    TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (before)", diff.field),
            &format!("{} (after)", diff.field),
        )
        .to_string()
}

/// The fields of a new job, one per line; multi-line values (SQL, args, configuration) indented
/// below their name.
fn definition(fields: &[FieldDiff], indent: &str) -> String {
    let mut out = String::new();
    for f in fields {
        let value = f.after.as_deref().unwrap_or_default();
        if value.contains('\n') {
            let _ = writeln!(out, "{indent}{}:", f.field);
            for line in value.lines() {
                let _ = writeln!(out, "{indent}  {line}");
            }
        } else {
            let _ = writeln!(out, "{indent}{}: {value}", f.field);
        }
    }
    out
}

fn headline(c: &Change) -> String {
    let verb = match c.action {
        Action::Create => "will be created",
        Action::Redeploy => "will be redeployed",
        Action::Rescale => "will be rescaled",
        Action::Suspend => "will be suspended",
        Action::Resume => "will be resumed",
        Action::Recover => "will be recovered",
        Action::Delete => "will be deleted",
    };
    format!("{} (cluster {}) {verb}", c.job, c.cluster)
}

/// What users feel while the change is applied.
pub fn disruption(c: &Change) -> &'static str {
    match c.action {
        Action::Create | Action::Resume | Action::Recover => "job starts",
        Action::Suspend | Action::Delete => "job stops",
        Action::Redeploy | Action::Rescale => match c.steps.first() {
            Some(crate::plan::Step::StopWithSavepoint { .. }) => {
                "stop with savepoint, then restart"
            }
            _ => "cancel, then restart",
        },
    }
}

fn restore_text(r: &Restore) -> String {
    match r {
        Restore::None => "none (fresh state)".into(),
        Restore::Path { path } => path.clone(),
        Restore::StopSavepoint => "the savepoint taken when stopping the current job".into(),
        Restore::LatestCheckpoint => "the latest retained checkpoint of the current job".into(),
    }
}

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "weir plan for revision {}\n", plan.revision);
    for c in &plan.changes {
        let sign = match c.action {
            Action::Create => "+",
            Action::Delete => "-",
            _ => "~",
        };
        let _ = writeln!(out, "{sign} {}", headline(c));
        let _ = writeln!(out, "    action:  {}", c.action);
        let _ = writeln!(out, "    why:     {}", c.reason);
        if let Some(cur) = &c.current_job {
            let _ = writeln!(out, "    current: {} ({})", cur.job_id, cur.state);
        }
        if c.action != Action::Suspend && c.action != Action::Delete {
            let _ = writeln!(out, "    restore: {}", restore_text(&c.restore));
        }
        let _ = writeln!(out, "    steps:");
        for (i, s) in c.steps.iter().enumerate() {
            let _ = writeln!(out, "      {}. {}", i + 1, s.describe());
        }
        if c.action == Action::Create {
            let _ = writeln!(out, "    definition:");
            out.push_str(&definition(&c.diff, "      "));
        } else if !c.diff.is_empty() {
            let _ = writeln!(out, "    changes:");
            for d in &c.diff {
                for line in unified(d).lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        for w in &c.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
        out.push('\n');
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(out, "Unmanaged jobs (weir leaves them alone):");
        for u in &plan.unmanaged {
            let who = u
                .weir_job
                .as_deref()
                .map(|n| format!(" [weir job {n}]"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {} {:?} {}{who}",
                u.cluster, u.job_id, u.flink_name, u.state
            );
        }
        out.push('\n');
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "Warning: {w}");
    }
    for e in &plan.errors {
        let _ = writeln!(out, "Error: {}", e.message);
    }
    if !plan.warnings.is_empty() || !plan.errors.is_empty() {
        out.push('\n');
    }
    if plan.changes.is_empty() && plan.errors.is_empty() {
        let _ = writeln!(out, "No changes. The clusters match the repo.");
    }
    let _ = writeln!(out, "{}", plan.summary.line());
    out
}

pub fn json(plan: &Plan) -> String {
    let mut value = serde_json::to_value(plan).expect("plans serialize");
    if let Some(obj) = value.as_object_mut() {
        obj.insert("summaryLine".into(), plan.summary.line().into());
        obj.insert("revisionName".into(), plan.revision.to_string().into());
    }
    let mut s = serde_json::to_string_pretty(&value).expect("plans serialize");
    s.push('\n');
    s
}

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**{}**\n", plan.summary.line());
    let _ = writeln!(out, "Revision `{}`\n", plan.revision);
    for e in &plan.errors {
        let _ = writeln!(out, "> [!CAUTION]\n> {}\n", e.message);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "> [!WARNING]\n> {w}\n");
    }
    for c in &plan.changes {
        let _ = writeln!(out, "### `{}` — {}\n", c.job, c.action);
        let _ = writeln!(out, "- **cluster:** `{}`", c.cluster);
        let _ = writeln!(out, "- **why:** {}", c.reason);
        let _ = writeln!(out, "- **disruption:** {}", disruption(c));
        if c.action != Action::Suspend && c.action != Action::Delete {
            let _ = writeln!(out, "- **restores from:** {}", restore_text(&c.restore));
        }
        for w in &c.warnings {
            let _ = writeln!(out, "- :warning: {w}");
        }
        out.push('\n');
        if !c.diff.is_empty() {
            let _ = writeln!(
                out,
                "<details><summary>Diff ({} field{})</summary>\n",
                c.diff.len(),
                if c.diff.len() == 1 { "" } else { "s" }
            );
            let _ = writeln!(out, "```diff");
            for d in &c.diff {
                out.push_str(&unified(d));
            }
            let _ = writeln!(out, "```\n\n</details>\n");
        }
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Unmanaged jobs ({})</summary>\n",
            plan.unmanaged.len()
        );
        for u in &plan.unmanaged {
            let _ = writeln!(
                out,
                "- `{}` `{}` {} ({})",
                u.cluster, u.job_id, u.flink_name, u.state
            );
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}

#[cfg(test)]
mod tests;
