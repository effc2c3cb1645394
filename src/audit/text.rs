//! The audit trail in words: `weir show`, `weir history`, `weir savepoints`, `weir prune`.

use std::fmt::Write;

use super::{
    ApplyRef, ApplyStory, CommitRef, HistoryRecord, JobStory, Lineage, PlanStory, Shown, StepStory,
    duration_text,
};
use crate::clock::table_time as time_text;
use crate::store::retention::{PruneRecord, PruneReport};
use crate::store::{HistoryKind, StepKind};

impl CommitRef {
    /// `1a2b3c4d5e6f by Ann <ann@x.org>: subject line`.
    pub(super) fn text(&self) -> String {
        let mut s = self.sha[..self.sha.len().min(12)].to_string();
        if self.dirty {
            s.push_str(" (plus uncommitted changes)");
        }
        match (&self.author_name, &self.author_email) {
            (Some(n), Some(e)) if !e.is_empty() => {
                let _ = write!(s, " by {n} <{e}>");
            }
            (Some(n), _) => {
                let _ = write!(s, " by {n}");
            }
            _ => {}
        }
        if let Some(subject) = self.message.as_deref().and_then(|m| m.lines().next()) {
            let _ = write!(s, ": {subject}");
        }
        s
    }
}

/// Plan warnings listed by `weir show APPLY_ID` before it only counts them.
const MAX_LISTED_WARNINGS: usize = 3;

/// `  name:      value` at `indent`.
fn kv(out: &mut String, indent: usize, name: &str, value: &str) {
    let _ = writeln!(out, "{:indent$}{:<10} {value}", "", format!("{name}:"));
}

pub fn apply_text(s: &ApplyStory) -> String {
    printable(&apply_text_unchecked(s))
}

fn apply_text_unchecked(s: &ApplyStory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Apply {}: {}", s.id, s.outcome);
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  {:<10} {value}", format!("{name}:"));
    };
    match &s.plan {
        Some(p) => field("plan", format!("{} ({})", p.id, p.summary)),
        None => field("plan", format!("{} (not recorded)", s.plan_id)),
    }
    field("revision", s.revision.clone());
    if let Some(c) = &s.commit {
        field("commit", c.text());
    }
    field(
        "trigger",
        match &s.actor {
            Some(a) => format!("{} by {a}", s.trigger),
            None => s.trigger.clone(),
        },
    );
    field("started", time_text(s.started_at_ms));
    match (s.finished_at_ms, s.duration_ms) {
        (Some(f), Some(d)) => field(
            "finished",
            format!("{} ({})", time_text(f), duration_text(d)),
        ),
        _ => field("finished", "not recorded".into()),
    }
    for e in &s.events {
        field(&e.kind, format!("{} {}", time_text(e.at_ms), e.message));
    }
    if let Some(err) = &s.error {
        field("error", err.clone());
    }
    if let Some(p) = &s.plan {
        if p.warnings.len() > MAX_LISTED_WARNINGS {
            field(
                "warnings",
                format!(
                    "the plan had {} warnings; `weir show {}` lists them",
                    p.warnings.len(),
                    p.id
                ),
            );
        } else {
            for w in &p.warnings {
                field("warning", w.clone());
            }
        }
        for e in &p.errors {
            field("plan error", e.clone());
        }
    }
    for j in &s.jobs {
        job_text(&mut out, j);
    }
    out
}

/// One job of an apply story: what changed and each step.
fn job_text(out: &mut String, j: &JobStory) {
    out.push('\n');
    let _ = writeln!(
        out,
        "{}{}: {} — {}",
        j.job,
        j.cluster
            .as_ref()
            .map(|c| format!(" (cluster {c})"))
            .unwrap_or_default(),
        j.action.as_deref().unwrap_or("change"),
        j.outcome
    );
    if let Some(r) = &j.reason {
        kv(out, 2, "why", r);
    }
    if !j.changed_fields.is_empty() {
        kv(out, 2, "changed", &j.changed_fields.join(", "));
    }
    if let Some(m) = &j.upgrade_mode {
        kv(out, 2, "upgrade", m);
    }
    if let Some(id) = &j.from_job_id {
        kv(out, 2, "from job", id);
    }
    for w in &j.warnings {
        kv(out, 2, "warning", w);
    }
    for st in &j.steps {
        step_text(out, st);
    }
    if let Some(m) = &j.message {
        kv(out, 2, "result", m);
    }
}

