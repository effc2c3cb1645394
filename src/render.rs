//! Rendering plans for people (text, markdown) and programs (JSON).
//!
//! `markdown` holds the pull-request preview (a comment with a hidden marker, split into parts
//! under a size limit); this module holds the text and JSON renderings and the pieces of a change
//! that every rendering shares (diffs, disruption, restore).

pub mod markdown;
mod preflight;

use std::fmt::Write;

use similar::TextDiff;

use crate::plan::{Action, Change, FieldDiff, Plan, Restore, Step};
use crate::text::{escape_controls as one_line, escape_controls_multiline as multi_line};

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
    let diff_text = TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (before)", diff.field),
            &format!("{} (after)", diff.field),
        )
        .to_string();
    multi_line(&diff_text).into_owned()
}

/// The fields of a new job, one per line; multi-line values (SQL, args, configuration) indented
/// below their name.
pub(crate) fn definition(fields: &[FieldDiff], indent: &str) -> String {
    let mut out = String::new();
    for f in fields {
        let value = f.after.as_deref().unwrap_or_default();
        if value.contains('\n') {
            let _ = writeln!(out, "{indent}{}:", f.field);
            for line in value.lines() {
                let _ = writeln!(out, "{indent}  {}", one_line(line));
            }
        } else {
            let _ = writeln!(out, "{indent}{}: {}", f.field, one_line(value));
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
        Action::StopDuplicate => "has an extra copy to stop",
        Action::Run => "will run (scheduled)",
        Action::Migrate => "will be moved",
    };
    let cluster = match &c.from_cluster {
        Some(from) => format!("cluster {} → {}", one_line(from), one_line(&c.cluster)),
        None => format!("cluster {}", one_line(&c.cluster)),
    };
    let rolled_back = match &c.rolled_back {
        Some(rb) => format!(" (apply {} rolled it back)", one_line(&rb.apply_id)),
        None => String::new(),
    };
    format!("{} ({cluster}) {verb}{rolled_back}", one_line(&c.job))
}

/// What users feel while the change is applied.
pub fn disruption(c: &Change) -> String {
    let cancels = matches!(c.steps.first(), Some(Step::Cancel { .. }));
    match c.action {
        Action::Create => "job starts (nothing running is touched)".into(),
        Action::Run => "a new run of the batch job starts (nothing running is touched)".into(),
        Action::Resume => "job starts again".into(),
        Action::Recover => match &c.current_job {
            Some(cur) => format!(
                "job starts again (it is {} now)",
                one_line(&cur.state.to_string())
            ),
            None => "job starts again (it is missing from the cluster)".into(),
        },
        Action::Suspend | Action::Delete if cancels => {
            "job is cancelled, without a savepoint".into()
        }
        Action::Suspend => "job stops with a savepoint (a resume restores it)".into(),
        Action::Delete => "job stops with a final savepoint; weir forgets it".into(),
        Action::StopDuplicate => {
            "the extra copy stops with a savepoint; the current copy runs on untouched".into()
        }
        Action::Migrate => match (cancels, &c.restore, &c.from_cluster) {
            (false, _, Some(from)) => format!(
                "stop with savepoint on cluster {}, then start from it on {}",
                one_line(from),
                one_line(&c.cluster)
            ),
            (_, Restore::LatestCheckpoint, _) => {
                "cancel on the old cluster, then start from its latest retained checkpoint".into()
            }
            _ => "cancel on the old cluster, then start without state".into(),
        },
        Action::Redeploy | Action::Rescale => match (cancels, &c.restore) {
            (false, _) => "stop with savepoint, then restart from it".into(),
            (true, Restore::LatestCheckpoint) => {
                "cancel, then restart from the latest retained checkpoint".into()
            }
            (true, _) => "cancel, then restart without state".into(),
        },
    }
}

pub(crate) fn restore_text(r: &Restore) -> String {
    match r {
        Restore::None => "none (fresh state)".into(),
        Restore::Path { path } => one_line(path).into_owned(),
        Restore::StopSavepoint => "the savepoint taken when stopping the current job".into(),
        Restore::LatestCheckpoint => "the latest retained checkpoint of the current job".into(),
    }
}

/// The plan for a terminal or CI log. Every value from the repo or a cluster is escaped
/// ([`crate::text::escape_controls`]): a value cannot forge a line or send terminal escapes.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "weir plan for revision {}", plan.revision);
    if let Some(line) = preflight::versions_line(plan) {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
    for c in &plan.changes {
        let sign = match c.action {
            Action::Create | Action::Run => "+",
            Action::Delete => "-",
            _ => "~",
        };
        let _ = writeln!(out, "{sign} {}", headline(c));
        let _ = writeln!(out, "    action:  {}", c.action);
        let _ = writeln!(out, "    why:     {}", one_line(&c.reason));
        if let Some(cur) = &c.current_job {
            let _ = writeln!(
                out,
                "    current: {} ({})",
                cur.job_id,
                one_line(&cur.state.to_string())
            );
        }
        if c.action.starts_a_job() {
            let _ = writeln!(out, "    restore: {}", restore_text(&c.restore));
        }
        preflight::change_lines(plan, c, &mut out);
        let _ = writeln!(out, "    steps:");
        for (i, s) in c.steps.iter().enumerate() {
            // A migrate's steps act on two clusters: each says where.
            let on = match c.from_cluster {
                Some(_) => format!("on {}: ", one_line(c.step_cluster(s))),
                None => String::new(),
            };
            let _ = writeln!(out, "      {}. {on}{}", i + 1, one_line(&s.describe()));
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
            let _ = writeln!(out, "    warning: {}", one_line(w));
        }
        out.push('\n');
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(out, "Unmanaged jobs (weir leaves them alone):");
        for u in &plan.unmanaged {
            let who = u
                .weir_job
                .as_deref()
                .map(|n| format!(" [weir job {}]", one_line(n)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {} {:?} {}{who}",
                one_line(&u.cluster),
                u.job_id,
                u.flink_name,
                one_line(&u.state.to_string())
            );
        }
        out.push('\n');
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "Warning: {}", one_line(w));
    }
    for e in &plan.errors {
        let _ = writeln!(out, "{}", preflight::error_line(plan, e));
    }
    if !plan.warnings.is_empty() || !plan.errors.is_empty() {
        out.push('\n');
    }
    if plan.changes.is_empty() && plan.errors.is_empty() {
        let _ = writeln!(out, "No changes. The clusters match the repo.");
    }
    let _ = writeln!(out, "{}", plan.summary.line());
    // Whatever a field above did not escape cannot reach the terminal either.
    multi_line(&out).into_owned()
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

/// The plan as a pull-request comment (see [`markdown::Preview`]): marker line, summary, alerts,
/// one section per job. For a repo with invalid files use [`markdown::Preview`] itself.
pub fn markdown(plan: &Plan) -> String {
    markdown::Preview::new(Some(plan), &[]).to_markdown()
}

#[cfg(test)]
mod migrate_tests;
#[cfg(test)]
mod tests;
