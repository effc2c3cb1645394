//! Plan previews for pull requests: the plan as a Markdown comment, split into parts that each
//! fit GitHub's comment size limit.
//!
//! A preview starts with a hidden marker line ([`MARKER`]) so that a bot can find and update its
//! one comment (or its numbered parts), then a one-line summary outside any fold, then the alerts
//! that need a reviewer's attention (invalid files, jobs that could not be planned, state that
//! may not be restored, deletes), then one section per job with its diffs folded away.
//!
//! Everything shown has been redacted by the planner ([`crate::redact`]); messages are escaped so
//! that no text from the repo or a cluster can open HTML, a fold or a code fence.

use std::fmt::Write;

mod preflight;
mod split;

pub use split::write_parts;
use split::{Piece, Section, longest_run};

use super::{definition, disruption, restore_text, unified};
use crate::diagnostic::Diagnostic;
use crate::plan::{Action, Change, Plan, Step};
use crate::redact;
use crate::spec::UpgradeMode;

/// Every preview comment starts with this (`<!-- weir-plan-preview -->`, or
/// `<!-- weir-plan-preview part 2/3 -->` for the parts of a split preview).
pub const MARKER: &str = "<!-- weir-plan-preview";
/// Default size limit of one comment, in characters (GitHub's limit is 65,536).
pub const DEFAULT_LIMIT: usize = 65_000;
/// The smallest limit accepted: the header and a truncated section must fit.
pub const MIN_LIMIT: usize = 2_000;

/// Alerts list at most this many items each; longer lists continue in another alert, so that
/// they can be split between comments.
const ALERT_CHUNK: usize = 50;
const UNMANAGED_CHUNK: usize = 200;

/// The marker line of a comment: part `index` of `total` (`total == 1`: the plain marker).
pub fn marker(index: usize, total: usize) -> String {
    if total <= 1 {
        format!("{MARKER} -->\n")
    } else {
        format!("{MARKER} part {index}/{total} -->\n")
    }
}

/// `(index, total)` of a comment written by [`Preview::split`] or [`Preview::to_markdown`];
/// `None` for any other comment.
pub fn parse_marker(comment: &str) -> Option<(usize, usize)> {
    let first = comment.lines().next()?.trim_end();
    let rest = first.strip_prefix(MARKER)?.strip_suffix("-->")?.trim();
    if rest.is_empty() {
        return Some((1, 1));
    }
    let (i, n) = rest.strip_prefix("part ")?.split_once('/')?;
    let (i, n) = (i.parse().ok()?, n.parse().ok()?);
    (1..=n).contains(&i).then_some((i, n))
}

/// A rendered preview: a header (title and summary) and sections that may be split between
/// comments, but never cut.
#[derive(Debug, Clone)]
pub struct Preview {
    header: String,
    /// Names the revision on the continuation parts.
    revision: String,
    sections: Vec<Section>,
}

