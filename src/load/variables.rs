//! `${name}` variables in job texts (`sql`, `sqlFile` contents, `args`, `flinkConfiguration`
//! values), replaced by the loader from `variables` of `weir.yaml` (and of the environment).
//!
//! The desired job holds the result as a template for the edge ([`crate::secrets::for_flink`]):
//! `${env:NAME}` secrets and `$${` escapes are kept as written, so that plans show `${env:NAME}`
//! and never a value; the digest of each secret goes into [`DesiredJob::secrets`].

use std::collections::BTreeMap;

use compact_str::CompactString;

use super::checks::is_env_var_name;
use super::yaml::{Node, Pos, Problem, Seg, path, suggest};
use crate::desired::{DesiredJob, Program};
use crate::diagnostic::Diagnostic;
use crate::spec::ConfigValue;

// `${`, `$${` and `${env:` are spelled with `\u{7b}` so that the braces of the code stay
// balanced for scripts/layers.py, which counts them to measure functions.
/// Opens a reference.
const OPEN: &str = "$\u{7b}";
/// Writes a literal [`OPEN`].
const ESCAPED_OPEN: &str = "$$\u{7b}";

/// Where a text of a job was written, for positions of its problems.
pub(super) struct Origin<'a> {
    /// The field, in the job file.
    pub path: Vec<Seg>,
    /// Where the text starts (its first character; for a block scalar, its first content
    /// character, whose column is the block's indentation); for a text read from another file,
    /// where the field naming that file is.
    pub pos: Pos,
    /// A problem of a text read from another file (an `sqlFile`) is reported there, and the
    /// field naming the file gets one too (the job file is then invalid: not a deletion).
    pub other_file: Option<&'a str>,
}

/// A problem at byte `offset` of a text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Misuse {
    pub offset: usize,
    pub message: String,
}

/// Whether `name` may name a variable: a letter or `_`, then letters, digits, `_`, `-`, `.`.
pub(super) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The variables as text.
pub(super) fn as_text(variables: &BTreeMap<String, ConfigValue>) -> BTreeMap<String, String> {
    variables
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// `text` with every `${name}` replaced by its variable; `${env:NAME}` and `$${` stay as
/// written (see the module docs). Every misuse found, when there is one.
pub(super) fn substitute(
    text: &str,
    variables: &BTreeMap<String, String>,
) -> Result<String, Vec<Misuse>> {
    let mut out = String::with_capacity(text.len());
    let mut misuses = Vec::new();
    let mut at = 0;
    while let Some(found) = text[at..].find('$') {
        let i = at + found;
        out.push_str(&text[at..i]);
        let tail = &text[i..];
        if tail.starts_with(ESCAPED_OPEN) {
            out.push_str(ESCAPED_OPEN);
            at = i + ESCAPED_OPEN.len();
            continue;
        }
        if !tail.starts_with(OPEN) {
            out.push('$');
            at = i + 1;
            continue;
        }
        let Some(end) = tail.find('}') else {
            misuses.push(Misuse {
                offset: i,
                message: format!(
                    "`{OPEN}` without a closing brace; write `{ESCAPED_OPEN}` for a literal `{OPEN}`"
                ),
            });
            break;
        };
        let reference = &tail[..=end];
        let name = &tail[2..end];
        if let Some(secret) = name.strip_prefix("env:") {
            if !is_env_var_name(secret) {
                misuses.push(Misuse {
                    offset: i,
                    message: format!(
                        "`{reference}`: `{secret}` is not an environment variable name \
                         (letters, digits and '_', not starting with a digit)"
                    ),
                });
            }
            out.push_str(reference);
        } else if let Some(value) = variables.get(name) {
            out.push_str(value);
        } else {
            misuses.push(Misuse {
                offset: i,
                message: undefined_message(reference, name, variables),
            });
        }
        at = i + end + 1;
    }
    out.push_str(&text[at.min(text.len())..]);
    if misuses.is_empty() {
        Ok(out)
    } else {
        Err(misuses)
    }
}

fn undefined_message(reference: &str, name: &str, variables: &BTreeMap<String, String>) -> String {
    let hint = suggest(name, variables.keys().map(String::as_str))
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    let known = if variables.is_empty() {
        "weir.yaml defines no variables".to_string()
    } else {
        format!(
            "variables: {}",
            variables
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "undefined variable `{reference}`{hint} ({known}; `{OPEN}env:NAME}}` reads weir's \
         environment, `{ESCAPED_OPEN}` writes a literal `{OPEN}`)"
    )
}

/// Line and column of byte `offset` of a text that starts at `start` (continuation lines
/// start at `start`'s column, as in a block scalar).
pub(super) fn pos_at(start: Pos, text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before[line_start..].chars().count();
    let lines = before.matches('\n').count();
    Pos::new(start.line as usize + lines, start.column as usize + column)
}

/// Replaces the variables in every text of `job`, reports every misuse (at its line and
/// column), and records the digests of the secrets the texts refer to.
pub(super) fn resolve_job(
    job: &mut DesiredJob,
    tree: &Node,
    config_origins: &BTreeMap<String, Vec<Seg>>,
    variables: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
    elsewhere: &mut Vec<Diagnostic>,
) {
    // The text with its variables filled in; `None` (and the misuses reported) when it uses one
    // wrongly.
    let mut fill = |text: &str, origin: Origin<'_>| match substitute(text, variables) {
        Ok(done) => Some(done),
        Err(misuses) => {
            report(misuses, text, origin, problems, elsewhere);
            None
        }
    };
    for (key, value) in job.flink_configuration.iter_mut() {
        let p = config_origins.get(key).cloned().unwrap_or_else(|| {
            let mut p = path(&["spec", "flinkConfiguration"]);
            p.push(Seg::Key(key.to_string()));
            p
        });
        let pos = tree.value_pos(&p);
        if let Some(done) = fill(value, origin(tree, p, pos, None)) {
            *value = done.into();
        }
    }
    match &mut job.program {
        Program::Jar { args, .. } => {
            for (i, arg) in args.iter_mut().enumerate() {
                let mut p = path(&["spec", "jar", "args"]);
                p.push(Seg::Index(i));
                let pos = tree.value_pos(&p);
                if let Some(done) = fill(arg, origin(tree, p, pos, None)) {
                    *arg = done.into();
                }
            }
        }
        Program::Sql {
            script,
            source_file,
            ..
        } => match source_file {
            Some(file) => {
                let p = path(&["spec", "sqlFile"]);
                let pos = tree.value_pos(&p);
                if let Some(done) = fill(script, origin(tree, p, pos, Some(file))) {
                    *script = done;
                }
            }
            None => {
                let p = path(&["spec", "sql"]);
                let pos = tree.value_pos(&p);
                if let Some(done) = fill(script, origin(tree, p, pos, None)) {
                    *script = done;
                }
            }
        },
    }
    let mut texts: Vec<&str> = job.flink_configuration.values().collect();
    match &job.program {
        Program::Jar { args, .. } => texts.extend(args.iter().map(CompactString::as_str)),
        Program::Sql { script, .. } => texts.push(script),
    }
    job.secrets = crate::secrets::digests(texts);
}

/// Where a text starts: a quoted scalar's text starts after its quote.
fn origin<'a>(tree: &Node, p: Vec<Seg>, pos: Pos, other_file: Option<&'a str>) -> Origin<'a> {
    let quoted = tree.get(&p).is_some_and(Node::is_quoted);
    let pos = if quoted {
        Pos {
            line: pos.line,
            column: pos.column + 1,
        }
    } else {
        pos
    };
    Origin {
        path: p,
        pos,
        other_file,
    }
}

