//! A job's program: a jar (in the repo, hashed; or at a URL, with its declared hash) or SQL
//! (inline or from a file, run by the SQL runner jar).

use crate::desired::{EMBEDDED_RUNNER_ID, JarLocation, JarRef, Program};
use crate::git::normalize_repo_path;
use crate::spec::DEFAULT_SQL_RUNNER_CLASS;
use crate::spec::JobSpec;
use crate::text::error_chain;

use super::checker::Checker;
use super::checks::{check_url, is_sha256, read_failure};
use super::yaml::{Node, Pos, Problem, Seg, path};
use super::{MAX_SQL_BYTES, REPO_CONFIG_FILE, Runner};

impl Checker<'_> {
    /// Exactly one of `jar`, `sql`, `sqlFile`, resolved into a [`Program`].
    pub(super) fn resolve_program(
        &mut self,
        tree: &Node,
        spec: &JobSpec,
        runner: &Runner,
        problems: &mut Vec<Problem>,
    ) -> Option<Program> {
        if !exactly_one_program(tree, spec, problems) {
            return None;
        }

        if let Some(jar) = &spec.jar {
            let jar_ref = self.resolve_jar(
                tree,
                JarFields {
                    base: path(&["spec", "jar"]),
                    path_key: "path",
                    path: jar.path.as_deref(),
                    url: jar.url.as_deref(),
                    sha256: jar.sha256.as_deref(),
                },
                problems,
            );
            check_entry_class(tree, &["spec", "jar"], jar.entry_class.as_deref(), problems);
            return Some(Program::Jar {
                jar: jar_ref?,
                entry_class: jar.entry_class.clone(),
                args: jar.args.iter().map(|a| a.as_str().into()).collect(),
            });
        }

        let (field, script, source_file) = if let Some(sql) = &spec.sql {
            let p = path(&["spec", "sql"]);
            if sql.trim().is_empty() {
                problems.push(Problem::new(tree.value_pos(&p), p, "must not be empty"));
                return None;
            }
            ("sql", sql.clone(), None)
        } else {
            let raw = spec.sql_file.as_deref().unwrap_or_default();
            let (script, file) = self.read_sql_file(tree, raw, problems)?;
            ("sqlFile", script, Some(file))
        };

        let p = path(&["spec", field]);
        match runner {
            Runner::Ready { jar, class } => Some(Program::Sql {
                script,
                source_file,
                runner: jar.clone(),
                runner_class: class.clone(),
            }),
            Runner::Unknown => None,
            // No `sqlRunner`: the runner built into weir, chosen per cluster when staged.
            Runner::NotConfigured => Some(Program::Sql {
                script,
                source_file,
                runner: JarRef {
                    location: JarLocation::Embedded,
                    sha256: EMBEDDED_RUNNER_ID.to_string(),
                },
                runner_class: DEFAULT_SQL_RUNNER_CLASS.to_string(),
            }),
            Runner::Invalid => {
                problems.push(Problem::new(
                    tree.key_pos(&p),
                    p,
                    format!(
                        "the `sqlRunner` in {REPO_CONFIG_FILE} is invalid (see its diagnostics)"
                    ),
                ));
                None
            }
        }
    }

    /// Read `spec.sqlFile`: a repo-relative, UTF-8, non-empty file. Returns the script and the
    /// normalized path.
    fn read_sql_file(
        &mut self,
        tree: &Node,
        raw: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<(String, String)> {
        let p = path(&["spec", "sqlFile"]);
        let pos = tree.value_pos(&p);
        let file = repo_path(raw, pos, &p, problems)?;
        let bytes = match self.read_tracked(&file, MAX_SQL_BYTES) {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = error_chain(&read_failure(e, &file, "SQL files"));
                problems.push(Problem::new(pos, p, message));
                return None;
            }
        };
        let script = match String::from_utf8(bytes) {
            Ok(script) => script,
            Err(e) => {
                let at = Pos::of_byte_offset(e.as_bytes(), e.utf8_error().valid_up_to());
                problems.push(Problem::new(
                    pos,
                    p,
                    format!(
                        "`{file}` is not valid UTF-8 (line {}, column {})",
                        at.line, at.column
                    ),
                ));
                return None;
            }
        };
        if script.trim().is_empty() {
            problems.push(Problem::new(pos, p, format!("`{file}` is empty")));
            return None;
        }
        Some((script, file))
    }

    /// A jar given by repo path (hashed from its bytes) or by URL (with its declared SHA-256).
    pub(super) fn resolve_jar(
        &mut self,
        tree: &Node,
        f: JarFields<'_>,
        problems: &mut Vec<Problem>,
    ) -> Option<JarRef> {
        let at = |key: &str| {
            let mut p = f.base.clone();
            p.push(Seg::Key(key.to_string()));
            p
        };
        let path_key = f.path_key;
        let sha_path = at("sha256");
        let declared = match f.sha256 {
            Some(s) if is_sha256(s) => Some(s.to_ascii_lowercase()),
            Some(s) => {
                problems.push(Problem::new(
                    tree.value_pos(&sha_path),
                    sha_path.clone(),
                    format!("must be 64 hexadecimal characters (a SHA-256), found `{s}`"),
                ));
                return None;
            }
            None => None,
        };
        match (f.path, f.url) {
            (Some(_), Some(_)) => {
                let p = at("url");
                problems.push(Problem::new(
                    tree.key_pos(&p),
                    f.base.clone(),
                    format!("set exactly one of `{path_key}` or `url`, not both"),
                ));
                None
            }
            (None, None) => {
                problems.push(Problem::new(
                    tree.key_pos(&f.base),
                    f.base.clone(),
                    format!("one of `{path_key}` (a jar in the repo) or `url` is required"),
                ));
                None
            }
            (Some(raw), None) => {
                let p = at(path_key);
                let pos = tree.value_pos(&p);
                let file = repo_path(raw, pos, &p, problems)?;
                let sha256 = match self.hash_jar(&file) {
                    Ok(sha) => sha,
                    Err(failure) => {
                        problems.push(Problem::new(pos, p, error_chain(&failure)));
                        return None;
                    }
                };
                if let Some(declared) = declared
                    && declared != sha256
                {
                    problems.push(Problem::new(
                        tree.value_pos(&sha_path),
                        sha_path,
                        format!(
                            "does not match `{file}`, whose SHA-256 is {sha256} (remove \
                                 `sha256` or update it)"
                        ),
                    ));
                    return None;
                }
                Some(JarRef {
                    location: JarLocation::Repo { path: file },
                    sha256,
                })
            }
            (None, Some(raw)) => {
                let p = at("url");
                if let Err(e) = check_url(raw, &["http", "https", "file"]) {
                    problems.push(Problem::new(tree.value_pos(&p), p, error_chain(&e)));
                    return None;
                }
                let Some(sha256) = declared else {
                    problems.push(Problem::new(
                        tree.key_pos(&p),
                        sha_path,
                        "required with `url`: the SHA-256 (64 hexadecimal characters) the \
                         downloaded jar must match",
                    ));
                    return None;
                };
                Some(JarRef {
                    location: JarLocation::Url {
                        url: raw.to_string(),
                    },
                    sha256,
                })
            }
        }
    }
}

