//! Maps a cluster's error about an SQL script back to the repo: the SQL runner names the failing
//! statement and the line it starts on (`statement #3 (line 4): ...`), Flink's SQL planner the
//! position within that statement (`From line 2, column 16 to ...`). Together with where the
//! script starts in the repo ([`SqlOrigin`]) that is `sql/orders.sql:5:16`.

use crate::desired::SqlOrigin;

/// `file:line:col: message` (or `file:line: message` without a column) when `detail` names a
/// statement of the script; `None` otherwise.
pub fn locate(origin: &SqlOrigin, script: &str, detail: &str, message: &str) -> Option<String> {
    let statement_line = number_after(detail, "(line ")?;
    let within = detail
        .find("From line ")
        .map(|i| &detail[i..])
        .and_then(|rest| {
            Some((
                number_after(rest, "From line ")?,
                number_after(rest, "column ")?,
            ))
        });
    let script_line = match within {
        Some((line, _)) => statement_line + line.saturating_sub(1),
        None => statement_line,
    };
    let file_line = origin.line + script_line.saturating_sub(1);
    // A column of the statement's first line counts from where the statement starts on it.
    let column = match within {
        Some((1, column)) => Some(column + leading_whitespace(script, statement_line)),
        Some((_, column)) => Some(column),
        None => Some(1 + leading_whitespace(script, statement_line)),
    }
    .map(|c| c + origin.indent);
    Some(match column {
        Some(c) => format!("{}:{file_line}:{c}: {message}", origin.file),
        None => format!("{}:{file_line}: {message}", origin.file),
    })
}

/// The decimal number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u32> {
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Spaces and tabs at the start of line `line` (1-based) of `script`.
fn leading_whitespace(script: &str, line: u32) -> u32 {
    let text = script
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or_default();
    let n = text.chars().take_while(|c| *c == ' ' || *c == '\t').count();
    u32::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETAIL: &str = "ProgramInvocationException: The main method caused an error: weir \
        sql-runner: statement #3 (line 4): INSERT INTO sink failed: SQL validation failed. From \
        line 2, column 16 to line 2, column 21: Object 'clickz' not found";

    fn origin(file: &str, line: u32, indent: u32) -> SqlOrigin {
        SqlOrigin {
            file: file.into(),
            line,
            indent,
        }
    }

    #[test]
    fn a_file_script_error_names_the_file_line_and_column() {
        let script = "CREATE TABLE a (x INT);\nCREATE TABLE b (x INT);\n\nINSERT INTO sink\nSELECT id FROM clickz;\n";
        assert_eq!(
            locate(
                &origin("sql/orders.sql", 1, 0),
                script,
                DETAIL,
                "Object 'clickz' not found"
            )
            .as_deref(),
            Some("sql/orders.sql:5:16: Object 'clickz' not found")
        );
    }

    #[test]
    fn an_inline_script_error_names_the_job_file_line_and_column() {
        // `sql: |` whose block starts on line 12 of the job file, indented by 4.
        let script = "CREATE TABLE a (x INT);\nCREATE TABLE b (x INT);\n\nINSERT INTO sink SELECT id FROM clickz;\n";
        let detail = DETAIL.replace("From line 2, column 16", "From line 1, column 33");
        assert_eq!(
            locate(&origin("jobs/a.yaml", 12, 4), script, &detail, "m").as_deref(),
            Some("jobs/a.yaml:15:37: m")
        );
    }

    #[test]
    fn a_runner_error_without_a_position_names_the_statement_line() {
        let detail = "weir sql-runner: statement #2 (line 3): SELECT 1: only SET ... are allowed";
        assert_eq!(
            locate(&origin("q.sql", 1, 0), "a;\nb;\n  SELECT 1;", detail, "m").as_deref(),
            Some("q.sql:3:3: m")
        );
        assert_eq!(locate(&origin("q.sql", 1, 0), "", "no position", "m"), None);
    }
}
