//! Sections of a preview and how they are split between comments: a section is never cut
//! inside a fold or a code fence, and one too long for a comment of its own is cut short with a
//! note.

use std::path::{Path, PathBuf};

use super::{MIN_LIMIT, Preview, code, marker, plural};

/// A self-contained block of Markdown: every fold and fence it opens, it closes.
#[derive(Debug, Clone, Default)]
pub(super) struct Section {
    pub(super) pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
pub(super) enum Piece {
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

pub(super) fn longest_run(s: &str, c: char) -> usize {
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
    pub(super) fn text(s: String) -> Section {
        Section {
            pieces: vec![Piece::Text(s)],
        }
    }

    pub(super) fn render(&self) -> String {
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

impl Preview {
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
