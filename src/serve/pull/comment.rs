//! The one comment a preview writes: the rendered plan cut to the forge's size limit, with a
//! footer saying what was planned, or the failure.

use super::merge::{Basis, Prepared};
use crate::render::markdown::{self as preview, Preview};
use crate::serve::short;

/// The last line of a comment: what was planned and where the cluster settings came from.
pub(super) fn footer(p: &Prepared, head: &str, branch: &str, plan_id: Option<&str>) -> String {
    let code = preview::code;
    let what = match p.basis {
        Basis::UpToDate => format!(
            "head {} (up to date with {})",
            code(short(head)),
            code(branch)
        ),
        Basis::AlreadyMerged => format!(
            "head {} (already in {} at {})",
            code(short(head)),
            code(branch),
            code(short(&p.base))
        ),
        Basis::Merged => format!(
            "head {} merged into {} at {} (as {})",
            code(short(head)),
            code(branch),
            code(short(&p.base)),
            code(short(&p.planned))
        ),
        Basis::Conflict => format!(
            "head {} as it is (it conflicts with {})",
            code(short(head)),
            code(branch)
        ),
    };
    let plan = plan_id
        .map(|id| format!(" · plan {}", code(id)))
        .unwrap_or_default();
    format!(
        "---\n<sub>weir serve · {what} · cluster settings of {}{plan}</sub>\n",
        code(branch)
    )
}

/// Where the whole plan can be read when the comment holds only its beginning.
#[derive(Clone, Copy)]
pub(super) struct FullPlan<'a> {
    pub(super) id: &'a str,
    pub(super) url: Option<&'a str>,
}

/// Room kept for the note of a cut preview.
pub(super) const CUT_NOTE_ROOM: usize = 600;

/// The preview as one comment of at most `limit` characters, `footer` included: whole, or its
/// first part with a note that the rest is in the daemon (`GET /api/v1/plans/{id}`).
pub(super) fn single_comment(
    preview: &Preview,
    limit: usize,
    footer: &str,
    full: Option<FullPlan<'_>>,
) -> String {
    let footer_len = footer.chars().count() + 2;
    let budget = limit.saturating_sub(footer_len + CUT_NOTE_ROOM);
    let parts = preview.split(budget);
    let total = parts.len();
    let first = parts.into_iter().next().unwrap_or_default();
    // The blank line keeps `---` a rule (right after a paragraph it would underline a heading).
    let with_footer = |body: &str| format!("{}\n\n{footer}", body.trim_end());
    if total == 1 {
        return with_footer(&first);
    }
    // The first part of a split says it continues in more comments: a daemon preview is one
    // comment, so that note becomes a pointer to the whole plan.
    let rest = first.split_once('\n').map(|(_, r)| r).unwrap_or("");
    let where_ = match full {
        Some(FullPlan { url: Some(url), .. }) => format!("[the whole plan]({url})"),
        Some(FullPlan { id, .. }) => format!(
            "the whole plan from the daemon: `GET /api/v1/plans/{}`",
            id.replace('`', "")
        ),
        None => "the whole plan with `weir plan`".into(),
    };
    let note = format!(
        "> [!NOTE]\n> This preview is too long for one comment: only its beginning is shown. \
         See {where_}.\n\n"
    );
    let continued = continuation_note(total);
    let body = if rest.contains(&continued) {
        rest.replacen(&continued, &note, 1)
    } else {
        format!("{note}{rest}")
    };
    with_footer(&format!("{}{body}", preview::marker(1, 1)))
}

/// The note [`Preview::split`] puts in the first of `total` parts.
pub(super) fn continuation_note(total: usize) -> String {
    let n = total - 1;
    format!(
        "> [!NOTE]\n> This preview is long: it continues in the next {n} {} (part 1 of {total}).\n\n",
        if n == 1 { "comment" } else { "comments" }
    )
}

/// The comment when a preview failed.
pub(super) fn failure_comment(head: &str, message: &str) -> String {
    format!(
        "{}### weir plan\n\n**weir could not plan {}:** {}\n\nThe next push to the pull request \
         tries again.\n",
        preview::marker(1, 1),
        preview::code(short(head)),
        preview::inline(message)
    )
}

/// Whether a comment is weir's preview (its first line is the marker of a whole preview or of
/// its first part).
pub fn is_preview_comment(body: &str) -> bool {
    matches!(preview::parse_marker(body), Some((1, _)))
}
