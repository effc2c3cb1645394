//! JSON Schemas of the repo format, generated from the `spec` types.
//!
//! The committed copies in `schemas/` (for editors: `# yaml-language-server: $schema=...`) are
//! checked by a test; run `WEIR_UPDATE_SCHEMAS=1 cargo test schema` to refresh them.

use std::sync::OnceLock;

use crate::spec::{JobFile, RepoConfig};

/// JSON Schema of `weir.yaml`.
pub fn repo_config_schema() -> serde_json::Value {
    cached_repo_config_schema().clone()
}

/// JSON Schema of a job file (`jobs/**/*.yaml`).
pub fn job_file_schema() -> serde_json::Value {
    cached_job_file_schema().clone()
}

pub(crate) fn cached_repo_config_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(RepoConfig).to_value())
}

pub(crate) fn cached_job_file_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(JobFile).to_value())
}

/// The text of a schema file: pretty-printed JSON with a trailing newline.
pub fn schema_file_text(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schemas_are_up_to_date() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("WEIR_UPDATE_SCHEMAS").is_some_and(|v| !v.is_empty());
        let mut stale = Vec::new();
        for (name, schema) in [
            ("weir.schema.json", repo_config_schema()),
            ("flinkjob.schema.json", job_file_schema()),
        ] {
            let path = dir.join(name);
            let expected = schema_file_text(&schema);
            let actual = std::fs::read_to_string(&path).unwrap_or_default();
            if actual == expected {
                continue;
            }
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &expected).unwrap();
            } else {
                stale.push(format!("schemas/{name}"));
            }
        }
        assert!(
            stale.is_empty(),
            "{} out of date with the types in src/spec.rs; run `WEIR_UPDATE_SCHEMAS=1 cargo test \
             schema` to refresh",
            stale.join(", ")
        );
    }

    #[test]
    fn schemas_describe_the_format() {
        let repo = repo_config_schema();
        assert_eq!(repo["title"], "RepoConfig");
        assert_eq!(repo["required"], serde_json::json!(["clusters"]));
        let job = job_file_schema();
        assert_eq!(job["title"], "JobFile");
        assert_eq!(
            job["$defs"]["ApiVersion"]["enum"],
            serde_json::json!(["weir/v1"])
        );
        assert_eq!(job["$defs"]["JobSpec"]["additionalProperties"], false);
    }
}
