//! Small text helpers shared by every layer: one way to print an error with its causes, one way
//! to shorten text, one way to make untrusted text safe to print.

use std::borrow::Cow;

/// An error and its sources on one line, `: `-separated; a source whose text the line already
/// ends with (wrappers that repeat their cause) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// At most `max` characters (not bytes), with `…` as the last one when shortened.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Untrusted text (from the repo, a cluster, a peer) made safe for one line of a terminal or CI
/// log: control characters (C0 including newlines, DEL, C1), line and paragraph separators and
/// bidirectional overrides become visible escapes (`\n`, `\u{1b}`), so that a value cannot
/// move the cursor, recolour the terminal or forge a line.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// [`escape_controls`] for multi-line text (SQL, diffs): line breaks and tabs are kept.
pub fn escape_controls_multiline(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, multiline: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        !(multiline && matches!(c, '\n' | '\t'))
            && (c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}')
                || ('\u{202A}'..='\u{202E}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c))
    };
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<Box<Wrap>>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn chain_joins_causes_once() {
        let e = Wrap(
            "POST /jars/upload: timed out",
            Some(Box::new(Wrap("timed out", None))),
        );
        assert_eq!(error_chain(&e), "POST /jars/upload: timed out");
        let e = Wrap(
            "upload failed",
            Some(Box::new(Wrap("connection refused", None))),
        );
        assert_eq!(error_chain(&e), "upload failed: connection refused");
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("ab", 0), "…");
    }

    #[test]
    fn controls_are_escaped() {
        assert!(matches!(escape_controls("plain text"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[31mred\u{7}\r\nFORGED\tx\u{85}\u{202e}"),
            "a\\u{1b}[31mred\\u{7}\\r\\nFORGED\\tx\\u{85}\\u{202e}"
        );
        assert_eq!(
            escape_controls_multiline("SELECT 1;\n\tINSERT \u{1b}]0;x\u{7}\r\n"),
            "SELECT 1;\n\tINSERT \\u{1b}]0;x\\u{7}\\r\n"
        );
        assert_eq!(escape_controls("héllo ünïcode ✓"), "héllo ünïcode ✓");
    }
}