fn report(
    misuses: Vec<Misuse>,
    text: &str,
    origin: Origin<'_>,
    problems: &mut Vec<Problem>,
    elsewhere: &mut Vec<Diagnostic>,
) {
    match origin.other_file {
        None => {
            for m in misuses {
                let pos = pos_at(origin.pos, text, m.offset);
                problems.push(Problem::new(pos, origin.path.clone(), m.message));
            }
        }
        Some(file) => {
            let mut first = None;
            for m in &misuses {
                let pos = pos_at(Pos::START, text, m.offset);
                first.get_or_insert(pos);
                elsewhere.push(Diagnostic::new(
                    file,
                    pos.line as usize,
                    pos.column as usize,
                    None,
                    m.message.clone(),
                ));
            }
            let at = first.unwrap_or(Pos::START);
            // The job file is invalid too: a job whose script does not resolve is not deleted.
            problems.push(Problem::new(
                origin.pos,
                origin.path.clone(),
                format!(
                    "`{file}` does not resolve: see {file}:{}:{}",
                    at.line, at.column
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaces_variables_and_keeps_secrets_and_escapes() {
        let v = vars(&[("brokers", "kafka:9092"), ("topic", "orders")]);
        assert_eq!(
            substitute("'${brokers}' ${topic}/${env:PW} $${brokers} $5 $", &v).unwrap(),
            "'kafka:9092' orders/${env:PW} $${brokers} $5 $"
        );
        assert_eq!(substitute("no variables", &v).unwrap(), "no variables");
    }

    #[test]
    fn reports_every_misuse_with_its_offset() {
        let v = vars(&[("brokers", "x")]);
        let misuses = substitute("a ${broker} b ${env:not ok} ${unclosed", &v).unwrap_err();
        assert_eq!(misuses.len(), 3);
        assert_eq!(misuses[0].offset, 2);
        assert!(
            misuses[0]
                .message
                .starts_with("undefined variable `${broker}`; did you mean `brokers`? ("),
            "{}",
            misuses[0].message
        );
        assert_eq!(misuses[1].offset, 14);
        assert!(
            misuses[1]
                .message
                .contains("not an environment variable name")
        );
        assert_eq!(misuses[2].offset, 28);
        assert!(misuses[2].message.contains("without a closing"));
    }

    #[test]
    fn positions_follow_lines_of_a_block() {
        let start = Pos { line: 7, column: 5 };
        let text = "SELECT 1;\nINSERT ${x};";
        let offset = text.find("${").unwrap();
        assert_eq!(
            pos_at(start, text, offset),
            Pos {
                line: 8,
                column: 12
            }
        );
        assert_eq!(pos_at(start, text, 0), start);
    }

    #[test]
    fn variable_names() {
        assert!(is_variable_name("brokers"));
        assert!(is_variable_name("kafka.brokers-1_x"));
        assert!(!is_variable_name("1x"));
        assert!(!is_variable_name("env:x"));
        assert!(!is_variable_name(""));
    }
}
