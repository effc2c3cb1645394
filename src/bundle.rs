//! Bundles: the jar weir uploads for a job with dependencies.
//!
//! Flink's `/jars/{id}/run` puts exactly one uploaded jar on a run's classpath and ignores
//! `pipeline.jars`, but its `PackagedProgram` extracts the nested `lib/*.jar` entries of that jar
//! and ships them with the job (they are on the classpath of `main()` on the JobManager and of the
//! tasks). So a bundle is the program jar (or the SQL runner) with one `lib/<name>.jar` entry per
//! dependency, and no classes or `META-INF/services` files are merged. Verified on Flink 1.20 and
//! 2.3 (tests/integration/dependencies.rs).
//!
//! The bytes are deterministic: the program jar's entries are copied as they are, in their order;
//! the dependencies follow in the order written, stored (jars are compressed already) with a fixed
//! timestamp. The same inputs make the same bundle, so its SHA-256 names it on the cluster and it
//! is uploaded once.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// The first bytes of every zip (and so jar) file that starts with an entry.
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{name} is not a jar (no zip header)")]
    NotAJar { name: String },
    #[error("{name} is not a readable jar")]
    Unreadable {
        name: String,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("the program jar already has an entry lib/{name}")]
    Clash { name: String },
    #[error("cannot write the bundle")]
    Write(#[source] zip::result::ZipError),
}

/// The SQL runner built into weir for Flink 1.x (built by `scripts/build-embedded-runner.sh`).
pub static EMBEDDED_SQL_RUNNER_FLINK1: &[u8] =
    include_bytes!("../assets/sql-runner/weir-sql-runner-flink1.jar");
/// The SQL runner built into weir for Flink 2.x.
pub static EMBEDDED_SQL_RUNNER_FLINK2: &[u8] =
    include_bytes!("../assets/sql-runner/weir-sql-runner-flink2.jar");

/// The embedded SQL runner for a cluster reporting `flink_version` (e.g. `1.20.5`): the 1.x build
/// for 1.x, else the 2.x build (newer majors are likelier to keep 2.x's API than 1.x's).
pub fn embedded_sql_runner(flink_version: &str) -> &'static [u8] {
    match flink_version.trim().split('.').next() {
        Some("1") => EMBEDDED_SQL_RUNNER_FLINK1,
        _ => EMBEDDED_SQL_RUNNER_FLINK2,
    }
}

/// Whether `bytes` start like a jar.
pub fn looks_like_jar(bytes: &[u8]) -> bool {
    bytes.starts_with(ZIP_MAGIC)
}

