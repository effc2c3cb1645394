//! YAML parsing with serde-saphyr: resource budgets, a positioned node tree, and turning
//! serde-saphyr errors into positioned, field-named problems.
//!
//! Every file is parsed twice from the same text with the same options: once into a [`Node`]
//! tree whose every node and key carries its line/column (serde-saphyr's `Spanned<T>`), and once
//! into the typed `spec` structs. The tree gives positions for problems found after
//! deserialization (unknown cluster, duplicate name, missing jar, ...) and names the field of a
//! serde error from the error's location.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error as YamlError, Location, MessageFormatter, Spanned};

mod fast_tree;
mod from_tree;
pub(crate) use from_tree::typed_from_tree;
mod messages;
mod packed;
pub(crate) use messages::{suggest, unknown_field_message, unknown_value_message};

/// Every `.yaml`/`.yml` file under `dir` (the fast paths' tests compare both paths on them).
#[cfg(test)]
fn yaml_files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// A 1-based line/column position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    /// 32 bits: a file is at most `MAX_YAML_BYTES` (a load builds a tree per file, or unpacks
    /// the kept one: every byte of a node counts).
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// The position at `line`, `column` (a number beyond 32 bits is kept as `u32::MAX`).
    pub fn new(line: usize, column: usize) -> Pos {
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    fn from_location(l: Location) -> Option<Pos> {
        (l.line() > 0).then(|| Pos::new(l.line() as usize, (l.column() as usize).max(1)))
    }

    /// Line/column of byte `offset` in `text` (columns count characters).
    pub fn of_byte_offset(text: &[u8], offset: usize) -> Pos {
        let before = &text[..offset.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Pos::new(line, column)
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_string())
    }
}

/// Build a path from string keys: `path(&["spec", "jar"])`.
pub(crate) fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::from(*k)).collect()
}

/// `spec.jar.args[0]`; keys that would be ambiguous are quoted: `spec.flinkConfiguration."a.b"`.
pub(crate) fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/'));
                if plain {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    /// Where the node is used (for an alias: the `*alias` token).
    pub pos: Pos,
    /// For numbers and booleans: the scalar exactly as written (`0x1F`, `1.0`, `yes`), filled by
    /// [`parse_tree`]. The resolved value would change what reaches Flink.
    pub written: Option<Box<str>>,
    /// Byte range of the scalar's text where it is defined (for an alias: the anchored node).
    span: Option<ByteRange>,
    /// A string written in quotes (see [`Node::is_quoted`]), filled by [`parse_tree`].
    quoted: bool,
}

/// A YAML integer (up to 128 bits) kept in bytes: an `i128` field would align every node to 16
/// bytes (80 instead of 72).
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Integer([u8; 16]);

impl Integer {
    pub fn get(self) -> i128 {
        i128::from_ne_bytes(self.0)
    }
}

impl From<i128> for Integer {
    fn from(i: i128) -> Self {
        Integer(i.to_ne_bytes())
    }
}

impl From<i64> for Integer {
    fn from(i: i64) -> Self {
        i128::from(i).into()
    }
}

impl From<u64> for Integer {
    fn from(i: u64) -> Self {
        i128::from(i).into()
    }
}

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl fmt::Debug for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// A key or string value: up to 24 bytes inline, without an allocation of its own.
pub(crate) type Text = compact_str::CompactString;

/// (start, length) in bytes of a file's text: a file is at most `MAX_YAML_BYTES`, so 32 bits
/// (a load builds a tree per file, or unpacks the kept one: every byte of a node counts).
pub(crate) type ByteRange = (u32, u32);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(Integer),
    Float(f64),
    Str(Text),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key as text (`<complex key>` for mapping or sequence keys).
    pub key: Text,
    pub key_pos: Pos,
    /// Byte range of a number or boolean key (made its text as written by [`parse_tree`]).
    key_span: Option<ByteRange>,
    pub value: Node,
}

impl Value {
    /// How the value is named in messages: `a mapping`, `string "two"`, `integer 3`.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(x) => format!("floating point `{x}`"),
            Value::Str(s) => format!("string {s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The text of a scalar (`None` for null and collections).
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Str(s) => Some(s.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(self, Value::Seq(_) | Value::Map(_))
    }
}

impl Node {
    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries().iter().find(|e| e.key == key)
    }

