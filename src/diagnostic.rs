//! A problem found in a file of the jobs repo, pointing at a file, line and column.

use serde::Serialize;

/// One error found while loading the repo.
///
/// Rendered as `path:line:col: message`, the format editors and CI annotations understand. The
/// message starts with the field it is about (e.g. `spec.parallelism: ...`) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    /// Repo-relative path of the file, with `/` separators.
    pub file: String,
    /// 1-based line; 1 when no position is known.
    pub line: usize,
    /// 1-based column (in characters); 1 when no position is known.
    pub column: usize,
    /// Dotted path of the field the problem is about, e.g. `spec.jar.path` (`args[0]` for list
    /// items, `"a.b"` quoting keys that contain dots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Human-readable description, starting with the field name when there is one.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `line:column`; zero coordinates (unknown) are clamped to 1.
    pub fn new(
        file: impl Into<String>,
        line: usize,
        column: usize,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line: line.max(1),
            column: column.max(1),
            field,
            message: message.into(),
        }
    }

    /// A diagnostic about a whole file (positioned at 1:1).
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(file, 1, 1, None, message)
    }
}

/// As printed by `weir validate`: file names and messages (which quote values from the repo)
/// have their control characters escaped, so that a file cannot forge lines in a log.
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::escape_controls;
        write!(
            f,
            "{}:{}:{}: {}",
            escape_controls(&self.file),
            self.line,
            self.column,
            escape_controls(&self.message)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_line_col_message() {
        let d = Diagnostic::new(
            "jobs/a.yaml",
            7,
            3,
            Some("spec.parallelism".into()),
            "spec.parallelism: invalid type: string \"two\", expected u32",
        );
        assert_eq!(
            d.to_string(),
            "jobs/a.yaml:7:3: spec.parallelism: invalid type: string \"two\", expected u32"
        );
    }

    #[test]
    fn unknown_position_is_one_one() {
        let d = Diagnostic::new("weir.yaml", 0, 0, None, "boom");
        assert_eq!(d.to_string(), "weir.yaml:1:1: boom");
        assert_eq!(Diagnostic::whole_file("x", "y").to_string(), "x:1:1: y");
    }

    #[test]
    fn control_characters_are_escaped() {
        let d = Diagnostic::whole_file("jobs/\u{1b}[2Kx.yaml", "value `a\nweir.yaml:1:1: OK\u{7}`");
        assert_eq!(
            d.to_string(),
            "jobs/\\u{1b}[2Kx.yaml:1:1: value `a\\nweir.yaml:1:1: OK\\u{7}`"
        );
    }

    #[test]
    fn serializes_without_missing_field() {
        let d = Diagnostic::whole_file("weir.yaml", "empty");
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"file": "weir.yaml", "line": 1, "column": 1, "message": "empty"})
        );
    }
}
