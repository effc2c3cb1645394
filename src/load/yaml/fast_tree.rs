//! The [`Node`] tree of an ordinary file built straight from the YAML parser's events, without
//! serde-saphyr's positioned deserialization (which spends most of a load's time on building a
//! `Spanned` value per node).
//!
//! Like [`super::from_tree`], a fast path only: it builds the tree only from what it can read
//! without doubt — strings, decimal integers, `true`/`false`, mappings and sequences without
//! anchors, aliases, tags or merge keys — and gives up on anything else (a float, `yes`, `~`, an
//! alias, a parse error, a second document, a budget near its limit). Then serde-saphyr parses
//! the text exactly as before, so every message and every budget stays its. The tests hold both
//! builders to the same tree, positions included.

use granit_parser::{Event, Parser, ScalarStyle, Span};

use super::{ByteRange, Entry, MAX_DEPTH, MAX_NODES, Node, Pos, Text, Value};

/// The tree of `text`, or `None` when this builder does not take it.
pub(crate) fn fast_tree(text: &str) -> Option<Node> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let mut nodes = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let node = match event {
            Event::StreamStart | Event::DocumentEnd | Event::Comment(..) => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(_, version) => {
                documents += 1;
                if documents > 1 || version.is_some() {
                    return None;
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                scalar(&value, style, &span)?
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if anchor != 0 || tag.is_some() || stack.len() + 1 >= MAX_DEPTH / 2 {
                    return None;
                }
                let map = matches!(event, Event::MappingStart(..));
                stack.push(Frame {
                    pos: pos(&span),
                    span: byte_range(&span),
                    items: Vec::new(),
                    entries: map.then(Vec::new),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop()?;
                // A tree is built per file and packed for the cache: no spare capacity.
                let value = match frame.entries {
                    Some(mut entries) if frame.key.is_none() => {
                        entries.shrink_to_fit();
                        Value::Map(entries)
                    }
                    Some(_) => return None,
                    None => {
                        let mut items = frame.items;
                        items.shrink_to_fit();
                        Value::Seq(items)
                    }
                };
                Node {
                    value,
                    pos: frame.pos,
                    written: None,
                    span: frame.span,
                    quoted: false,
                }
            }
            _ => return None,
        };
        nodes += 1;
        if nodes > MAX_NODES / 4 {
            return None;
        }
        match stack.last_mut() {
            None if root.is_none() => root = Some(node),
            None => return None,
            Some(parent) => parent.add(node)?,
        }
    }
    let mut tree = root?;
    tree.fill_written(text);
    Some(tree)
}

/// A collection being built.
struct Frame {
    pos: Pos,
    span: Option<ByteRange>,
    items: Vec<Node>,
    /// `Some` for a mapping.
    entries: Option<Vec<Entry>>,
    /// A mapping's key waiting for its value.
    key: Option<PendingKey>,
}

/// A mapping key's text, position and (for a number or boolean) byte range.
type PendingKey = (Text, Pos, Option<ByteRange>);

impl Frame {
    fn add(&mut self, node: Node) -> Option<()> {
        let Some(entries) = &mut self.entries else {
            self.items.push(node);
            return Some(());
        };
        match self.key.take() {
            Some((key, key_pos, key_span)) => entries.push(Entry {
                key,
                key_pos,
                key_span,
                value: node,
            }),
            None => {
                let span = match node.value {
                    Value::Int(_) | Value::Bool(_) => node.span,
                    _ => None,
                };
                let key = match node.value {
                    Value::Str(s) if s != "<<" => s,
                    Value::Int(i) => compact_str::format_compact!("{i}"),
                    Value::Bool(b) => Text::const_new(if b { "true" } else { "false" }),
                    _ => return None,
                };
                self.key = Some((key, node.pos, span));
            }
        }
        Some(())
    }
}

fn pos(span: &Span) -> Pos {
    Pos::new(span.start.line(), span.start.col() + 1)
}

fn scalar(text: &str, style: ScalarStyle, span: &Span) -> Option<Node> {
    let value = match style {
        ScalarStyle::Plain => plain(text)?,
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Value::Str(Text::from(text)),
        _ => return None,
    };
    Some(Node {
        value,
        pos: pos(span),
        written: None,
        span: Some(byte_range(span)?),
        quoted: false,
    })
}

/// (start, length) in bytes.
fn byte_range(span: &Span) -> Option<ByteRange> {
    let start = span.start.byte_offset()?;
    let end = span.end.byte_offset()?;
    Some((
        start.try_into().ok()?,
        end.checked_sub(start)?.try_into().ok()?,
    ))
}

/// A plain scalar's value, when it is beyond doubt.
fn plain(text: &str) -> Option<Value> {
    let first = text.chars().next()?;
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if first.is_ascii_digit() {
        let decimal = text.bytes().all(|b| b.is_ascii_digit()) && (first != '0' || text == "0");
        if decimal && text.len() <= 18 {
            return text.parse::<i64>().ok().map(|n| Value::Int(n.into()));
        }
        // `10s`, `5min`: a letter no number notation uses makes it text.
        let words = text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && !"abcdefABCDEFxXoOnNiItTyY".contains(c));
        return (words && !text.contains(':')).then(|| Value::Str(Text::from(text)));
    }
    let letters = first.is_alphabetic() || first == '/' || first == '$' || first == '_';
    let special = matches!(
        text.to_ascii_lowercase().as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | "null"
            | "nan"
            | "inf"
            | "infinity"
    );
    (letters && !special).then(|| Value::Str(Text::from(text)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::yaml::parse_tree_text;

    /// Whether the fast builder took `text`; panics when its tree is not serde-saphyr's.
    fn same_as_serde(text: &str) -> bool {
        let Some(fast) = fast_tree(text) else {
            return false;
        };
        match parse_tree_text(text) {
            Ok(slow) => assert_eq!(fast, slow, "the two trees differ on:\n{text}"),
            Err(e) => panic!("built fast, refused by serde-saphyr ({e:?}):\n{text}"),
        }
        true
    }

    /// A load builds a tree per file (a daemon's load unpacks each kept one): a node or an entry
    /// that grows makes every load allocate that much more per node (BENCHMARKS.md, issue 14,
    /// seventh pass).
    #[test]
    fn tree_nodes_stay_small() {
        assert_eq!(std::mem::size_of::<Node>(), 72);
        assert_eq!(std::mem::size_of::<Entry>(), 120);
        let tree =
            fast_tree("name: a-job-named-with-24b\nlong: a string longer than twenty-four bytes\n")
                .unwrap();
        let Value::Map(entries) = &tree.value else {
            panic!("{tree:?}")
        };
        let text = |i: usize| match &entries[i].value.value {
            Value::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        // Up to 24 bytes are held inline, longer ones on the heap; both read the same.
        assert!(!text(0).is_heap_allocated());
        assert!(text(1).is_heap_allocated());
        assert_eq!(text(1), "a string longer than twenty-four bytes");
        assert_eq!(entries[1].key, "long");
    }

    #[test]
    fn integers_keep_all_128_bits() {
        use crate::load::yaml::Integer;
        for i in [i128::MIN, -1, 0, 1, i128::from(i64::MAX) + 1, i128::MAX] {
            assert_eq!(Integer::from(i).get(), i);
            assert_eq!(Integer::from(i).to_string(), i.to_string());
        }
        // Beyond i64: serde-saphyr's tree (the fast builder declines such a number).
        let tree = parse_tree_text("big: 18446744073709551615\n").unwrap();
        let Value::Map(entries) = &tree.value else {
            panic!("{tree:?}")
        };
        assert_eq!(entries[0].value.value, Value::Int(u64::MAX.into()));
    }

    #[test]
    fn the_repo_examples_build_the_same_tree() {
        let mut files = Vec::new();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["examples", "deploy", "schemas"] {
            if root.join(dir).is_dir() {
                crate::load::yaml::yaml_files_under(&root.join(dir), &mut files);
            }
        }
        let texts: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let taken = texts.iter().filter(|t| same_as_serde(t)).count();
        assert!(taken >= 8, "only {taken} of {} files taken", texts.len());
    }

    const BENCH_JOB: &str = r#"apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: job-00000
  labels:
    team: team-00
    tier: "0"
spec:
  cluster: bench
  state: running
  upgradeMode: savepoint
  parallelism: 1
  jar:
    path: artifacts/bench-job.jar
    entryClass: dev.weir.bench.Job0
    args: ["--topic", "topic-0", "--rate", "10", '--group', g0]
  flinkConfiguration:
    execution.checkpointing.interval: 10s
    pipeline.max-parallelism: 128
  savepoint:
    allowNonRestoredState: true
  restartNonce: 0
"#;

    #[test]
    fn an_ordinary_job_file_is_taken_with_serde_saphyrs_tree() {
        assert!(same_as_serde(BENCH_JOB));
        // Comments, flow collections, blank lines, CRLF, a BOM-less UTF-8 text.
        let variants = [
            BENCH_JOB.replace("spec:\n", "# a comment\nspec: # trailing\n\n"),
            BENCH_JOB.replace("\n", "\r\n"),
            BENCH_JOB.replace("team: team-00", "team: équipe-00"),
            BENCH_JOB.replace("\"--topic\", \"topic-0\"", "\"é—ü\", \"topic-0\", 7, x"),
            BENCH_JOB.replace(
                "  labels:\n    team: team-00\n    tier: \"0\"\n",
                "  labels: {team: a, tier: '0'}\n",
            ),
            BENCH_JOB.replace(
                "    args:",
                "    args:\n      - a\n      - {x: 1}\n    argz:",
            ),
            BENCH_JOB.replace(
                "restartNonce: 0",
                "restartNonce: 0\n  dependencies:\n  - path: a.jar\n  - maven: g:a:1",
            ),
            format!("---\n{BENCH_JOB}"),
            format!("{BENCH_JOB}..."),
        ];
        for v in &variants {
            assert!(same_as_serde(v), "not taken:\n{v}");
        }
    }

    /// Every scalar either gives serde-saphyr's value or sends the file to serde-saphyr.
    #[test]
    fn scalars_of_every_kind_build_the_same_tree() {
        let scalars = [
            "x",
            "\"x\"",
            "'x'",
            "0",
            "\"0\"",
            "-3",
            "+3",
            "0x1F",
            "0o17",
            "010",
            "1_000",
            "1.5",
            "1e3",
            ".inf",
            "-.inf",
            ".nan",
            "true",
            "false",
            "True",
            "TRUE",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "~",
            "null",
            "Null",
            "\"\"",
            "''",
            "!!str 5",
            "4294967296",
            "99999999999999999999",
            "123456789012345678",
            "1234567890123456789",
            "[1]",
            "{a: 1}",
            "\"multi\\nline\"",
            "|\n    block",
            ">-\n    folded",
            "2024-01-01",
            "1:30",
            "10s",
            "5min",
            "2d",
            "1h",
            "0.5",
            "1.",
            "/abs/path",
            "$HOME",
            "${env:X}",
            "_x",
            "inf",
            "nan",
            "infinity",
            "e5",
            "x: y",
            "-",
            "--flag",
            "a b",
            "1 2",
            "12abc",
            "0b101",
            "&a x",
            "*a",
            "<<",
            "@x",
            "`x",
            "%x",
        ];
        let mut taken = 0;
        for scalar in scalars {
            for text in [
                format!("a: {scalar}\n"),
                format!("a:\n  - {scalar}\n"),
                format!("{scalar}: v\n"),
                format!("a: [{scalar}]\n"),
            ] {
                taken += usize::from(same_as_serde(&text));
            }
        }
        assert!(taken >= 80, "only {taken} taken");
    }

    #[test]
    fn unusual_files_go_to_serde_saphyr() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: 1\n---\nb: 2\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: !tag x\n",
            "a: {<<: {b: 1}}\n",
            "a:\n",
            "",
            "# only a comment\n",
            "a: [1\n",
            "? [a]\n: 1\n",
            "a: b: c\n",
        ] {
            assert!(fast_tree(text).is_none(), "taken: {text:?}");
        }
        let deep = (0..40).fold("x".to_string(), |inner, _| format!("[{inner}]"));
        assert!(fast_tree(&format!("a: {deep}\n")).is_none());
    }
}
