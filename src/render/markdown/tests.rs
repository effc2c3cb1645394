//! The preview's summary, markers, escaping and splitter.

use std::collections::BTreeMap;

use super::*;
use crate::desired::{DesiredJob, Program};
use crate::observe::JobState;
use crate::plan::fixtures::*;
use crate::plan::{JobHistory, Plan};

/// A plan in which each of `n` running jobs is redeployed (its args changed), each with a diff
/// of `extra_args` more lines.
fn redeploys(n: usize, extra_args: usize) -> Plan {
    let mut jobs = Vec::new();
    let mut observed = Vec::new();
    let mut hist = BTreeMap::new();
    for i in 0..n {
        let old = job(&format!("job-{i:05}"));
        let current = running(&old, 1, JobState::Running);
        let mut new = old.clone();
        if let Program::Jar { args, .. } = &mut new.program {
            args[1] = format!("topic-{i}").into();
            for k in 0..extra_args {
                args.push(format!("--extra-{k}=value-{k}-with-some-padding-text").into());
            }
        }
        hist.insert(old.name.to_string(), history_for(&old, &current));
        jobs.push(new);
        observed.push(current);
    }
    run(&desired(jobs, false), &observation(observed), &hist, &[])
}

/// Checks that every code fence opened in `md` is closed, that no fence is open at the end, and
/// that `<details>` folds are balanced outside fences.
#[track_caller]
fn assert_balanced(md: &str) {
    let mut fence: Option<usize> = None;
    let mut details = 0i64;
    for line in md.lines() {
        let ticks = line.chars().take_while(|c| *c == '`').count();
        match fence {
            Some(open) => {
                if ticks >= open && line.trim_end().chars().all(|c| c == '`') {
                    fence = None;
                }
            }
            None => {
                if ticks >= 3 {
                    fence = Some(ticks);
                    continue;
                }
                details += line.matches("<details>").count() as i64;
                details -= line.matches("</details>").count() as i64;
                assert!(details >= 0, "</details> before <details> in:\n{md}");
            }
        }
    }
    assert!(fence.is_none(), "a code fence is left open");
    assert_eq!(details, 0, "unbalanced <details>");
}

#[test]
fn markers_round_trip() {
    assert_eq!(marker(1, 1), "<!-- weir-plan-preview -->\n");
    assert_eq!(marker(2, 3), "<!-- weir-plan-preview part 2/3 -->\n");
    assert_eq!(
        parse_marker("<!-- weir-plan-preview -->\nbody"),
        Some((1, 1))
    );
    assert_eq!(
        parse_marker("<!-- weir-plan-preview part 2/3 -->\r\nbody"),
        Some((2, 3))
    );
    assert_eq!(parse_marker("<!-- weir-plan-preview part 4/3 -->"), None);
    assert_eq!(parse_marker("hello\n<!-- weir-plan-preview -->"), None);
    assert_eq!(parse_marker("<!-- weir-plan-previews -->"), None);
}

#[test]
fn summary_qualifies_restarts_by_upgrade_mode() {
    let p = redeploys(2, 0);
    assert_eq!(
        summary_line(Some(&p), 0),
        "Plan: 0 to create, 2 to redeploy (savepoint), 0 to delete."
    );

    let mut mixed = p.clone();
    mixed.changes[1].upgrade_mode = UpgradeMode::Stateless;
    let mut c = mixed.changes[0].clone();
    c.action = Action::Rescale;
    c.upgrade_mode = UpgradeMode::LastState;
    mixed.changes.push(c);
    assert_eq!(
        summary_line(Some(&mixed), 2),
        "Plan: 0 to create, 2 to redeploy (1 savepoint, 1 stateless), \
         1 to rescale (last-state), 0 to delete. 2 invalid files."
    );
    assert_eq!(
        summary_line(None, 1),
        "Nothing was planned: `weir.yaml` could not be loaded. 1 invalid file."
    );
}

#[test]
fn no_changes() {
    let j = job("a");
    let obs = observation(vec![running(&j, 1, JobState::Running)]);
    let p = run(&desired(vec![j], false), &obs, &BTreeMap::new(), &[]);
    let md = Preview::new(Some(&p), &[]).to_markdown();
    assert!(md.starts_with("<!-- weir-plan-preview -->\n### weir plan for `c0ffee`\n"));
    assert!(md.contains("**Plan: 0 to create, 0 to redeploy, 0 to delete.**"));
    assert!(md.contains("No changes. The clusters match the repo."));
}