/// One step of a job of an apply story.
fn step_text(out: &mut String, st: &StepStory) {
    let timing = match st.duration_ms {
        Some(d) => format!("  {}", duration_text(d)),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "  {}. {}  {}{}",
        st.seq,
        st.kind,
        st.status.replace('_', " "),
        timing
    );
    if let Some(d) = &st.description {
        kv(out, 7, "planned", d);
    }
    if let Some(c) = &st.call {
        kv(out, 7, "call", c);
    }
    if let Some(p) = &st.polls {
        kv(out, 7, "polled", p);
    }
    if let Some(t) = st.started_at_ms {
        kv(out, 7, "started", &time_text(t));
    }
    if st.kind == StepKind::Submit.as_str()
        && let Some(id) = &st.flink_job_id
    {
        kv(out, 7, "job id", id);
    }
    if let Some(sp) = &st.savepoint_used {
        kv(out, 7, "restored", sp);
    }
    if let Some(sp) = &st.savepoint_produced {
        let what = if st.kind == StepKind::Cancel.as_str() {
            "checkpoint"
        } else {
            "savepoint"
        };
        kv(out, 7, what, sp);
    }
    if let Some(e) = &st.error {
        kv(out, 7, "error", e);
    }
    for n in &st.notes {
        kv(out, 7, "note", n);
    }
}

pub fn plan_text(p: &PlanStory) -> String {
    printable(&plan_text_unchecked(p))
}

fn plan_text_unchecked(p: &PlanStory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan {}: {}", p.id, p.summary);
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  {:<10} {value}", format!("{name}:"));
    };
    field("made", time_text(p.created_at_ms));
    field("revision", p.revision.clone());
    if let Some(c) = &p.commit {
        field("commit", c.text());
    }
    field(
        "trigger",
        match &p.actor {
            Some(a) => format!("{} by {a}", p.trigger),
            None => p.trigger.clone(),
        },
    );
    for w in &p.warnings {
        field("warning", w.clone());
    }
    for e in &p.errors {
        field("error", e.clone());
    }
    if p.applies.is_empty() {
        field("applied", "never".into());
    }
    for a in &p.applies {
        field(
            "applied",
            format!("{} at {}: {}", a.id, time_text(a.started_at_ms), a.outcome),
        );
    }
    for c in &p.changes {
        let _ = writeln!(
            out,
            "\n{}: {}{}",
            c.job,
            c.action.as_deref().unwrap_or("change"),
            c.reason
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        for (i, s) in c.steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {s}", i + 1);
        }
    }
    out
}

/// Text from the store (records of older versions were stored unscrubbed), the repo and Flink,
/// made safe to print: secrets scrubbed, control characters escaped (line breaks and tabs of
/// the layout kept).
fn printable(text: &str) -> String {
    crate::text::escape_controls_multiline(&crate::redact::text(text)).into_owned()
}

pub fn shown_text(s: &Shown) -> String {
    match s {
        Shown::Apply(a) => apply_text(a),
        Shown::Plan(p) => plan_text(p),
    }
}

/// Left-aligned columns separated by two spaces, without borders (comfy-table), so the text
/// stays easy to read and to `grep`.
pub(super) fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied())
        .add_rows(rows.iter().cloned());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn history_text(records: &[HistoryRecord]) -> String {
    printable(&history_text_unchecked(records))
}

fn history_text_unchecked(records: &[HistoryRecord]) -> String {
    if records.is_empty() {
        return "No plans or applies recorded yet.\n".into();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let e = &r.entry;
            let outcome = match e.kind {
                HistoryKind::Plan => e.summary_or_outcome.clone(),
                HistoryKind::Apply => {
                    let mut s = e.summary_or_outcome.clone();
                    if let Some(d) = r.duration_ms {
                        let _ = write!(s, " in {}", duration_text(d));
                    }
                    if let Some(err) = &e.error {
                        let _ = write!(s, ": {err}");
                    }
                    s
                }
            };
            vec![
                time_text(e.at_ms),
                format!("{:?}", e.kind).to_lowercase(),
                e.id.clone(),
                e.revision.clone(),
                match &r.actor {
                    Some(a) => format!("{} ({a})", e.trigger),
                    None => e.trigger.to_string(),
                },
                r.commit
                    .as_ref()
                    .and_then(|c| c.author_name.clone())
                    .unwrap_or_else(|| "-".into()),
                outcome,
            ]
        })
        .collect();
    columns(
        &[
            "TIME", "KIND", "ID", "REVISION", "TRIGGER", "AUTHOR", "OUTCOME",
        ],
        &rows,
    )
}

impl ApplyRef {
    /// `apply-… (redeploy, succeeded; 1a2b3c4d5e6f by Ann: subject)`.
    pub(super) fn text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(a) = &self.action {
            parts.push(a.clone());
        }
        if let Some(o) = &self.outcome {
            parts.push(o.clone());
        }
        let mut s = self.apply_id.clone();
        let commit = self.commit.as_ref().map(CommitRef::text);
        match (parts.is_empty(), commit) {
            (true, None) => {}
            (false, None) => {
                let _ = write!(s, " ({})", parts.join(", "));
            }
            (true, Some(c)) => {
                let _ = write!(s, " ({c})");
            }
            (false, Some(c)) => {
                let _ = write!(s, " ({}; {c})", parts.join(", "));
            }
        }
        s
    }
}

