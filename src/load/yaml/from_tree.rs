//! The typed structs of a file, deserialized from its already parsed [`Node`] tree instead of
//! from its text a second time (YAML scanning is most of a load's cost).
//!
//! This is a fast path only: it accepts exactly the shapes whose meaning is unambiguous in the
//! tree (a string into a string, an integer into an integer type, a mapping into a struct, ...)
//! and refuses everything else — a number into a string field, a null key, any serde error. A
//! refusal is never reported: the caller then deserializes the text with serde-saphyr as
//! before, so every accepted file gets the value serde-saphyr gives and every rejected one the
//! message it gives (`tests` below hold both paths to the same result over the repo's YAML).

use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

use super::{Entry, Node, Value};

/// `T` from `tree`, or `None` when the fast path does not take this file; deterministic, so a
/// file it took once it takes again, with the same value (the parse cache relies on it).
pub(crate) fn typed_from_tree<T: DeserializeOwned>(tree: &Node) -> Option<T> {
    T::deserialize(NodeDe(tree)).ok()
}

/// Why the fast path declined (never shown: the caller falls back to the text).
#[derive(Debug)]
pub(crate) struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not taken by the tree deserializer")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Declined
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a>(&'a Node);

impl<'de, 'a> IntoDeserializer<'de, Declined> for NodeDe<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A mapping key: its text, unless the text does not say what the key was.
fn key_of(entry: &Entry) -> Result<&str, Declined> {
    match entry.key.as_str() {
        // A complex or null key is this text in the tree; serde-saphyr decides what it means.
        "<complex key>" | "null" | "~" | "" => Err(Declined),
        key => Ok(key),
    }
}

impl<'a> NodeDe<'a> {
    fn int(&self) -> Result<i128, Declined> {
        match self.0.value {
            Value::Int(i) => Ok(i.get()),
            _ => Err(Declined),
        }
    }

    fn entries(&self) -> Result<Vec<(&'a str, NodeDe<'a>)>, Declined> {
        match &self.0.value {
            Value::Map(entries) => entries
                .iter()
                .map(|e| Ok((key_of(e)?, NodeDe(&e.value))))
                .collect(),
            _ => Err(Declined),
        }
    }
}

macro_rules! integer {
    ($($method:ident $visit:ident $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
            let n = <$ty>::try_from(self.int()?).map_err(|_| Declined)?;
            v.$visit(n)
        }
    )*};
}