    /// The node at `path`, if present.
    pub fn get(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(_)) => &node.entry(k)?.value,
                (Seg::Index(i), Value::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Position of the value at `path`; falls back to the closest present ancestor's key.
    pub fn value_pos(&self, path: &[Seg]) -> Pos {
        match self.get(path) {
            Some(n) => n.pos,
            None => self.key_pos(path),
        }
    }

    /// Position of the key of `path` (its value for list items); falls back to the closest
    /// present ancestor.
    pub fn key_pos(&self, path: &[Seg]) -> Pos {
        for len in (1..=path.len()).rev() {
            let (parent, last) = (&path[..len - 1], &path[len - 1]);
            let Some(parent_node) = self.get(parent) else {
                continue;
            };
            match last {
                Seg::Key(k) => {
                    if let Some(e) = parent_node.entry(k) {
                        return e.key_pos;
                    }
                }
                Seg::Index(_) => {
                    if let Some(n) = parent_node.get(std::slice::from_ref(last)) {
                        return n.pos;
                    }
                }
            }
        }
        self.pos
    }

    /// The path of the deepest entry whose key is at `pos`.
    fn path_of_key_at(&self, pos: Pos) -> Option<Vec<Seg>> {
        let mut found = None;
        self.visit(&mut Vec::new(), &mut |path, node| {
            for e in node.entries() {
                if e.key_pos == pos {
                    let mut p = path.to_vec();
                    p.push(Seg::Key(e.key.to_string()));
                    found = Some(p);
                }
            }
        });
        found
    }

    /// The path of the deepest node at `pos` (mappings only when `maps_only`).
    fn path_of_node_at(&self, pos: Pos, maps_only: bool) -> Option<Vec<Seg>> {
        let mut found = None;
        self.visit(&mut Vec::new(), &mut |path, node| {
            if node.pos == pos && (!maps_only || matches!(node.value, Value::Map(_))) {
                found = Some(path.to_vec());
            }
        });
        found
    }

    /// The path of the last key or node starting at or before `pos`.
    fn path_before(&self, pos: Pos) -> Option<Vec<Seg>> {
        let mut best: Option<(Pos, Vec<Seg>)> = None;
        self.visit(&mut Vec::new(), &mut |path, node| {
            let mut consider = |p: Pos, path: Vec<Seg>| {
                if p <= pos && best.as_ref().is_none_or(|(b, _)| p >= *b) {
                    best = Some((p, path));
                }
            };
            consider(node.pos, path.to_vec());
            for e in node.entries() {
                let mut p = path.to_vec();
                p.push(Seg::Key(e.key.to_string()));
                consider(e.key_pos, p);
            }
        });
        best.map(|(_, p)| p)
    }

    /// Record, for every number and boolean, its text as written in `text`.
    fn fill_written(&mut self, text: &str) {
        match &mut self.value {
            Value::Map(entries) => {
                for e in entries {
                    // A key `0x1F` or `1.0` is that text for serde too, not the number.
                    if let Some(written) = e.key_span.and_then(|range| text_at(text, range)) {
                        e.key = Text::from(written);
                    }
                    e.value.fill_written(text);
                }
            }
            Value::Seq(items) => items.iter_mut().for_each(|n| n.fill_written(text)),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                self.written = self
                    .span
                    .and_then(|range| text_at(text, range))
                    .map(Box::from);
            }
            Value::Str(_) => {
                self.quoted = self
                    .span
                    .and_then(|(start, _)| text_at(text, (start, 1)))
                    .is_some_and(|c| c == "\"" || c == "'");
            }
            Value::Null => {}
        }
    }

    /// Whether the scalar is a quoted string (`"…"` or `'…'`).
    pub fn is_quoted(&self) -> bool {
        matches!(self.value, Value::Str(_)) && self.quoted
    }

