//! A structural check of a YAML tree against the JSON Schema generated from the `spec` types.
//!
//! serde stops at the first error of a file; this walk reports every unknown field (with a
//! did-you-mean), every missing required field, every invalid enum value and every value of the
//! wrong shape (a list where a mapping belongs, null for a required value, `two` for an integer)
//! in one go. It only reports what serde-saphyr would certainly reject too; subtler scalar
//! problems are left to the typed deserialization that follows.

use serde_json::{Map, Value as Json};

use super::yaml::{Entry, Node, Problem, Seg, Value, unknown_field_message, unknown_value_message};

pub(crate) fn check(schema: &Json, node: &Node) -> Vec<Problem> {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let mut out = Vec::new();
    Checker { defs }.check(schema, node, &mut Vec::new(), None, &mut out);
    out
}

struct Checker<'s> {
    defs: &'s Map<String, Json>,
}

/// What a schema (after `$ref` and nullability) expects.
enum Expect<'s> {
    /// One of these strings (`enum`, `const`, `oneOf` of consts).
    Values(Vec<&'s str>),
    /// Any non-null scalar (an `anyOf` of scalar types, e.g. `ConfigValue`).
    AnyScalar,
    Object(&'s Json),
    Array(&'s Json),
    String,
    Integer(&'s str),
    Boolean,
    /// Anything else: not checked here.
    Unknown,
}

impl<'s> Checker<'s> {
    fn resolve(&self, mut schema: &'s Json) -> &'s Json {
        for _ in 0..32 {
            match schema.get("$ref").and_then(Json::as_str) {
                Some(r) => match r
                    .strip_prefix("#/$defs/")
                    .and_then(|name| self.defs.get(name))
                {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    /// The schema without its `null` alternative, and whether null is allowed.
    fn strip_null(&self, schema: &'s Json) -> (&'s Json, Option<&'s str>, bool) {
        let schema = self.resolve(schema);
        if let Some(alts) = schema.get("anyOf").and_then(Json::as_array) {
            let non_null: Vec<&Json> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Json::as_str) != Some("null"))
                .collect();
            if non_null.len() + 1 == alts.len() && non_null.len() == 1 {
                let (inner, ty, _) = self.strip_null(non_null[0]);
                return (inner, ty, true);
            }
        }
        match schema.get("type") {
            Some(Json::String(t)) => (schema, Some(t.as_str()), false),
            Some(Json::Array(types)) => {
                let nullable = types.iter().any(|t| t == "null");
                let non_null: Vec<&str> = types
                    .iter()
                    .filter_map(Json::as_str)
                    .filter(|t| *t != "null")
                    .collect();
                let ty = if non_null.len() == 1 {
                    Some(non_null[0])
                } else {
                    None
                };
                (schema, ty, nullable)
            }
            _ => (schema, None, false),
        }
    }

    fn expect(&self, schema: &'s Json, ty: Option<&'s str>) -> Expect<'s> {
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            return Expect::Values(values.iter().filter_map(Json::as_str).collect());
        }
        if let Some(alts) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Json::as_array)
        {
            let alts: Vec<&Json> = alts.iter().map(|a| self.resolve(a)).collect();
            let consts: Vec<&str> = alts
                .iter()
                .filter_map(|a| a.get("const").and_then(Json::as_str))
                .collect();
            if consts.len() == alts.len() {
                return Expect::Values(consts);
            }
            let scalar = |a: &&Json| {
                matches!(
                    a.get("type").and_then(Json::as_str),
                    Some("boolean" | "integer" | "number" | "string")
                )
            };
            if alts.iter().all(scalar) {
                return Expect::AnyScalar;
            }
            return Expect::Unknown;
        }
        if let Some(c) = schema.get("const").and_then(Json::as_str) {
            return Expect::Values(vec![c]);
        }
        match ty {
            Some("object") => Expect::Object(schema),
            Some("array") => Expect::Array(schema),
            Some("string") => Expect::String,
            Some("integer") => Expect::Integer(match schema.get("format").and_then(Json::as_str) {
                Some("uint32") => "u32",
                Some("uint64") => "u64",
                Some("int32") => "i32",
                Some("int64") => "i64",
                _ => "an integer",
            }),
            Some("boolean") => Expect::Boolean,
            _ => Expect::Unknown,
        }
    }

    fn check(
        &self,
        schema: &'s Json,
        node: &Node,
        path: &mut Vec<Seg>,
        key_pos: Option<super::yaml::Pos>,
        out: &mut Vec<Problem>,
    ) {
        let (schema, ty, nullable) = self.strip_null(schema);
        let expect = self.expect(schema, ty);
        let mut problem = |message: String| out.push(Problem::new(node.pos, path.clone(), message));
        let wrong = |what: &str| format!("expected {what}, found {}", node.value.describe());
        if let Value::Null = node.value {
            if !nullable && !matches!(expect, Expect::Unknown) {
                problem(wrong(&describe(&expect)));
            }
            return;
        }
        match expect {
            Expect::Values(values) => match node.value.scalar_text() {
                Some(v) if values.contains(&v.as_str()) => {}
                Some(v) => problem(unknown_value_message(&v, &values)),
                None => problem(wrong(&describe(&Expect::Values(values)))),
            },
            Expect::AnyScalar | Expect::String => {
                if node.value.is_collection() {
                    problem(wrong(&describe(&expect)));
                }
            }
            Expect::Integer(name) => match &node.value {
                Value::Int(i) => {
                    let i = i.get();
                    let ok = match name {
                        "u32" => u32::try_from(i).is_ok(),
                        "u64" => u64::try_from(i).is_ok(),
                        "i32" => i32::try_from(i).is_ok(),
                        "i64" => i64::try_from(i).is_ok(),
                        _ => true,
                    };
                    if !ok {
                        problem(format!("invalid value: integer `{i}`, expected {name}"));
                    }
                }
                // serde-saphyr would accept a quoted number; a string is not what the field takes.
                v @ (Value::Str(_) | Value::Bool(_) | Value::Float(_)) => {
                    problem(format!("invalid type: {}, expected {name}", v.describe()));
                }
                _ => problem(wrong(name)),
            },
            Expect::Boolean => match &node.value {
                Value::Bool(_) => {}
                v @ (Value::Str(_) | Value::Int(_) | Value::Float(_)) => {
                    problem(format!(
                        "invalid type: {}, expected a boolean",
                        v.describe()
                    ));
                }
                _ => problem(wrong("a boolean")),
            },
            Expect::Array(schema) => {
                let Value::Seq(items) = &node.value else {
                    problem(wrong("a list"));
                    return;
                };
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Seg::Index(i));
                        self.check(item_schema, item, path, Some(item.pos), out);
                        path.pop();
                    }
                }
            }
            Expect::Object(schema) => {
                let Value::Map(entries) = &node.value else {
                    problem(wrong("a mapping"));
                    return;
                };
                self.check_object(schema, node, entries, path, key_pos, out);
            }
            Expect::Unknown => {}
        }
    }

    /// The entries of a mapping against an object schema: known fields checked, unknown ones
    /// flagged (when the schema forbids them), missing required ones reported at the key.
    fn check_object(
        &self,
        schema: &'s Json,
        node: &Node,
        entries: &[Entry],
        path: &mut Vec<Seg>,
        key_pos: Option<super::yaml::Pos>,
        out: &mut Vec<Problem>,
    ) {
        let props = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        let names: Vec<&str> = props
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for e in entries {
            path.push(Seg::Key(e.key.to_string()));
            match (props.and_then(|p| p.get(e.key.as_str())), additional) {
                (Some(s), _) => self.check(s, &e.value, path, Some(e.key_pos), out),
                (None, Some(Json::Bool(false))) => out.push(Problem::new(
                    e.key_pos,
                    path.clone(),
                    unknown_field_message(&e.key, &names),
                )),
                (None, Some(s @ Json::Object(_))) => {
                    self.check(s, &e.value, path, Some(e.key_pos), out)
                }
                (None, _) => {}
            }
            path.pop();
        }
        let required = schema.get("required").and_then(Json::as_array);
        for r in required.into_iter().flatten().filter_map(Json::as_str) {
            if !entries.iter().any(|e| e.key == r) {
                let mut p = path.clone();
                p.push(Seg::Key(r.to_string()));
                out.push(Problem::new(
                    key_pos.unwrap_or(node.pos),
                    p,
                    "missing required field",
                ));
            }
        }
    }
}

fn describe(expect: &Expect<'_>) -> String {
    match expect {
        Expect::Values(v) if v.len() == 1 => format!("`{}`", v[0]),
        Expect::Values(v) => format!(
            "one of {}",
            v.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expect::AnyScalar => "a string, number or boolean".into(),
        Expect::Object(_) => "a mapping".into(),
        Expect::Array(_) => "a list".into(),
        Expect::String => "a string".into(),
        Expect::Integer(name) => (*name).into(),
        Expect::Boolean => "a boolean".into(),
        Expect::Unknown => "a value".into(),
    }
}
