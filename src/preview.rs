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
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::plan::{Action, Change, Plan, Step};
use crate::redact;
use crate::render::{definition, disruption, restore_text, unified};
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

/// A self-contained block of Markdown: every fold and fence it opens, it closes.
#[derive(Debug, Clone, Default)]
struct Section {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    /// Plain lines: no fences, no HTML blocks (may be cut between lines).
    Text(String),
    /// `open`, then `body` (inside a code fence with this info string when `fence` is set),
    /// then `close`; a cut keeps `open` and `close`, so a fold (`<details>`) or a fence opened
    /// here is always closed.
    Block {
        open: String,
        fence: Option<&'static str>,
        body: String,
        close: String,
    },
}

impl Piece {
    fn render(&self) -> String {
        match self {
            Piece::Text(t) => t.clone(),
            Piece::Block {
                open,
                fence,
                body,
                close,
            } => block(open, *fence, body, body, close),
        }
    }
}

/// A block whose fence is chosen for `full_body`, holding `body` (a prefix of it).
fn block(open: &str, fence: Option<&str>, full_body: &str, body: &str, close: &str) -> String {
    let mut body = body.to_string();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    match fence {
        Some(info) => {
            let fence = fence_for(full_body);
            format!("{open}{fence}{info}\n{body}{fence}\n{close}")
        }
        None => format!("{open}{body}{close}"),
    }
}