    /// A scalar's text as it reaches Flink: strings as parsed, numbers and booleans as written.
    pub fn scalar_as_written(&self) -> Option<String> {
        match &self.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => self
                .written
                .as_deref()
                .map(str::to_string)
                .or_else(|| self.value.scalar_text()),
            other => other.scalar_text(),
        }
    }

    /// Pre-order traversal (parents before children, so "last match" is the deepest).
    fn visit(&self, path: &mut Vec<Seg>, f: &mut dyn FnMut(&[Seg], &Node)) {
        f(path, self);
        match &self.value {
            Value::Map(entries) => {
                for e in entries {
                    path.push(Seg::Key(e.key.to_string()));
                    e.value.visit(path, f);
                    path.pop();
                }
            }
            Value::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    n.visit(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// The text of `range` in `text`.
fn text_at(text: &str, (start, len): ByteRange) -> Option<&str> {
    let start = start as usize;
    text.get(start..start.checked_add(len as usize)?)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        let span = s.defined.span();
        let span = span
            .byte_offset()
            .zip(span.byte_len())
            .and_then(|(start, len)| Some((u32::try_from(start).ok()?, u32::try_from(len).ok()?)));
        Ok(Node {
            value: s.value,
            pos: Pos::from_location(s.referenced).unwrap_or(Pos::START),
            written: None,
            span,
            quoted: false,
        })
    }
}

/// A mapping key: any node, kept as text.
struct KeyNode {
    text: String,
    pos: Pos,
    /// For numbers and booleans: where their text is.
    span: Option<ByteRange>,
}

impl<'de> Deserialize<'de> for KeyNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let node = Node::deserialize(d)?;
        let text = match &node.value {
            Value::Null => "null".to_string(),
            v => v
                .scalar_text()
                .unwrap_or_else(|| "<complex key>".to_string()),
        };
        let span = match node.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => node.span,
            _ => None,
        };
        Ok(KeyNode {
            text,
            pos: node.pos,
            span,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(|i| Value::Int(i.into()))
            .or_else(|_| Ok(Value::Str(compact_str::format_compact!("{v}"))))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Text::from(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(Text::from(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(Text::from_utf8_lossy(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        items.shrink_to_fit();
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<KeyNode>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: key.text.into(),
                key_pos: key.pos,
                key_span: key.span,
                value,
            });
        }
        entries.shrink_to_fit();
        Ok(Value::Map(entries))
    }
}

/// Nesting allowed in a file; the repo format needs about 5 levels.
pub(crate) const MAX_DEPTH: usize = 32;
/// Nodes allowed in a file, counting nodes replayed through aliases.
pub(crate) const MAX_NODES: usize = 20_000;

/// Parser options: tight budgets (repo files are small) so that YAML bombs, deep nesting and
/// document floods fail fast with a budget error instead of consuming memory or time.
pub(crate) fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_events: 5 * MAX_NODES,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: 16,
            max_total_scalar_bytes: 8 * 1024 * 1024,
            max_merge_keys: 1_000,
            max_recorded_anchor_events: 5 * MAX_NODES,
            max_recorded_anchor_bytes: 8 * 1024 * 1024,
            flow_nesting_limit: MAX_DEPTH,
        },
        with_snippet: false,
    };
    options.alias_limits.max_total_replayed_events = 5 * MAX_NODES;
    options.alias_limits.max_replay_stack_depth = MAX_DEPTH;
    // A tag weir does not know (`!Ref`, `!secret`) would otherwise be dropped silently, and the
    // value used as if the tag were not there.
    options.reject_unsupported_tags = true;
    options.reject_tagged_field_names = true;
    options
}

/// A problem in one file, before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub pos: Pos,
    pub path: Vec<Seg>,
    /// The message without the field prefix.
    pub message: String,
}

impl Problem {
    pub fn new(pos: Pos, path: Vec<Seg>, message: impl Into<String>) -> Self {
        Problem {
            pos,
            path,
            message: message.into(),
        }
    }

    pub fn field(&self) -> Option<String> {
        (!self.path.is_empty()).then(|| format_path(&self.path))
    }

    pub fn into_diagnostic(self, file: &str) -> crate::diagnostic::Diagnostic {
        let field = self.field();
        let message = match &field {
            Some(f) => format!("{f}: {}", self.message),
            None => self.message,
        };
        crate::diagnostic::Diagnostic::new(
            file,
            self.pos.line as usize,
            self.pos.column as usize,
            field,
            message,
        )
    }
}

/// Why a file could not be parsed into a single tree.
#[derive(Debug)]
pub(crate) enum ParseFailure {
    /// No document (empty, comments only, or a lone `~`).
    Empty,
    /// More than one document; the position of the second.
    MultipleDocuments(Pos),
    /// Syntax error, budget breach, ...
    Invalid(Problem),
}