/// Text from the repo or a cluster, safe inside a Markdown line: no HTML, no line breaks.
pub fn inline(s: &str) -> String {
    let s = crate::text::escape_controls(&s.replace(['\n', '\r'], " ")).into_owned();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span holding `s` verbatim, whatever backticks it contains.
pub fn code(s: &str) -> String {
    let s = crate::text::escape_controls(&s.replace(['\n', '\r'], " ")).into_owned();
    let longest = longest_run(&s, '`');
    if longest == 0 {
        format!("`{s}`")
    } else {
        let ticks = "`".repeat(longest + 1);
        format!("{ticks} {s} {ticks}")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn mode_str(m: UpgradeMode) -> &'static str {
    crate::plan::upgrade_mode_str(m)
}

/// `Plan: 1 to create, 2 to redeploy (savepoint), 0 to delete.`: restarts qualified by their
/// upgrade mode, other actions named when present; errors and invalid files appended.
pub fn summary_line(plan: Option<&Plan>, invalid_files: usize) -> String {
    let mut line = match plan {
        None => "Nothing was planned: `weir.yaml` could not be loaded.".to_string(),
        Some(plan) => {
            let count = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
            let qualified = |a: Action, word: &str| {
                let n = count(a);
                let modes: Vec<(UpgradeMode, usize)> = [
                    UpgradeMode::Savepoint,
                    UpgradeMode::LastState,
                    UpgradeMode::Stateless,
                ]
                .into_iter()
                .map(|m| {
                    let k = plan
                        .changes
                        .iter()
                        .filter(|c| c.action == a && c.upgrade_mode == m)
                        .count();
                    (m, k)
                })
                .filter(|(_, k)| *k > 0)
                .collect();
                match modes.as_slice() {
                    [] => format!("{n} to {word}"),
                    [(m, _)] => format!("{n} to {word} ({})", mode_str(*m)),
                    many => format!(
                        "{n} to {word} ({})",
                        many.iter()
                            .map(|(m, k)| format!("{k} {}", mode_str(*m)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            };
            let mut parts = vec![
                format!("{} to create", count(Action::Create)),
                qualified(Action::Redeploy, "redeploy"),
            ];
            if count(Action::Rescale) > 0 {
                parts.push(qualified(Action::Rescale, "rescale"));
            }
            for (a, word) in [
                (Action::Suspend, "suspend"),
                (Action::Resume, "resume"),
                (Action::Recover, "recover"),
                (Action::Run, "run on schedule"),
                (Action::Migrate, "migrate"),
            ] {
                let n = count(a);
                if n > 0 {
                    parts.push(format!("{n} to {word}"));
                }
            }
            parts.push(format!("{} to delete", count(Action::Delete)));
            let extra = count(Action::StopDuplicate);
            if extra > 0 {
                parts.push(format!(
                    "{extra} extra cop{} to stop",
                    if extra == 1 { "y" } else { "ies" }
                ));
            }
            let mut line = format!("Plan: {}.", parts.join(", "));
            if !plan.errors.is_empty() {
                let _ = write!(line, " {}.", plural(plan.errors.len(), "error", "errors"));
            }
            line
        }
    };
    if invalid_files > 0 {
        let _ = write!(
            line,
            " {}.",
            plural(invalid_files, "invalid file", "invalid files")
        );
    }
    line
}

/// Files with at least one diagnostic, in order of first appearance.
fn files_of(diagnostics: &[Diagnostic]) -> Vec<&str> {
    let mut files: Vec<&str> = Vec::new();
    for d in diagnostics {
        if !files.contains(&d.file.as_str()) {
            files.push(&d.file);
        }
    }
    files
}

/// A diagnostic as one line, with quoted values removed when its field looks secret.
fn diagnostic_line(d: &Diagnostic) -> String {
    let message = match &d.field {
        Some(field) if redact::is_secret_key(field) => match d.message.strip_prefix(field) {
            Some(rest) => format!("{field}{}", redact_quoted(rest)),
            None => redact_quoted(&d.message),
        },
        _ => d.message.clone(),
    };
    format!(
        "- {}: {}",
        code(&format!("{}:{}:{}", d.file, d.line, d.column)),
        inline(&message)
    )
}

/// `"…"` and `'…'` quoted values replaced by `<redacted>`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '\'']) {
        let q = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        match after.find(q) {
            Some(end) => {
                out.push_str(redact::REDACTED);
                out.push(q);
                rest = &after[end + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One alert (`> [!KIND]`) per chunk of items: the title on the first, "(continued)" after.
fn alerts(kind: &str, title: &str, items: &[String], chunk: usize) -> Vec<Section> {
    items
        .chunks(chunk.max(1))
        .enumerate()
        .map(|(i, items)| {
            let mut s = format!("> [!{kind}]\n");
            if i == 0 {
                let _ = writeln!(s, "> {title}");
            } else {
                let _ = writeln!(s, "> {title} (continued)");
            }
            s.push_str(">\n");
            for item in items {
                let _ = writeln!(s, "> {item}");
            }
            s.push('\n');
            Section::text(s)
        })
        .collect()
}

fn first_step_is_cancel(c: &Change) -> bool {
    matches!(c.steps.first(), Some(Step::Cancel { .. }))
}

impl Preview {
    /// The preview of `plan` (absent when `weir.yaml` itself could not be loaded) for a repo
    /// with `diagnostics` (empty when every file is valid).
    pub fn new(plan: Option<&Plan>, diagnostics: &[Diagnostic]) -> Preview {
        let files = files_of(diagnostics);
        let revision = plan
            .map(|p| p.revision.to_string())
            .unwrap_or_else(|| "?".into());
        let header = header(plan, diagnostics, files.len());

        let mut sections = Vec::new();
        // Invalid files first: they block apply.
        if !diagnostics.is_empty() {
            let title = format!(
                "**{} ({}).** Jobs defined in invalid files are left out of this plan, nothing is \
                 deleted, and `weir apply` refuses to run until every file is valid.",
                plural(files.len(), "file is invalid", "files are invalid"),
                plural(diagnostics.len(), "error", "errors"),
            );
            let items: Vec<String> = diagnostics.iter().map(diagnostic_line).collect();
            sections.extend(alerts("CAUTION", &title, &items, ALERT_CHUNK));
        }
        if let Some(plan) = plan {
            sections.extend(plan_alerts(plan));
            sections.extend(plan.changes.iter().map(|c| job_section(plan, c)));
            sections.extend(unmanaged_sections(plan));
        }

        Preview {
            header,
            revision,
            sections,
        }
    }

    /// The whole preview as one comment (whatever its size).
    pub fn to_markdown(&self) -> String {
        let mut out = marker(1, 1);
        out.push_str(&self.header);
        for s in &self.sections {
            out.push_str(&s.render());
        }
        out
    }
}

/// The title, the summary line and whether anything changes.
fn header(plan: Option<&Plan>, diagnostics: &[Diagnostic], invalid_files: usize) -> String {
    let mut header = String::new();
    match plan {
        Some(p) => {
            let _ = writeln!(
                header,
                "### weir plan for {}\n",
                code(&p.revision.to_string())
            );
        }
        None => {
            let _ = writeln!(header, "### weir plan\n");
        }
    }
    let _ = writeln!(header, "**{}**\n", summary_line(plan, invalid_files));
    if let Some(p) = plan {
        if p.changes.is_empty() && p.errors.is_empty() && diagnostics.is_empty() {
            let _ = writeln!(header, "No changes. The clusters match the repo.\n");
        } else {
            let _ = writeln!(
                header,
                "Planned against the clusters as they are now; nothing has been applied.\n"
            );
        }
    }
    header
}

/// What a reviewer must see before the jobs: jobs that could not be planned, state that may not
/// be restored, deletes, and the plan's warnings.
fn plan_alerts(plan: &Plan) -> Vec<Section> {
    let mut sections = Vec::new();
    if !plan.errors.is_empty() {
        let title = format!(
            "**{} could not be planned:**",
            plural(plan.errors.len(), "job", "jobs")
        );
        let items: Vec<String> = plan
            .errors
            .iter()
            .map(|e| preflight::error_item(plan, e))
            .collect();
        sections.extend(alerts("CAUTION", &title, &items, ALERT_CHUNK));
    }
    sections.extend(preflight::not_checked_alert(plan));

    let risky: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| !c.state_risks.is_empty())
        .collect();
    if !risky.is_empty() {
        let title = format!(
            "**State may not be restored for {}:**",
            plural(risky.len(), "job", "jobs")
        );
        let items: Vec<String> = risky
            .iter()
            .map(|c| {
                let why: Vec<&str> = c.state_risks.iter().map(|r| r.describe()).collect();
                format!("- {} ({}): {}", code(&c.job), c.action, why.join("; "))
            })
            .collect();
        sections.extend(alerts("CAUTION", &title, &items, ALERT_CHUNK));
    }

    let deletes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    if !deletes.is_empty() {
        let title = format!(
            "**{} will be deleted** (the definition file is gone and `prune` is on):",
            plural(deletes.len(), "job", "jobs")
        );
        let items: Vec<String> = deletes
            .iter()
            .map(|c| {
                let how = if first_step_is_cancel(c) {
                    "cancelled without a savepoint"
                } else {
                    "stopped with a final savepoint"
                };
                format!("- {} on cluster {}: {how}", code(&c.job), code(&c.cluster))
            })
            .collect();
        sections.extend(alerts("WARNING", &title, &items, ALERT_CHUNK));
    }

    if !plan.warnings.is_empty() {
        let items: Vec<String> = plan
            .warnings
            .iter()
            .map(|w| format!("- {}", inline(w)))
            .collect();
        sections.extend(alerts("WARNING", "**Warnings:**", &items, ALERT_CHUNK));
    }
    sections
}

/// The jobs weir leaves alone, folded, in chunks that can go to different comments.
fn unmanaged_sections(plan: &Plan) -> Vec<Section> {
    let mut sections = Vec::new();
    for (i, chunk) in plan.unmanaged.chunks(UNMANAGED_CHUNK).enumerate() {
        let mut body = String::new();
        for u in chunk {
            let _ = writeln!(
                body,
                "- {} {} {} ({})",
                code(&u.cluster),
                code(&u.job_id.to_string()),
                code(&u.flink_name),
                inline(&u.state.to_string())
            );
        }
        sections.push(Section {
            pieces: vec![Piece::Block {
                open: format!(
                    "<details><summary>Jobs weir leaves alone ({}{})</summary>\n\n",
                    plural(plan.unmanaged.len(), "job", "jobs"),
                    if i == 0 { "" } else { ", continued" }
                ),
                fence: None,
                body,
                close: "\n</details>\n\n".into(),
            }],
        });
    }
    sections
}

/// One job's change: what happens, why, what users feel, where state comes from, and the diffs.
fn job_section(plan: &Plan, c: &Change) -> Section {
    let mut head = String::new();
    let mode = match c.action {
        Action::Redeploy | Action::Rescale => format!(" ({})", mode_str(c.upgrade_mode)),
        _ => String::new(),
    };
    let _ = writeln!(head, "#### {} — {}{mode}\n", code(&c.job), c.action);
    match &c.from_cluster {
        Some(from) => {
            let _ = writeln!(head, "- **Cluster:** {} → {}", code(from), code(&c.cluster));
        }
        None => {
            let _ = writeln!(head, "- **Cluster:** {}", code(&c.cluster));
        }
    }
    if let Some(rb) = &c.rolled_back {
        let _ = writeln!(
            head,
            "- **Rolled back:** apply {} put the previous definition back ({}); the daemon does \
             not try this definition again",
            code(&rb.apply_id),
            inline(&rb.reason)
        );
    }
    if let Some(d) = &c.desired {
        let _ = writeln!(head, "- **Definition:** {}", code(&d.file));
    }
    let _ = writeln!(head, "- **Why:** {}", inline(&c.reason));
    let _ = writeln!(head, "- **Disruption:** {}", disruption(c));
    if let Some(cur) = &c.current_job {
        let _ = writeln!(
            head,
            "- **Current job:** {} ({})",
            code(&cur.job_id.to_string()),
            inline(&cur.state.to_string())
        );
    }
    for s in &c.steps {
        if let Step::StopWithSavepoint { target_dir, .. } = s {
            let into = target_dir
                .as_deref()
                .map(code)
                .unwrap_or_else(|| "the cluster's default directory".into());
            let _ = writeln!(head, "- **Savepoint into:** {into}");
        }
    }
    if c.action.starts_a_job() {
        let _ = writeln!(head, "- **Restores from:** {}", restore_md(c));
    }
    if let Some(line) = preflight::status_line(plan, c) {
        let _ = writeln!(head, "{line}");
    }
    head.push('\n');
    if !c.warnings.is_empty() {
        let kind = if c.state_risks.is_empty() {
            "WARNING"
        } else {
            "CAUTION"
        };
        let _ = writeln!(head, "> [!{kind}]");
        if !c.state_risks.is_empty() {
            let _ = writeln!(head, "> **State may not be restored.**");
            head.push_str(">\n");
        }
        for w in &c.warnings {
            let _ = writeln!(head, "> - {}", inline(w));
        }
        head.push('\n');
    }
    let mut section = Section {
        pieces: vec![Piece::Text(head)],
    };
    section.pieces.extend(preflight::graph_block(plan, c));
    if c.action == Action::Create {
        if !c.diff.is_empty() {
            section.pieces.push(Piece::Block {
                open: "<details><summary>Definition</summary>\n\n".into(),
                fence: Some("yaml"),
                body: definition(&c.diff, ""),
                close: "\n</details>\n\n".into(),
            });
        }
    } else {
        for d in &c.diff {
            section.pieces.push(Piece::Block {
                open: format!(
                    "<details><summary>Diff of <code>{}</code></summary>\n\n",
                    inline(&d.field)
                ),
                fence: Some("diff"),
                body: unified(d),
                close: "\n</details>\n\n".into(),
            });
        }
    }
    section
}

fn restore_md(c: &Change) -> String {
    match &c.restore {
        crate::plan::Restore::Path { path } => code(path),
        other => restore_text(other),
    }
}

#[cfg(test)]
mod tests;