/// The program jar `program` (named `program_name` in errors) with `libs` (file name, bytes)
/// nested as `lib/<file name>`.
pub fn bundle(
    program_name: &str,
    program: &[u8],
    libs: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, BundleError> {
    if !looks_like_jar(program) {
        return Err(BundleError::NotAJar {
            name: program_name.to_string(),
        });
    }
    for (name, bytes) in libs {
        if !looks_like_jar(bytes) {
            return Err(BundleError::NotAJar { name: name.clone() });
        }
    }
    let unreadable = |source| BundleError::Unreadable {
        name: program_name.to_string(),
        source,
    };
    let mut base = ZipArchive::new(Cursor::new(program)).map_err(unreadable)?;
    let mut out = ZipWriter::new(Cursor::new(Vec::with_capacity(
        program.len() + libs.iter().map(|(_, b)| b.len()).sum::<usize>() + 4096,
    )));
    let mut has_lib_dir = false;
    for i in 0..base.len() {
        let entry = base.by_index_raw(i).map_err(unreadable)?;
        let name = entry.name().to_string();
        if let Some(lib) = name.strip_prefix("lib/")
            && libs.iter().any(|(n, _)| n == lib)
        {
            return Err(BundleError::Clash {
                name: lib.to_string(),
            });
        }
        has_lib_dir |= name == "lib/";
        out.raw_copy_file(entry).map_err(BundleError::Write)?;
    }
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    if !has_lib_dir && !libs.is_empty() {
        out.add_directory("lib/", options.unix_permissions(0o755))
            .map_err(BundleError::Write)?;
    }
    for (name, bytes) in libs {
        out.start_file(format!("lib/{name}"), options)
            .map_err(BundleError::Write)?;
        out.write_all(bytes)
            .map_err(|e| BundleError::Write(e.into()))?;
    }
    Ok(out.finish().map_err(BundleError::Write)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            w.start_file(
                *name,
                SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
            )
            .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        let z = ZipArchive::new(Cursor::new(bytes)).unwrap();
        z.file_names().map(str::to_string).collect::<Vec<_>>()
    }

    #[test]
    fn nests_dependencies_under_lib_in_order() {
        let program = jar(&[
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
            ("a/A.class", b"A"),
        ]);
        let udf = jar(&[("u/U.class", b"U")]);
        let conn = jar(&[("c/C.class", b"C")]);
        let out = bundle(
            "program.jar",
            &program,
            &[("udf.jar".into(), udf.clone()), ("conn.jar".into(), conn)],
        )
        .unwrap();
        let mut z = ZipArchive::new(Cursor::new(&out)).unwrap();
        let mut listed: Vec<String> = (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().to_string())
            .collect();
        assert_eq!(
            listed,
            [
                "META-INF/MANIFEST.MF",
                "a/A.class",
                "lib/",
                "lib/udf.jar",
                "lib/conn.jar"
            ]
        );
        let mut nested = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("lib/udf.jar").unwrap(), &mut nested).unwrap();
        assert_eq!(nested, udf);
        listed.clear();
    }

    #[test]
    fn same_inputs_same_bytes() {
        let program = jar(&[("a/A.class", b"A")]);
        let libs = vec![("udf.jar".to_string(), jar(&[("u/U.class", b"U")]))];
        let a = bundle("p.jar", &program, &libs).unwrap();
        // Later: a different wall clock must not change anything.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = bundle("p.jar", &program, &libs).unwrap();
        assert_eq!(a, b);
        let other = vec![("udf.jar".to_string(), jar(&[("u/U.class", b"V")]))];
        assert_ne!(a, bundle("p.jar", &program, &other).unwrap());
        assert_eq!(names(&a), ["a/A.class", "lib/", "lib/udf.jar"]);
    }

    #[test]
    fn embedded_runner_by_major_version() {
        assert!(std::ptr::eq(
            embedded_sql_runner("1.20.5"),
            EMBEDDED_SQL_RUNNER_FLINK1
        ));
        assert!(std::ptr::eq(
            embedded_sql_runner("2.3.0"),
            EMBEDDED_SQL_RUNNER_FLINK2
        ));
        assert!(std::ptr::eq(
            embedded_sql_runner("3.0.0"),
            EMBEDDED_SQL_RUNNER_FLINK2
        ));
        for jar in [EMBEDDED_SQL_RUNNER_FLINK1, EMBEDDED_SQL_RUNNER_FLINK2] {
            let z = ZipArchive::new(Cursor::new(jar)).unwrap();
            assert!(
                z.file_names()
                    .any(|n| n == "dev/weir/sqlrunner/SqlRunner.class")
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_jar() {
        let program = jar(&[("a/A.class", b"A")]);
        let e = bundle("p.jar", &program, &[("x.jar".into(), b"<html>".to_vec())]).unwrap_err();
        assert_eq!(e.to_string(), "x.jar is not a jar (no zip header)");
        let e = bundle("p.jar", b"nope", &[]).unwrap_err();
        assert_eq!(e.to_string(), "p.jar is not a jar (no zip header)");
        let clash = jar(&[("lib/x.jar", b"x")]);
        let e = bundle("p.jar", &clash, &[("x.jar".into(), program)]).unwrap_err();
        assert!(matches!(e, BundleError::Clash { .. }), "{e}");
    }
}