pub fn lineage_text(l: &Lineage) -> String {
    printable(&lineage_text_unchecked(l))
}

fn lineage_text_unchecked(l: &Lineage) -> String {
    if l.savepoints.is_empty() {
        return format!(
            "No savepoints or retained checkpoints recorded for {}.\n",
            l.job
        );
    }
    let mut out = format!("Savepoints of {} (newest first):\n", l.job);
    for s in &l.savepoints {
        let _ = writeln!(out, "\n{}", s.path);
        let from = s
            .flink_job_id
            .as_ref()
            .map(|j| format!(" of Flink job {j}"))
            .unwrap_or_default();
        match &s.produced_by {
            Some(by) => {
                let _ = writeln!(
                    out,
                    "  {}{from}, taken {} by apply {}",
                    s.kind,
                    time_text(s.at_ms),
                    by.text()
                );
            }
            None => match &s.origin {
                Some(origin) => {
                    let _ = writeln!(
                        out,
                        "  {}{from}, taken {} by weir ({origin})",
                        s.kind,
                        time_text(s.at_ms)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  {}{from}, not taken by weir (first used {})",
                        s.kind,
                        time_text(s.at_ms)
                    );
                }
            },
        }
        if s.pinned {
            let _ = writeln!(out, "  pinned: retention keeps it");
        }
        if s.disposed {
            let _ = writeln!(out, "  disposed through Flink (its files are gone)");
        }
        if s.restores.is_empty() {
            let _ = writeln!(out, "  never restored");
        }
        for r in &s.restores {
            let _ = writeln!(
                out,
                "  restored {} as Flink job {} by apply {}",
                time_text(r.at_ms),
                r.flink_job_id,
                r.by.text()
            );
        }
    }
    out
}

/// `3 plans`, `1 apply`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `weir prune` (and the daemon's retention) did, in words.
pub fn prune_text(r: &PruneReport) -> String {
    let d = &r.deleted;
    let k = &r.kept;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}, {}) older than {}{}",
        if r.dry_run { "Would prune" } else { "Pruned" },
        count(d.records(), "record", "records"),
        count(d.plans, "plan", "plans"),
        count(d.applies, "apply", "applies"),
        time_text(r.cutoff_ms),
        if d.records() > 0 || d.deliveries > 0 {
            ", with:"
        } else {
            "."
        }
    );
    if d.records() > 0 || d.deliveries > 0 {
        for (n, one, many) in [
            (d.journal_entries, "journal entry", "journal entries"),
            (d.apply_changes, "change result", "change results"),
            (d.apply_events, "apply event", "apply events"),
            (d.origins, "origin", "origins"),
            (d.savepoints, "savepoint record", "savepoint records"),
            (
                d.savepoint_restores,
                "savepoint restore",
                "savepoint restores",
            ),
            (
                d.deliveries,
                "notification delivery",
                "notification deliveries",
            ),
        ] {
            let _ = writeln!(out, "  {}", count(n, one, many));
        }
    }
    let _ = writeln!(
        out,
        "Kept whatever their age: {}, the newest savepoint of each job ({}), and the {} and {} \
         older than the cutoff that these need.",
        count(
            k.unfinished_applies,
            "unfinished apply",
            "unfinished applies"
        ),
        count(k.newest_savepoints, "savepoint", "savepoints"),
        count(k.old_applies, "apply", "applies"),
        count(k.old_plans, "plan", "plans"),
    );
    match r.id {
        Some(id) => {
            let _ = writeln!(out, "Recorded as prune {id}.");
        }
        None => {
            let _ = writeln!(out, "Nothing was deleted (dry run).");
        }
    }
    out
}

/// `weir prune --log`: every recorded prune, newest first.
pub fn prune_log_text(log: &[PruneRecord]) -> String {
    if log.is_empty() {
        return "No prunes recorded.\n".into();
    }
    let rows: Vec<Vec<String>> = log
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                time_text(p.at_ms),
                match &p.actor {
                    Some(a) => format!("{} ({a})", p.trigger),
                    None => p.trigger.to_string(),
                },
                time_text(p.cutoff_ms),
                format!(
                    "{} plans, {} applies, {} savepoints, {} deliveries",
                    p.deleted.plans, p.deleted.applies, p.deleted.savepoints, p.deleted.deliveries
                ),
            ]
        })
        .collect();
    columns(&["ID", "TIME", "BY", "CUTOFF", "DELETED"], &rows)
}