/// Parse `text` as exactly one YAML document.
///
/// Duplicate keys are kept in the tree (see [`duplicate_keys`]) so that they can be reported with
/// their field path, all at once.
pub(crate) fn parse_tree(text: &str) -> Result<Node, ParseFailure> {
    if let Some(tree) = fast_tree::fast_tree(text) {
        return Ok(tree);
    }
    parse_tree_text(text)
}

/// [`parse_tree`] by serde-saphyr alone (every file the fast builder does not take).
pub(crate) fn parse_tree_text(text: &str) -> Result<Node, ParseFailure> {
    let mut tree_options = options();
    tree_options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    let mut docs: Vec<Node> = match serde_saphyr::from_str_multiple_with_options(text, tree_options)
    {
        Ok(docs) => docs,
        Err(e) => {
            if let YamlError::Budget {
                breach: BudgetBreach::Documents { .. },
                ..
            } = innermost(&e)
            {
                return Err(ParseFailure::MultipleDocuments(error_pos(&e)));
            }
            return Err(ParseFailure::Invalid(problem_from_error(&e, None)));
        }
    };
    match docs.len() {
        0 => Err(ParseFailure::Empty),
        1 => {
            let mut tree = docs.remove(0);
            tree.fill_written(text);
            Ok(tree)
        }
        _ => Err(ParseFailure::MultipleDocuments(docs[1].pos)),
    }
}

/// Every repeated key of every mapping in `tree` (at the repeated occurrence).
pub(crate) fn duplicate_keys(tree: &Node) -> Vec<Problem> {
    let mut out = Vec::new();
    tree.visit(&mut Vec::new(), &mut |path, node| {
        let entries = node.entries();
        for (i, e) in entries.iter().enumerate() {
            if entries[..i].iter().any(|prev| prev.key == e.key) {
                let mut p = path.to_vec();
                p.push(Seg::Key(e.key.to_string()));
                out.push(Problem::new(
                    e.key_pos,
                    p,
                    format!("duplicate key `{}`", e.key),
                ));
            }
        }
    });
    out
}

/// Which of a file's two forms its typed value was deserialized from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypedFrom {
    /// The tree: [`typed_from_tree`] gives the same value again.
    Tree,
    /// The text (the tree's fast path declined the file).
    Text,
}

/// Deserialize `text` into `T`; on error, a problem positioned and named with `tree`.
///
/// `tree` is `text` parsed: most files are taken from it without scanning the text again (see
/// [`from_tree`]); the others, and every file with a problem, are deserialized from the text.
pub(crate) fn parse_typed<T: DeserializeOwned>(
    text: &str,
    tree: &Node,
) -> Result<(T, TypedFrom), Problem> {
    if let Some(value) = typed_from_tree(tree) {
        return Ok((value, TypedFrom::Tree));
    }
    parse_typed_text(text, tree).map(|value| (value, TypedFrom::Text))
}

/// [`parse_typed`] without the fast path.
pub(crate) fn parse_typed_text<T: DeserializeOwned>(text: &str, tree: &Node) -> Result<T, Problem> {
    serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| problem_from_error(&e, Some(tree)))
}

fn innermost(mut e: &YamlError) -> &YamlError {
    loop {
        match e {
            YamlError::WithSnippet { error, .. } | YamlError::AliasError { error, .. } => e = error,
            other => return other,
        }
    }
}

fn error_pos(e: &YamlError) -> Pos {
    e.location()
        .and_then(Pos::from_location)
        .or_else(|| innermost(e).location().and_then(Pos::from_location))
        .unwrap_or(Pos::START)
}

/// Whether a serde-saphyr error is about a field name (unknown / missing) or an enum value —
/// problems the schema check reports on its own.
pub(crate) fn is_structural(p: &Problem) -> bool {
    p.message.starts_with("unknown field")
        || p.message.starts_with("missing required field")
        || p.message.starts_with("unknown value")
        || p.message.starts_with("must be `")
}

