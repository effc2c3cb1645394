//! [`TextMap`]: the small text-to-text maps every job carries (`metadata.labels`, the rendered
//! `flinkConfiguration`), kept as one sorted vector.
//!
//! Why not `BTreeMap<String, String>`: a B-tree allocates a whole node (eleven keys and values,
//! 544 bytes) for its first entry, and a job's maps hold two or three entries; at 10,000 jobs the
//! two maps of every job were 11 MiB of the 35 MiB heap peak of `weir plan`. A sorted vector
//! holds the same entries in one allocation of their own size. Lookups are binary searches,
//! iteration is in key order, and the serialized form is the same JSON/YAML map a `BTreeMap`
//! gives (keys sorted), so stored records, plans and job fingerprints do not change.
//!
//! Keys and values are `CompactString`s: a text of up to 24 bytes (most labels, configuration
//! keys and values) lives inside its entry, so a map is one allocation instead of one per text.
//! The daemon keeps every job's maps between reconciles, and those small allocations, scattered
//! among freed ones, kept whole heap pages resident.

use std::collections::BTreeMap;
use std::fmt;

use compact_str::CompactString;
use litemap::LiteMap;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map of text keys to text values, sorted by key, one entry per key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TextMap(LiteMap<CompactString, CompactString>);

impl TextMap {
    pub const fn new() -> Self {
        TextMap(LiteMap::new())
    }

    /// The entries of `entries` in key order, a later entry for the same key replacing an earlier
    /// one (as with `BTreeMap`), in an allocation of exactly their size: a job's maps live as long
    /// as its definition, and the vector's growth would double them.
    fn from_vec(mut entries: Vec<(CompactString, CompactString)>) -> Self {
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // Reversed, a stable sort puts the last entry of a key first, which dedup keeps.
            entries.reverse();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, kept| later.0 == kept.0);
        }
        entries.shrink_to_fit();
        TextMap(LiteMap::from_sorted_store_unchecked(entries))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(CompactString::as_str)
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        self.0.insert(key.into(), value.into()).map(String::from)
    }

    pub fn clear(&mut self) {
        self.0.clear()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The entries in key order, values writable.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&str, &mut CompactString)> + ExactSizeIterator {
        self.0.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut CompactString> + ExactSizeIterator {
        self.iter_mut().map(|(_, v)| v)
    }
}

impl fmt::Debug for TextMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for TextMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(entries: I) -> Self {
        TextMap::from_vec(
            entries
                .into_iter()
                .map(|(k, v)| (CompactString::from(k), CompactString::from(v)))
                .collect(),
        )
    }
}

impl<const N: usize> From<[(String, String); N]> for TextMap {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<TextMap> for BTreeMap<String, String> {
    fn from(map: TextMap) -> Self {
        map.into_iter().collect()
    }
}

/// One entry as owned strings.
type OwnedEntry = fn((CompactString, CompactString)) -> (String, String);

impl IntoIterator for TextMap {
    type Item = (String, String);
    type IntoIter = std::iter::Map<std::vec::IntoIter<(CompactString, CompactString)>, OwnedEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_tuple_vec()
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
    }
}

impl std::ops::Index<&str> for TextMap {
    type Output = CompactString;

    /// Panics when `key` is absent, as `BTreeMap`'s index does.
    fn index(&self, key: &str) -> &CompactString {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("no entry for key {key:?}"))
    }
}

impl Serialize for TextMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for TextMap {
    /// A map, as `BTreeMap<String, String>` reads one (the same errors for anything else).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TextMapVisitor)
    }
}

struct TextMapVisitor;

impl<'de> Visitor<'de> for TextMapVisitor {
    type Value = TextMap;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<TextMap, A::Error> {
        let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
        while let Some(entry) = access.next_entry::<CompactString, CompactString>()? {
            entries.push(entry);
        }
        Ok(TextMap::from_vec(entries))
    }
}

impl schemars::JsonSchema for TextMap {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        <BTreeMap<String, String> as schemars::JsonSchema>::schema_name()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <BTreeMap<String, String> as schemars::JsonSchema>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn entries_are_sorted_by_key_and_a_later_entry_wins() {
        let map: TextMap = pairs(&[("b", "1"), ("a", "2"), ("b", "3"), ("c", "4")])
            .into_iter()
            .collect();
        let expected: BTreeMap<String, String> =
            pairs(&[("b", "1"), ("a", "2"), ("b", "3"), ("c", "4")])
                .into_iter()
                .collect();
        assert_eq!(BTreeMap::from(map.clone()), expected);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(map["b"], "3");
        assert_eq!(map.get("z"), None);
    }

    #[test]
    fn serializes_and_reads_back_as_a_btree_map_does() {
        let entries = pairs(&[("tier", "0"), ("team", "a\"b"), ("ü", "x")]);
        let ours: TextMap = entries.clone().into_iter().collect();
        let theirs: BTreeMap<String, String> = entries.into_iter().collect();
        let json = serde_json::to_string(&ours).unwrap();
        assert_eq!(json, serde_json::to_string(&theirs).unwrap());
        assert_eq!(serde_json::from_str::<TextMap>(&json).unwrap(), ours);
        // Duplicate keys in the input: the last one wins, as for BTreeMap.
        let dup = r#"{"b":"1","a":"2","b":"3"}"#;
        assert_eq!(
            BTreeMap::from(serde_json::from_str::<TextMap>(dup).unwrap()),
            serde_json::from_str::<BTreeMap<String, String>>(dup).unwrap()
        );
    }

    #[test]
    fn rejects_what_a_btree_map_rejects_with_the_same_message() {
        for bad in [r#"[["a","b"]]"#, r#""a""#, r#"{"a":1}"#] {
            let ours = serde_json::from_str::<TextMap>(bad)
                .unwrap_err()
                .to_string();
            let theirs = serde_json::from_str::<BTreeMap<String, String>>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs, "for {bad}");
        }
    }

    #[test]
    fn its_schema_is_the_schema_of_a_btree_map() {
        let ours = schemars::schema_for!(TextMap);
        let theirs = schemars::schema_for!(BTreeMap<String, String>);
        assert_eq!(ours, theirs);
    }

    /// Labels and configuration entries are short: they live in the map's one allocation.
    #[test]
    fn short_entries_are_kept_inline() {
        let map: TextMap = serde_json::from_str(r#"{"team":"payments","tier":"0"}"#).unwrap();
        let mut edited = map.clone();
        edited.insert("pipeline.max-parallelism".into(), "128".into());
        for (k, v) in edited.0.iter() {
            assert!(!k.is_heap_allocated() && !v.is_heap_allocated(), "{k}={v}");
        }
    }

    #[test]
    fn edits_keep_the_order() {
        let mut map = TextMap::new();
        map.insert("m".into(), "1".into());
        map.insert("a".into(), "2".into());
        assert_eq!(map.insert("m".into(), "3".into()), Some("1".into()));
        for v in map.values_mut() {
            v.push('!');
        }
        assert_eq!(format!("{map:?}"), r#"{"a": "2!", "m": "3!"}"#);
        assert_eq!(
            map.into_iter().collect::<Vec<_>>(),
            pairs(&[("a", "2!"), ("m", "3!")])
        );
    }
}
