//! Job dependencies on real Flink 2.3 and 1.20: a UDF jar from the repo (`path:`), a table
//! connector of our own (found through `META-INF/services`) from a Maven repository served by a
//! local HTTP server, a checksum mismatch refused with nothing touched, a dependency change
//! planned as a redeploy that names it; every repo here has no `sqlRunner`, so the runner built
//! into weir runs the SQL. And the embedded runner jars are what the sources build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::harness::*;

/// The test's UDF and connector jars, compiled against the cluster's Flink version by
/// `scripts/build-java.sh` (a no-op when up to date).
fn dependency_jars(base: &str) -> PathBuf {
    let version = get(&format!("{base}/config"))["flink-version"]
        .as_str()
        .expect("flink-version")
        .to_string();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dependency-jars")
        .join(&version);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(root.join("scripts/build-java.sh"))
        .arg(&version)
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/build-java.sh");
    assert!(status.success(), "scripts/build-java.sh {version} failed");
    out
}

/// A SQL job (`datagen`-like source `connector`, a UDF-free or UDF query, blackhole) with
/// `dependencies` (YAML list items, indented by 4).
fn sql_job_with(name: &str, connector: &str, select: &str, prelude: &str, deps: &str) -> String {
    format!(
        "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: {name}\nspec:\n  cluster: local\n  \
         parallelism: 1\n  upgradeMode: stateless\n  dependencies:\n{deps}  sql: |\n    {prelude}\
         CREATE TABLE src (s STRING) WITH ('connector' = '{connector}', 'rows-per-second' = '20');\n    \
         CREATE TABLE snk (s STRING) WITH ('connector' = 'blackhole');\n    \
         INSERT INTO snk SELECT {select} FROM src;\n"
    )
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The one running job of `name`, checked to keep running (records flowing through the
/// dependency's code on the TaskManager) without a restart or an exception.
fn assert_runs_cleanly(base: &str, name: &str) -> String {
    let running = running_named(base, name);
    assert_eq!(running.len(), 1, "{name}: {:?}", jobs_named(base, name));
    let id = running[0].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = get(&format!("{base}/jobs/{id}"));
        assert_eq!(job["state"], "RUNNING", "{job:#}");
        let written: u64 = job["vertices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["metrics"]["write-records"].as_u64().unwrap_or(0))
            .sum();
        if written > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no records flowed: {job:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let exceptions = get(&format!("{base}/jobs/{id}/exceptions"));
    assert_eq!(
        exceptions["exceptionHistory"]["entries"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{exceptions:#}"
    );
    id
}

fn udf_from_path_dependency(version: Version) {
    let cluster = cluster(version);
    let base = &cluster.url;
    let jars = dependency_jars(base);
    // No jars: weir.yaml has no `sqlRunner`, the embedded runner runs the SQL.
    let repo = Repo::new(&cluster.url, None);
    let cache = tempfile::tempdir().unwrap();
    let env = [("WEIR_CACHE", cache.path().to_str().unwrap())];
    std::fs::create_dir_all(repo.root.join("libs")).unwrap();
    std::fs::copy(
        jars.join("weir-test-udf.jar"),
        repo.root.join("libs/udfs.jar"),
    )
    .unwrap();
    let name = repo.unique("dep-udf");
    let file = format!("jobs/{name}.yaml");
    let prelude = "CREATE TEMPORARY FUNCTION shout AS 'dev.weir.testudf.Shout';\n    ";
    let deps = "    - path: libs/udfs.jar\n";
    repo.write(
        &file,
        &sql_job_with(&name, "datagen", "shout(s)", prelude, deps),
    );
    repo.commit("a SQL job calling a UDF from a dependency");
    let plan = repo
        .weir_env(&["plan", "--format", "json", "--detailed-exitcode"], &env)
        .code(2)
        .json();
    let create = change(&plan, &name);
    let (_, listed) = diff_of(create, "dependencies");
    let udf_sha = sha256_of(&repo.root.join("libs/udfs.jar"));
    assert_eq!(
        listed,
        format!("udfs.jar (sha256 {})", &udf_sha[..12]),
        "{create:#}"
    );
    let (_, jar) = diff_of(create, "jar");
    assert_eq!(jar, "weir-sql-runner.jar (built into weir)", "{create:#}");
    repo.weir_env(&["apply", "--auto-approve"], &env).ok();
    let first = assert_runs_cleanly(base, &name);

    // The bundle is content-addressed: one upload, named by its hash.
    let bundles: Vec<String> = get(&format!("{base}/jars"))["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .filter(|n| n.contains("-bundle-weir-sql-runner.jar"))
        .collect();
    assert!(!bundles.is_empty(), "no bundle uploaded");

    // A second dependency (the connector jar) is a redeploy whose diff names it.
    std::fs::copy(
        jars.join("weir-test-connector.jar"),
        repo.root.join("libs/connector.jar"),
    )
    .unwrap();
    let deps = "    - path: libs/udfs.jar\n    - path: libs/connector.jar\n";
    repo.write(
        &file,
        &sql_job_with(&name, "weir-test-seq", "shout(s)", prelude, deps),
    );
    repo.commit("add the connector");
    let plan = repo
        .weir_env(&["plan", "--format", "json", "--detailed-exitcode"], &env)
        .code(2)
        .json();
    let redeploy = change(&plan, &name);
    assert_eq!(redeploy["action"], "redeploy", "{redeploy:#}");
    let (before, after) = diff_of(redeploy, "dependencies");
    let conn_sha = sha256_of(&repo.root.join("libs/connector.jar"));
    assert_eq!(before, format!("udfs.jar (sha256 {})", &udf_sha[..12]));
    assert_eq!(
        after,
        format!(
            "udfs.jar (sha256 {})\nconnector.jar (sha256 {})",
            &udf_sha[..12],
            &conn_sha[..12]
        )
    );
    repo.weir_env(&["apply", "--auto-approve"], &env).ok();
    let second = assert_runs_cleanly(base, &name);
    assert_ne!(first, second);
}

#[test]
fn udf_from_path_dependency_v2() {
    udf_from_path_dependency(Version::V2);
}

#[test]
fn udf_from_path_dependency_v1_20() {
    udf_from_path_dependency(Version::V1_20);
}

/// `python3 -m http.server` over `dir`, stopped when dropped.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the Maven repository did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        HttpServer { child, url }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connector_from_maven(version: Version) {
    let cluster = cluster(version);
    let base = &cluster.url;
    let jars = dependency_jars(base);
    // A Maven repository: the connector with a .sha1 file only (as many repositories have).
    let maven = tempfile::tempdir().unwrap();
    let dir = maven.path().join("dev/weir/weir-test-connector/1.0");
    std::fs::create_dir_all(&dir).unwrap();
    let jar = dir.join("weir-test-connector-1.0.jar");
    std::fs::copy(jars.join("weir-test-connector.jar"), &jar).unwrap();
    let sha1 = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(
        std::fs::read(&jar).unwrap(),
    ));
    std::fs::write(dir.join("weir-test-connector-1.0.jar.sha1"), &sha1).unwrap();
    let server = HttpServer::start(maven.path());

    let repo = Repo::new(&cluster.url, None);
    let cache = tempfile::tempdir().unwrap();
    let env = [("WEIR_CACHE", cache.path().to_str().unwrap())];
    let config = std::fs::read_to_string(repo.root.join("weir.yaml")).unwrap();
    repo.write(
        "weir.yaml",
        &format!(
            "{config}mavenRepositories:\n  - name: local\n    url: {}/\n",
            server.url
        ),
    );
    let name = repo.unique("dep-maven");
    let file = format!("jobs/{name}.yaml");
    let deps = "    - maven: dev.weir:weir-test-connector:1.0\n";
    repo.write(&file, &sql_job_with(&name, "weir-test-seq", "s", "", deps));
    repo.commit("a SQL job with a connector from Maven");
    repo.weir_env(&["apply", "--auto-approve"], &env).ok();
    let id = assert_runs_cleanly(base, &name);
    // Verified and cached by content.
    let cached = cache.path().join("artifacts/sha256").join(sha256_of(&jar));
    assert!(cached.is_file(), "{} is not cached", cached.display());

    // A pin that does not match: refused, with the entry's file:line:col; nothing touched.
    let wrong = "0".repeat(64);
    let deps = format!("    - maven: dev.weir:weir-test-connector:1.0\n      sha256: '{wrong}'\n");
    repo.write(&file, &sql_job_with(&name, "weir-test-seq", "s", "", &deps));
    repo.commit("a wrong pin");
    let refused = repo.weir_env(&["apply", "--auto-approve"], &env);
    assert_ne!(refused.code, 0, "{}", refused.all());
    let text = refused.all();
    assert!(text.contains(&format!("{file}:10:7")), "{text}");
    assert!(text.contains(&format!("expected {wrong}")), "{text}");
    assert_eq!(running_named(base, &name), vec![id.clone()], "untouched");
    assert_eq!(jobs_named(base, &name).len(), 1, "nothing else submitted");

    // An unknown coordinate and an artifact that is not a jar: plan errors at their entries.
    let page = maven.path().join("dev/weir/not-a-jar/1.0");
    std::fs::create_dir_all(&page).unwrap();
    std::fs::write(page.join("not-a-jar-1.0.jar"), "<html>moved</html>").unwrap();
    std::fs::write(
        page.join("not-a-jar-1.0.jar.sha256"),
        hex::encode(Sha256::digest("<html>moved</html>")),
    )
    .unwrap();
    for (coordinate, needle) in [
        (
            "dev.weir:missing:1.0",
            "no repository in `mavenRepositories` has dev.weir:missing:1.0 (tried `local`)",
        ),
        ("dev.weir:not-a-jar:1.0", "not-a-jar-1.0.jar is not a jar"),
    ] {
        let other = repo.unique("dep-bad");
        let other_file = format!("jobs/{other}.yaml");
        repo.write(
            &other_file,
            &sql_job_with(
                &other,
                "datagen",
                "s",
                "",
                &format!("    - maven: {coordinate}\n"),
            ),
        );
        repo.commit("a bad dependency");
        let plan = repo.weir_env(&["plan"], &env);
        assert_ne!(plan.code, 0, "{}", plan.all());
        let text = plan.all();
        assert!(text.contains(&format!("{other_file}:10:7: ")), "{text}");
        assert!(text.contains(needle), "{text}");
        assert!(jobs_named(base, &other).is_empty());
        repo.remove(&other_file);
    }
    drop(server);
}

#[test]
fn connector_from_maven_v2() {
    connector_from_maven(Version::V2);
}

#[test]
fn connector_from_maven_v1_20() {
    connector_from_maven(Version::V1_20);
}

/// The SQL runner jars built into weir are exactly what `scripts/build-embedded-runner.sh`
/// builds from java/sql-runner (needs Java 17 and the Flink libraries, like every test here).
#[test]
fn embedded_runner_matches_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(root.join("scripts/build-embedded-runner.sh"))
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/build-embedded-runner.sh");
    assert!(status.success());
    for jar in ["weir-sql-runner-flink1.jar", "weir-sql-runner-flink2.jar"] {
        let built = std::fs::read(out.path().join(jar)).unwrap();
        let embedded = std::fs::read(root.join("assets/sql-runner").join(jar)).unwrap();
        assert!(
            built == embedded,
            "assets/sql-runner/{jar} is stale: run scripts/build-embedded-runner.sh and commit"
        );
    }
}