impl<'de, 'a> Deserializer<'de> for NodeDe<'a> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        match &self.0.value {
            Value::Bool(b) => v.visit_bool(*b),
            Value::Int(i) => match i64::try_from(i.get()) {
                Ok(n) => v.visit_i64(n),
                Err(_) => Err(Declined),
            },
            Value::Float(x) => v.visit_f64(*x),
            Value::Str(s) => v.visit_str(s),
            Value::Seq(_) => self.deserialize_seq(v),
            Value::Map(_) => self.deserialize_map(v),
            Value::Null => Err(Declined),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        match self.0.value {
            Value::Bool(b) => v.visit_bool(b),
            _ => Err(Declined),
        }
    }

    integer! {
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32, deserialize_i64 visit_i64 i64,
        deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        match self.0.value {
            Value::Float(x) => v.visit_f64(x),
            _ => Err(Declined),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        match &self.0.value {
            Value::Str(s) => v.visit_str(s),
            _ => Err(Declined),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        match self.0.value {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        match &self.0.value {
            Value::Seq(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(NodeDe));
                let value = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            _ => Err(Declined),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        let entries = self.entries()?;
        let mut map = MapDeserializer::new(
            entries
                .into_iter()
                .map(|(k, n)| (StrDeserializer::<Declined>::new(k), n)),
        );
        let value = v.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Declined> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Declined> {
        match &self.0.value {
            // Unit variants only (`state: running`); anything else is serde-saphyr's to read.
            Value::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            _ => Err(Declined),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Declined> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Declined> {
        v.visit_unit()
    }

    fn deserialize_i128<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_char<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _v: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _v: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::yaml::{parse_tree, parse_typed_text};
    use crate::spec::{JobFile, RepoConfig};

    /// Whether the fast path took `text` as `T`; panics when it took it with another value
    /// than serde-saphyr gives (or when serde-saphyr refuses what it took).
    fn same_as_text<T: DeserializeOwned + PartialEq + fmt::Debug>(text: &str) -> bool {
        let Ok(tree) = parse_tree(text) else {
            return false;
        };
        let Some(fast) = typed_from_tree::<T>(&tree) else {
            return false;
        };
        match parse_typed_text::<T>(text, &tree) {
            Ok(slow) => assert_eq!(fast, slow, "the two paths differ on:\n{text}"),
            Err(p) => panic!("taken from the tree, refused from the text ({p:?}):\n{text}"),
        }
        true
    }

    #[test]
    fn every_example_is_taken_from_the_tree_with_the_value_of_the_text() {
        let mut files = Vec::new();
        crate::load::yaml::yaml_files_under(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"),
            &mut files,
        );
        let (mut jobs, mut configs) = (0, 0);
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            if file.file_name().is_some_and(|n| n == "weir.yaml") {
                assert!(same_as_text::<RepoConfig>(&text), "{}", file.display());
                configs += 1;
            } else if file.components().any(|c| c.as_os_str() == "jobs") {
                assert!(same_as_text::<JobFile>(&text), "{}", file.display());
                jobs += 1;
            }
        }
        assert!(
            jobs >= 5 && configs >= 4,
            "{jobs} job files, {configs} configs"
        );
    }

    const JOB: &str = "apiVersion: weir/v1
kind: FlinkJob
metadata:
  name: orders
  labels:
    team: LABEL
spec:
  cluster: main
  parallelism: PARALLELISM
  jar:
    path: artifacts/job.jar
    args: [ARG]
  flinkConfiguration:
    some.option: CONFIG
  restartNonce: NONCE
";

    /// Scalars of every YAML flavour in every kind of field: whatever the fast path takes, it
    /// takes with serde-saphyr's value; and the common ones it does take.
    #[test]
    fn scalars_of_every_kind_read_the_same_from_the_tree_and_the_text() {
        let scalars = [
            "x",
            "\"x\"",
            "'x'",
            "0",
            "\"0\"",
            "-3",
            "0x1F",
            "0o17",
            "010",
            "1_000",
            "1.5",
            "1e3",
            ".inf",
            "-.inf",
            "true",
            "false",
            "yes",
            "no",
            "on",
            "~",
            "null",
            "\"\"",
            "''",
            "!!str 5",
            "!!int \"5\"",
            "4294967296",
            "99999999999999999999",
            "[1]",
            "{a: 1}",
            "\"multi\\nline\"",
            "|\n      block",
            ">-\n      folded",
            "2024-01-01",
            "1:30",
        ];
        let mut taken = 0;
        for field in ["LABEL", "PARALLELISM", "ARG", "CONFIG", "NONCE"] {
            for scalar in scalars {
                let mut text = JOB.to_string();
                for other in ["LABEL", "ARG", "CONFIG"] {
                    text = text.replace(other, if other == field { scalar } else { "v" });
                }
                for other in ["PARALLELISM", "NONCE"] {
                    text = text.replace(other, if other == field { scalar } else { "2" });
                }
                taken += usize::from(same_as_text::<JobFile>(&text));
            }
        }
        assert!(taken >= 40, "only {taken} variants taken from the tree");
        for common in ["x", "\"0\""] {
            assert!(same_as_text::<JobFile>(
                &JOB.replace("LABEL", common)
                    .replace("ARG", "a")
                    .replace("CONFIG", "10s")
                    .replace("PARALLELISM", "2")
                    .replace("NONCE", "0")
            ));
        }
    }

    #[test]
    fn anchors_merges_and_odd_keys_read_the_same_from_the_tree_and_the_text() {
        let texts = [
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec:\n  parallelism: 1\n  cluster: &c main\n  jar: {path: j.jar, args: [*c]}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec:\n  parallelism: 1\n  cluster: main\n  jar: &j {path: j.jar}\n  flinkConfiguration: {<<: {a: 1}, b: 2}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a, labels: {1: x, true: y, ~: z, 1.5: w}}\nspec: {parallelism: 1, cluster: main, jar: {path: j.jar}}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec: {parallelism: 1, cluster: main, jar: {path: j.jar}, state: suspended, upgradeMode: last-state}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec: {parallelism: 1, cluster: main, jar: {path: j.jar}, state: {running: 1}}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec: {parallelism: 1, cluster: main, jar: {path: j.jar}, unknown: 1}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec: {parallelism: 1, cluster: main, cluster: other, jar: {path: j.jar}}\n",
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata: {name: a}\nspec: {parallelism: 1, cluster: main, sql: 'SELECT 1', savepoint: {retain: {count: 3}}}\n",
        ];
        for text in texts {
            same_as_text::<JobFile>(text);
        }
        assert!(same_as_text::<JobFile>(texts[0]), "aliases are taken");
    }
}
