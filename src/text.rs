//! Small text helpers shared by every layer: one way to print an error with its causes, one way
//! to shorten text.

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
        let e = Wrap("POST /jars/upload: timed out", Some(Box::new(Wrap("timed out", None))));
        assert_eq!(error_chain(&e), "POST /jars/upload: timed out");
        let e = Wrap("upload failed", Some(Box::new(Wrap("connection refused", None))));
        assert_eq!(error_chain(&e), "upload failed: connection refused");
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("ab", 0), "…");
    }
}