fn problem_from_error(e: &YamlError, tree: Option<&Node>) -> Problem {
    let pos = error_pos(e);
    let inner = innermost(e);
    let key_path = || tree.and_then(|t| t.path_of_key_at(pos)).unwrap_or_default();
    let node_path = || tree.and_then(|t| t.path_of_node_at(pos, false));
    let value_problem = |message: String| {
        let path = node_path()
            .or_else(|| tree.and_then(|t| t.path_before(pos)))
            .unwrap_or_default();
        Problem::new(pos, path, message)
    };
    let node_at = || {
        let t = tree?;
        t.get(&t.path_of_node_at(pos, false)?).cloned()
    };
    match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let mut path = key_path();
            if path.is_empty() {
                path.push(Seg::Key(field.clone()));
            }
            Problem::new(pos, path, unknown_field_message(field, expected))
        }
        YamlError::SerdeMissingField { field, .. } => {
            let mut path = tree
                .and_then(|t| t.path_of_node_at(pos, true))
                .unwrap_or_default();
            path.push(Seg::Key(field.to_string()));
            Problem::new(pos, path, "missing required field")
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => value_problem(unknown_value_message(variant, expected)),
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => value_problem(format!("invalid type: {unexpected}, expected {expected}")),
        YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => value_problem(format!("invalid value: {unexpected}, expected {expected}")),
        YamlError::InvalidScalar { ty, .. } => {
            let message = match node_at().map(|n| n.value) {
                Some(Value::Int(i)) => format!("invalid value: integer `{i}`, expected {ty}"),
                Some(v @ (Value::Float(_) | Value::Bool(_) | Value::Str(_))) => {
                    format!("invalid type: {}, expected {ty}", v.describe())
                }
                Some(Value::Null) => format!("invalid type: null, expected {ty}"),
                _ => format!("invalid YAML: a value cannot be read as {ty}"),
            };
            value_problem(message)
        }
        YamlError::NullIntoString { .. } => {
            value_problem("invalid type: null, expected a string".into())
        }
        YamlError::Unexpected { expected, .. } => {
            let found = node_at()
                .map(|n| format!(", found {}", n.value.describe()))
                .unwrap_or_default();
            let expected = match *expected {
                "mapping start" => "a mapping",
                "sequence start" => "a list",
                "string scalar" => "a scalar value",
                other => other,
            };
            value_problem(format!("expected {expected}{found}"))
        }
        YamlError::Message { msg, .. } if msg.contains("untagged enum ConfigValue") => {
            let found = node_at()
                .map(|n| format!(", found {}", n.value.describe()))
                .unwrap_or_default();
            value_problem(format!("expected a string, number or boolean{found}"))
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            let path = key_path();
            let key = key.as_deref().unwrap_or("?");
            Problem::new(pos, path, format!("duplicate key `{key}`"))
        }
        other => file_problem(pos, other),
    }
}

/// A problem with the file as a whole (limits, aliases, encoding, syntax): no field path.
fn file_problem(pos: Pos, e: &YamlError) -> Problem {
    match e {
        YamlError::Budget { breach, .. } => Problem::new(pos, Vec::new(), budget_message(breach)),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. }
        | YamlError::AliasReplayCounterOverflow { .. } => Problem::new(
            pos,
            Vec::new(),
            "YAML aliases expand to too much data (a \"billion laughs\" YAML bomb?)",
        ),
        YamlError::InvalidUtf8Input => Problem::new(pos, Vec::new(), "file is not valid UTF-8"),
        YamlError::UnsupportedTag { tag, .. } | YamlError::TaggedStructFieldName { tag, .. } => {
            Problem::new(
                pos,
                Vec::new(),
                format!("unsupported YAML tag `{tag}`; weir files use no tags (remove it)"),
            )
        }
        other => {
            let msg = serde_saphyr::UserMessageFormatter.format_message(other);
            if msg.contains("recursion limit exceeded") || msg.contains("nesting limit") {
                return Problem::new(
                    pos,
                    Vec::new(),
                    budget_message(&BudgetBreach::Depth { depth: 0 }),
                );
            }
            Problem::new(pos, Vec::new(), format!("invalid YAML: {msg}"))
        }
    }
}

fn budget_message(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { .. } => {
            format!("YAML is nested too deeply (more than {MAX_DEPTH} levels)")
        }
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => format!(
            "YAML has too many nodes (more than {MAX_NODES}, counting alias expansions; a \
             \"billion laughs\" YAML bomb?)"
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. }
        | BudgetBreach::MergeKeys { .. } => {
            "YAML uses too many anchors, aliases or merge keys (a \"billion laughs\" YAML bomb?)"
                .to_string()
        }
        BudgetBreach::ScalarBytes { .. } => "YAML contains too much text".to_string(),
        BudgetBreach::Documents { .. } => "too many YAML documents".to_string(),
        other => format!("YAML is too large or complex ({other:?})"),
    }
}