/// The fields of a jar reference (`spec.jar` or `sqlRunner`).
pub(super) struct JarFields<'a> {
    pub(super) base: Vec<Seg>,
    /// Name of the repo-path field: `path` for jobs, `jar` for the SQL runner.
    pub(super) path_key: &'static str,
    pub(super) path: Option<&'a str>,
    pub(super) url: Option<&'a str>,
    pub(super) sha256: Option<&'a str>,
}

pub(super) fn check_entry_class(
    tree: &Node,
    base: &[&str],
    class: Option<&str>,
    problems: &mut Vec<Problem>,
) {
    if let Some(class) = class
        && (class.trim().is_empty() || class.chars().any(char::is_whitespace))
    {
        let mut p = path(base);
        p.push(Seg::Key("entryClass".into()));
        problems.push(Problem::new(
            tree.value_pos(&p),
            p,
            format!("`{class}` is not a valid class name"),
        ));
    }
}

/// `raw` as a path inside the repo, or a problem at `pos`.
fn repo_path(raw: &str, pos: Pos, p: &[Seg], problems: &mut Vec<Problem>) -> Option<String> {
    match normalize_repo_path(raw) {
        Ok(file) => Some(file),
        Err(why) => {
            problems.push(Problem::new(
                pos,
                p.to_vec(),
                format!("invalid path `{raw}`: {why}"),
            ));
            None
        }
    }
}

/// Whether exactly one of `jar`, `sql` and `sqlFile` is set; a problem for each extra one or
/// for none.
fn exactly_one_program(tree: &Node, spec: &JobSpec, problems: &mut Vec<Problem>) -> bool {
    let set: Vec<&str> = [
        ("jar", spec.jar.is_some()),
        ("sql", spec.sql.is_some()),
        ("sqlFile", spec.sql_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    match set.as_slice() {
        [] => {
            let p = path(&["spec"]);
            problems.push(Problem::new(
                tree.key_pos(&p),
                p,
                "one of `jar`, `sql` or `sqlFile` is required",
            ));
            false
        }
        [_] => true,
        [first, rest @ ..] => {
            for other in rest {
                let p = path(&["spec", other]);
                problems.push(Problem::new(
                    tree.key_pos(&p),
                    p,
                    format!(
                        "`{first}` and `{other}` are mutually exclusive; set exactly one of \
                         `jar`, `sql` or `sqlFile`"
                    ),
                ));
            }
            false
        }
    }
}