/// A backtick fence longer than any backtick run in `body`, so the body cannot close it.
fn fence_for(body: &str) -> String {
    let longest = longest_run(body, '`');
    "`".repeat((longest + 1).max(3))
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        if ch == c {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The longest prefix of `s` with at most `n` characters.
fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Section {
    fn text(s: String) -> Section {
        Section {
            pieces: vec![Piece::Text(s)],
        }
    }

    fn render(&self) -> String {
        self.pieces.iter().map(Piece::render).collect()
    }

    /// The section in at most `budget` characters: whole pieces while they fit, then as much
    /// of the next piece as fits (whole lines; a code block is closed properly), then a note.
    fn render_within(&self, budget: usize) -> String {
        let full = self.render();
        let total = chars(&full);
        if total <= budget {
            return full;
        }
        let note = format!(
            "> [!NOTE]\n> This section is too long for one comment ({total} characters) and was \
             cut short. Run `weir plan` to see all of it.\n\n"
        );
        // Two characters for the blank line that ends the cut part.
        let avail = budget.saturating_sub(chars(&note) + 2);
        let mut out = String::new();
        let mut used = 0;
        for piece in &self.pieces {
            let r = piece.render();
            let n = chars(&r);
            if used + n <= avail {
                out.push_str(&r);
                used += n;
                continue;
            }
            let room = avail - used;
            match piece {
                Piece::Text(t) => out.push_str(&fit_lines(t, room)),
                Piece::Block {
                    open,
                    fence,
                    body,
                    close,
                } => {
                    let cut_line = "… (cut)\n";
                    let overhead = chars(&block(open, *fence, body, "", close));
                    // Room for the kept lines, the cut line and a line break ending the body.
                    if room > overhead + chars(cut_line) + 1 {
                        let mut kept = fit_lines(body, room - overhead - chars(cut_line) - 1);
                        if !kept.is_empty() && !kept.ends_with('\n') {
                            kept.push('\n');
                        }
                        kept.push_str(cut_line);
                        out.push_str(&block(open, *fence, body, &kept, close));
                    }
                }
            }
            break;
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        out.push_str(&note);
        out
    }
}

/// Whole lines of `text` within `room` characters; if not even the first line fits, its
/// beginning with an ellipsis.
fn fit_lines(text: &str, room: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for line in text.split_inclusive('\n') {
        let n = chars(line);
        if used + n > room {
            if out.is_empty() && room > 2 {
                out.push_str(prefix_chars(line.trim_end_matches('\n'), room - 2));
                out.push_str("…\n");
            }
            break;
        }
        out.push_str(line);
        used += n;
    }
    out
}

/// Text from the repo or a cluster, safe inside a Markdown line: no HTML, no line breaks.
pub fn inline(s: &str) -> String {
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
    let s = s.replace(['\n', '\r'], " ");
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
            ] {
                let n = count(a);
                if n > 0 {
                    parts.push(format!("{n} to {word}"));
                }
            }
            parts.push(format!("{} to delete", count(Action::Delete)));
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
        let _ = writeln!(header, "**{}**\n", summary_line(plan, files.len()));
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
            if !plan.errors.is_empty() {
                let title = format!(
                    "**{} could not be planned:**",
                    plural(plan.errors.len(), "job", "jobs")
                );
                let items: Vec<String> = plan
                    .errors
                    .iter()
                    .map(|e| format!("- {}", inline(&e.message)))
                    .collect();
                sections.extend(alerts("CAUTION", &title, &items, ALERT_CHUNK));
            }

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

            sections.extend(plan.changes.iter().map(job_section));

            for (i, chunk) in plan.unmanaged.chunks(UNMANAGED_CHUNK).enumerate() {
                let mut body = String::new();
                for u in chunk {
                    let _ = writeln!(
                        body,
                        "- {} {} {} ({})",
                        code(&u.cluster),
                        code(&u.job_id.to_string()),
                        code(&u.flink_name),
                        u.state
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

    /// The preview as comments of at most `limit` characters each (see [`MIN_LIMIT`]). Parts
    /// are split between sections only; a section too long for a comment of its own is cut
    /// short with a note. Every part starts with its marker; the first holds the summary.
    pub fn split(&self, limit: usize) -> Vec<String> {
        let limit = limit.max(MIN_LIMIT);
        let whole = self.to_markdown();
        if chars(&whole) <= limit {
            return vec![whole];
        }
        // Room for the widest marker and part header a preview could have.
        const WIDEST: usize = 9_999_999;
        let first_overhead =
            chars(&marker(WIDEST, WIDEST)) + chars(&self.header) + chars(&first_note(WIDEST));
        let next_overhead =
            chars(&marker(WIDEST, WIDEST)) + chars(&self.next_header(WIDEST, WIDEST));

        let mut parts: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut used = 0;
        let mut budget = limit - first_overhead;
        let mut has_sections = false;
        for section in &self.sections {
            let rendered = section.render();
            let n = chars(&rendered);
            if used + n <= budget {
                current.push_str(&rendered);
                used += n;
                has_sections = true;
                continue;
            }
            if has_sections {
                parts.push(std::mem::take(&mut current));
                budget = limit - next_overhead;
                used = 0;
            }
            let rendered = if n <= budget - used {
                rendered
            } else {
                section.render_within(budget - used)
            };
            used += chars(&rendered);
            current.push_str(&rendered);
            has_sections = true;
        }
        parts.push(current);

        let total = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let index = i + 1;
                let mut out = marker(index, total);
                if index == 1 {
                    out.push_str(&self.header);
                    out.push_str(&first_note(total));
                } else {
                    out.push_str(&self.next_header(index, total));
                }
                out.push_str(&body);
                out
            })
            .collect()
    }

    fn next_header(&self, index: usize, total: usize) -> String {
        format!(
            "### weir plan for {} (part {index} of {total}, continued)\n\n",
            code(&self.revision)
        )
    }
}

fn first_note(total: usize) -> String {
    format!(
        "> [!NOTE]\n> This preview is long: it continues in the next {} (part 1 of {total}).\n\n",
        plural(total - 1, "comment", "comments")
    )
}

/// Writes `parts` as `dir/comment-1.md`, `comment-2.md`, … (creating `dir`), after removing
/// the `comment-N.md` files of an earlier preview so that no stale part is left behind.
pub fn write_parts(dir: &Path, parts: &[String]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_prefix("comment-"))
            .and_then(|n| n.strip_suffix(".md"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if stale && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut written = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let path = dir.join(format!("comment-{}.md", i + 1));
        std::fs::write(&path, part)?;
        written.push(path);
    }
    Ok(written)
}

/// One job's change: what happens, why, what users feel, where state comes from, and the diffs.
fn job_section(c: &Change) -> Section {
    let mut head = String::new();
    let mode = match c.action {
        Action::Redeploy | Action::Rescale => format!(" ({})", mode_str(c.upgrade_mode)),
        _ => String::new(),
    };
    let _ = writeln!(head, "#### {} — {}{mode}\n", code(&c.job), c.action);
    let _ = writeln!(head, "- **Cluster:** {}", code(&c.cluster));
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
            cur.state
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
    if c.action != Action::Suspend && c.action != Action::Delete {
        let _ = writeln!(head, "- **Restores from:** {}", restore_md(c));
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