#[test]
fn diagnostics_are_listed_with_position_and_escaped() {
    let diagnostics = vec![
        Diagnostic::new(
            "jobs/a.yaml",
            7,
            3,
            Some("spec.parallelism".into()),
            "spec.parallelism: invalid type: string \"two\", expected u32",
        ),
        Diagnostic::new(
            "jobs/b.yaml",
            2,
            1,
            None,
            "unknown field `<!-- weir-plan-preview --><details>`\nsecond line",
        ),
        Diagnostic::new(
            "jobs/c.yaml",
            9,
            5,
            Some("spec.flinkConfiguration.\"s3.secret-key\"".into()),
            "spec.flinkConfiguration.\"s3.secret-key\": invalid value 'hunter2' here",
        ),
    ];
    let p = run(
        &desired(vec![job("ok")], false),
        &observation(vec![]),
        &BTreeMap::new(),
        &[
            "jobs/a.yaml".into(),
            "jobs/b.yaml".into(),
            "jobs/c.yaml".into(),
        ],
    );
    let md = Preview::new(Some(&p), &diagnostics).to_markdown();
    assert!(
        md.contains("> - `jobs/a.yaml:7:3`: spec.parallelism: invalid type"),
        "{md}"
    );
    assert!(md.contains("3 files are invalid (3 errors)"), "{md}");
    // The valid job is still planned.
    assert!(md.contains("#### `ok` — create"), "{md}");
    // Nothing from a file can open HTML or hide a second marker.
    assert_eq!(md.matches("<!--").count(), 1, "{md}");
    assert!(md.contains("&lt;details&gt;` second line"), "{md}");
    assert_balanced(&md);
    // A message about a secret-looking field loses its quoted values.
    assert!(!md.contains("hunter2"), "{md}");
    assert!(md.contains("invalid value '&lt;redacted&gt;' here"), "{md}");

    let none = Preview::new(None, &diagnostics[..1]).to_markdown();
    assert!(none.contains("Nothing was planned"), "{none}");
    assert!(none.contains("`jobs/a.yaml:7:3`"), "{none}");
}

#[test]
fn fences_outgrow_backticks_in_the_content() {
    let old = job("a");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    if let Program::Jar { args, .. } = &mut new.program {
        args.push("````not a fence".into());
    }
    let hist = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let md = Preview::new(Some(&p), &[]).to_markdown();
    assert!(md.contains("`````diff\n"), "{md}");
    assert_balanced(&md);
    assert_eq!(code("a`b"), "`` a`b ``");
    assert_eq!(code("plain"), "`plain`");
}

#[test]
fn a_short_preview_is_one_comment() {
    let p = redeploys(3, 0);
    let preview = Preview::new(Some(&p), &[]);
    let parts = preview.split(DEFAULT_LIMIT);
    assert_eq!(parts, vec![preview.to_markdown()]);
    assert_eq!(parse_marker(&parts[0]), Some((1, 1)));
}

#[track_caller]
fn check_parts(parts: &[String], limit: usize) {
    let n = parts.len();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            part.chars().count() <= limit,
            "part {} has {} characters, over {limit}",
            i + 1,
            part.chars().count()
        );
        assert_eq!(parse_marker(part), Some((i + 1, n)), "{part}");
        assert_eq!(part.matches("<!--").count(), 1);
        assert_balanced(part);
    }
    assert!(parts[0].contains("**Plan: "), "the summary is in part 1");
    for part in &parts[1..] {
        assert!(!part.contains("**Plan: "), "the summary is in part 1 only");
    }
}

#[test]
fn ten_thousand_jobs_split_between_sections() {
    let p = redeploys(10_000, 2);
    let preview = Preview::new(Some(&p), &[]);
    let whole = preview.to_markdown();
    assert!(whole.chars().count() > 10 * DEFAULT_LIMIT);
    let parts = preview.split(DEFAULT_LIMIT);
    check_parts(&parts, DEFAULT_LIMIT);
    assert!(parts.len() > 10, "{}", parts.len());
    assert!(parts[0].contains(&format!(
        "continues in the next {} comments",
        parts.len() - 1
    )));
    assert!(parts[1].contains(&format!("(part 2 of {}, continued)", parts.len())));
    // Every job is in exactly one part, whole (its diff fold closes in the same part), in order.
    let mut seen = 0;
    for part in &parts {
        for line in part.lines().filter(|l| l.starts_with("#### ")) {
            assert_eq!(line, format!("#### `job-{seen:05}` — redeploy (savepoint)"));
            seen += 1;
        }
    }
    assert_eq!(seen, 10_000);
    assert!(!parts.iter().any(|p| p.contains("cut short")));
}

