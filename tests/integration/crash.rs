//! Safety invariant 3: an apply killed between any two steps is finished by the next `weir apply`,
//! with no second copy of the job and no forgotten savepoint.

use crate::harness::*;

const POINTS: &[&str] = &[
    "before:stop_with_savepoint",
    "sent:stop_with_savepoint",
    "after:stop_with_savepoint",
    "before:submit",
    "sent:submit",
    "after:submit",
    "before:await_running",
    "after:await_running",
];

#[test]
fn crash_between_every_pair_of_apply_steps_is_resumed() {
    let cluster = cluster(Version::V2);
    let repo = Repo::new(&cluster.url, Some(&cluster.jars));
    let base = &cluster.url;
    let name = repo.unique("crash");
    let file = format!("jobs/{name}.yaml");
    repo.write(&file, &jar_job(&name, 1, "t0", ""));
    repo.commit("job");
    repo.weir(&["apply", "--auto-approve"]).ok();
    let mut submitted = 1;

    for (i, point) in POINTS.iter().enumerate() {
        let before = running_named(base, &name);
        assert_eq!(before.len(), 1, "{point}: one running job before");
        repo.write(&file, &jar_job(&name, 1, &format!("t{}", i + 1), ""));
        repo.commit(point);
        let crashed = repo.weir_env(
            &["apply", "--auto-approve"],
            &[("WEIR_FAULT_CRASH_AT", point)],
        );
        assert_ne!(
            crashed.code,
            0,
            "{point}: the process was killed: {}",
            crashed.all()
        );
        assert!(
            crashed.stderr.contains(&format!("aborting at {point}")),
            "{point}: {}",
            crashed.stderr
        );

        let resumed = repo.weir(&["apply", "--auto-approve"]).ok();
        assert!(
            resumed.all().contains("interrupted apply"),
            "{point}: the resume is reported: {}",
            resumed.all()
        );
        submitted += 1;

        let all = jobs_named(base, &name);
        assert_eq!(
            all.len(),
            submitted,
            "{point}: exactly one new submission: {all:?}"
        );
        let running = running_named(base, &name);
        assert_eq!(
            running.len(),
            1,
            "{point}: one running job after resume: {all:?}"
        );
        assert_ne!(running, before, "{point}: the new definition runs");
        let (path, is_savepoint) = restored_from(base, &running[0]).expect("restored");
        assert!(
            is_savepoint,
            "{point}: restored from the savepoint taken when stopping ({path})"
        );
        repo.weir(&["plan", "--detailed-exitcode"]).code(0);

        // The savepoint is on record.
        let status = repo.weir(&["status"]).ok();
        assert!(
            status.stdout.contains(&path),
            "{point}: savepoint recorded: {}\n{path}",
            status.stdout
        );
    }
}
