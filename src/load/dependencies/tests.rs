use sha2::{Digest, Sha256};

use crate::desired::{Dependency, DependencySource};
use crate::git::MemoryFiles;
use crate::load::{LoadOutcome, load_from};

const CONFIG: &str = "\
clusters:
  prod: {url: 'http://flink:8081'}
mavenRepositories:
  - name: internal
    url: https://maven.example.com/releases
    usernameFromEnv: MAVEN_USER
    passwordFromEnv: MAVEN_PASSWORD
";

fn job(dependencies: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: orders\nspec:\n  cluster: prod\n  \
         parallelism: 1\n  sql: SELECT 1\n  dependencies:\n{dependencies}"
    )
}

fn load(config: &str, dependencies: &str) -> LoadOutcome {
    load_from(
        &MemoryFiles::new()
            .with("weir.yaml", config)
            .with("libs/udfs.jar", "udf-bytes")
            .with("jobs/a.yaml", job(dependencies)),
    )
}

fn rendered(o: &LoadOutcome) -> Vec<String> {
    o.diagnostics.iter().map(ToString::to_string).collect()
}

fn dependencies(o: &LoadOutcome) -> Vec<Dependency> {
    assert_eq!(rendered(o), Vec::<String>::new());
    o.desired.as_ref().unwrap().jobs[0].dependencies.clone()
}

#[test]
fn each_kind_resolves_with_its_origin() {
    let url_sha = "ab".repeat(32);
    let o = load(
        CONFIG,
        &format!(
            "    - path: libs/udfs.jar\n    - url: https://x.example.com/c.jar?sig=1\n      sha256: {url_sha}\n    \
             - maven: org.example:flink-sql-connector-foo:1.2.3\n    - maven: org.example:bar:2.0:tests\n      \
             sha256: {}\n",
            "CD".repeat(32)
        ),
    );
    let deps = dependencies(&o);
    assert_eq!(deps.len(), 4);
    assert_eq!(
        deps[0].source,
        DependencySource::Repo {
            path: "libs/udfs.jar".into()
        }
    );
    assert_eq!(
        deps[0].sha256.as_deref(),
        Some(hex::encode(Sha256::digest(b"udf-bytes")).as_str())
    );
    assert_eq!(deps[0].origin, "jobs/a.yaml:10:7");
    assert_eq!(deps[1].file_name(), "c.jar");
    assert_eq!(deps[1].origin, "jobs/a.yaml:11:7");
    assert_eq!(deps[2].file_name(), "flink-sql-connector-foo-1.2.3.jar");
    assert_eq!(deps[2].sha256, None);
    assert_eq!(deps[2].label(), "org.example:flink-sql-connector-foo:1.2.3");
    let DependencySource::Maven { repositories, .. } = &deps[2].source else {
        panic!("{:?}", deps[2]);
    };
    assert_eq!(repositories[0].name, "internal");
    assert_eq!(deps[3].file_name(), "bar-2.0-tests.jar");
    assert_eq!(deps[3].sha256, Some("cd".repeat(32)));
    assert_eq!(
        deps[3].label(),
        "org.example:bar:2.0:tests (sha256 cdcdcdcdcdcd)"
    );
}

#[test]
fn bad_entries_name_file_line_and_column() {
    let o = load(
        CONFIG,
        "    - path: libs/missing.jar\n    - url: https://x.example.com/c.jar\n    - maven: org.example:only-two\n    \
         - {path: libs/udfs.jar, maven: 'a:b:1'}\n    - maven: 'a:b:1'\n      sha256: nope\n    \
         - maven: '../evil:b:1'\n",
    );
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:10:13: spec.dependencies[0].path: `libs/missing.jar` does not exist in in-memory repo",
            "jobs/a.yaml:11:7: spec.dependencies[1].sha256: required with `url`: the SHA-256 (64 hexadecimal characters) the downloaded jar must match",
            "jobs/a.yaml:12:14: spec.dependencies[2].maven: `org.example:only-two` is not a Maven coordinate: expected group:artifact:version[:classifier]",
            "jobs/a.yaml:13:7: spec.dependencies[3]: set exactly one of `path` (a jar in the repo), `url` (with `sha256`) or `maven` (group:artifact:version[:classifier])",
            "jobs/a.yaml:15:15: spec.dependencies[4].sha256: must be 64 hexadecimal characters (a SHA-256), found `nope`",
            "jobs/a.yaml:16:14: spec.dependencies[5].maven: the group of `../evil:b:1` may contain only letters, digits, '.', '-', '_' and '+'",
        ]
    );
    assert!(o.desired.unwrap().jobs.is_empty());
}

#[test]
fn maven_needs_a_repository_and_names_are_unique() {
    let o = load(
        "clusters:\n  prod: {url: 'http://flink:8081'}\n",
        "    - maven: org.example:foo:1.0\n",
    );
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:10:7: spec.dependencies[0].maven: `maven` dependencies need `mavenRepositories` in weir.yaml (there is no default repository)"
        ]
    );
    let o = load(
        CONFIG,
        "    - path: libs/udfs.jar\n    - url: https://x.example.com/udfs.jar\n      sha256: \
         0000000000000000000000000000000000000000000000000000000000000000\n",
    );
    assert_eq!(
        rendered(&o),
        [
            "jobs/a.yaml:11:7: spec.dependencies[1]: another dependency of this job is also named `udfs.jar` (each is shipped as lib/udfs.jar)"
        ]
    );
}

#[test]
fn maven_repositories_are_checked() {
    let config = "clusters:\n  prod: {url: 'http://flink:8081'}\nmavenRepositories:\n  \
                  - {name: a, url: 'https://u:p@m.example.com/r'}\n  \
                  - {name: a, url: 'ftp://m.example.com/r', passwordFromEnv: 'not a var'}\n";
    let o = load(config, "    - path: libs/udfs.jar\n");
    let all = rendered(&o);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(
        all[0].starts_with("weir.yaml:4:20: mavenRepositories[0].url: "),
        "{all:#?}"
    );
    assert!(!all.iter().any(|d| d.contains("u:p@")), "{all:#?}");
    assert!(
        all[1].starts_with("weir.yaml:5:12: mavenRepositories[1].name: "),
        "{all:#?}"
    );
    assert!(
        all[2].starts_with("weir.yaml:5:20: mavenRepositories[1].url: "),
        "{all:#?}"
    );
    assert!(
        all[3].starts_with("weir.yaml:5:62: mavenRepositories[1].passwordFromEnv: "),
        "{all:#?}"
    );
}