#[test]
fn parts_are_filled_up_to_the_limit() {
    let p = redeploys(40, 0);
    let preview = Preview::new(Some(&p), &[]);
    let section = preview.sections[0].render().chars().count();
    for limit in [MIN_LIMIT, MIN_LIMIT + 1, 3_000, 4_567, 10_000] {
        let parts = preview.split(limit);
        check_parts(&parts, limit);
        // No part could have taken the next section too (greedy), allowing for the headers.
        for part in &parts[..parts.len() - 1] {
            assert!(
                part.chars().count() + section > limit - 200,
                "limit {limit}: a part of {} characters left room for another section of {section}",
                part.chars().count()
            );
        }
        let jobs: usize = parts.iter().map(|p| p.matches("\n#### ").count()).sum();
        assert_eq!(jobs, 40, "limit {limit}");
    }
    // An exact fit stays one comment; one character less splits.
    let len = preview.to_markdown().chars().count();
    assert_eq!(preview.split(len).len(), 1);
    assert!(preview.split(len - 1).len() > 1);
    // A limit below the minimum is raised to it.
    check_parts(&preview.split(10), MIN_LIMIT);
}

#[test]
fn a_huge_section_is_cut_with_a_note_never_inside_a_fence() {
    // One SQL job whose diff alone is far over the limit, between two small ones.
    let small = redeploys(2, 0);
    let old = sql_job("big");
    let current = running(&old, 1, JobState::Running);
    let mut new = old.clone();
    if let Program::Sql { script, .. } = &mut new.program {
        for i in 0..20_000 {
            script.push_str(&format!(
                "INSERT INTO sink{i} SELECT id FROM src; -- ``` {i}\n"
            ));
        }
    }
    let hist: BTreeMap<String, JobHistory> =
        [("big".to_string(), history_for(&old, &current))].into();
    let big = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let mut p = small.clone();
    p.changes.insert(1, big.changes[0].clone());
    let preview = Preview::new(Some(&p), &[]);
    for limit in [MIN_LIMIT, 10_000, DEFAULT_LIMIT] {
        let parts = preview.split(limit);
        check_parts(&parts, limit);
        let cut: Vec<&String> = parts.iter().filter(|p| p.contains("cut short")).collect();
        assert_eq!(cut.len(), 1, "limit {limit}");
        assert!(cut[0].contains("#### `big` — redeploy"), "limit {limit}");
        if limit >= 10_000 {
            assert!(cut[0].contains("… (cut)\n"), "{}", cut[0]);
            assert!(cut[0].contains("+INSERT INTO sink0 SELECT"), "{}", cut[0]);
        }
        let all = parts.concat();
        assert!(all.contains("#### `job-00000`") && all.contains("#### `job-00001`"));
    }
}

fn sql_job(name: &str) -> DesiredJob {
    let mut j = job(name);
    j.program = Program::Sql {
        script: "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen');\n".into(),
        source_file: None,
        runner: crate::desired::JarRef {
            location: crate::desired::JarLocation::Repo {
                path: "artifacts/weir-sql-runner.jar".into(),
            },
            sha256: "cd".repeat(32),
        },
        runner_class: "dev.weir.sqlrunner.SqlRunner".into(),
    };
    j
}

#[test]
fn long_alert_lists_continue_in_further_alerts() {
    let diagnostics: Vec<Diagnostic> = (0..1_000)
        .map(|i| {
            Diagnostic::new(
                format!("jobs/bad-{i:04}.yaml"),
                3,
                7,
                None,
                "spec: missing field `cluster`",
            )
        })
        .collect();
    let p = redeploys(5, 0);
    let preview = Preview::new(Some(&p), &diagnostics);
    let whole = preview.to_markdown();
    assert_eq!(whole.matches("> - `jobs/bad-").count(), 1_000);
    let parts = preview.split(MIN_LIMIT * 4);
    check_parts(&parts, MIN_LIMIT * 4);
    let listed: usize = parts
        .iter()
        .map(|p| p.matches("> - `jobs/bad-").count())
        .sum();
    assert_eq!(listed, 1_000, "every diagnostic is in some part");
    assert!(parts[0].contains("1000 files are invalid (1000 errors)"));
    assert!(parts[1].contains("(continued)"));
}

#[test]
fn written_parts_replace_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    for stale in ["comment-1.md", "comment-2.md", "comment-17.md"] {
        std::fs::write(dir.path().join(stale), "old").unwrap();
    }
    std::fs::write(dir.path().join("comment-notes.md"), "keep").unwrap();
    let written = write_parts(dir.path(), &["one".into()]).unwrap();
    assert_eq!(written, vec![dir.path().join("comment-1.md")]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["comment-1.md", "comment-notes.md"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("comment-1.md")).unwrap(),
        "one"
    );
}
