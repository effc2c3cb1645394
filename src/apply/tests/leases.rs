//! One apply at a time per job: the lease taken before any side effect, and released or taken over.

use super::*;

/// The lease markers (`weir-lock-…`) on the fake cluster, by file name.
async fn lease_markers(w: &World) -> Vec<String> {
    let jars = w.applier.clients["local"].list_jars().await.unwrap();
    jars.into_iter()
        .map(|j| j.name)
        .filter(|n| n.starts_with("weir-lock-"))
        .collect()
}

fn orders_hash() -> String {
    format!("{:016x}", crate::identity::name_hash("orders"))
}

/// Issue 9 item 4: two appliers (two stores, two CI jobs) race on one job: exactly one goes
/// ahead, the other refuses before any side effect, and no lease is left behind.
#[tokio::test]
async fn two_appliers_racing_on_one_job_exactly_one_proceeds() {
    let w = world().await;
    // The stop is slow to answer, so the applies overlap whatever order they run in.
    w.fake.answer_late(STOP, Duration::from_millis(500));
    let mark = w.fake.mark();
    let (a, b) = tokio::join!(
        w.applier.apply(&w.plan, "apply-a"),
        w.applier.apply(&w.plan, "apply-b")
    );
    let outcomes = [a.unwrap().remove(0), b.unwrap().remove(0)];
    let ok: Vec<_> = outcomes.iter().filter(|o| o.ok).collect();
    assert_eq!(ok.len(), 1, "{outcomes:?}");
    let refused = outcomes.iter().find(|o| !o.ok).unwrap();
    assert!(
        refused.message.contains("another weir apply"),
        "{}",
        refused.message
    );
    let requests = w.fake.since(mark);
    assert_eq!(calls(&requests, STOP).len(), 1);
    assert_eq!(calls(&requests, RUN).len(), 1);
    assert_eq!(w.fake.jobs_in("RUNNING").len(), 1);
    assert!(lease_markers(&w).await.is_empty());
}

/// A lease another process holds refuses the change before any side effect, naming the holder;
/// this applier's own marker is removed again.
#[tokio::test]
async fn a_lease_held_by_another_apply_refuses_before_any_side_effect() {
    let w = world().await;
    let theirs = lease::marker_name(&orders_hash(), crate::clock::now_ms() + 600_000, "other01");
    w.fake.insert_jar(&theirs);
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-held").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(
        outcomes[0].message.contains("other01"),
        "{}",
        outcomes[0].message
    );
    assert!(calls(&w.fake.since(mark), STOP).is_empty());
    assert_eq!(lease_markers(&w).await, vec![theirs]);
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
}

/// An expired lease (a crashed holder) is ignored and deleted; a lease of another job does not
/// block; the lease is released when the change ends.
#[tokio::test]
async fn an_expired_lease_is_ignored_and_another_jobs_lease_does_not_block() {
    let w = world().await;
    w.fake
        .insert_jar(&lease::marker_name(&orders_hash(), 1_000, "crashed01"));
    let other_job = lease::marker_name("00000000000000ff", crate::clock::now_ms() + 600_000, "x1");
    w.fake.insert_jar(&other_job);
    let outcomes = w.applier.apply(&w.plan, "apply-expired").await.unwrap();
    assert!(outcomes[0].ok, "{}", outcomes[0].message);
    assert_eq!(lease_markers(&w).await, vec![other_job]);
}

/// An unexpired lease of an apply of this store that has finished (its process was killed and
/// the resume finished it) is taken over: the store's next apply is not blocked by its own past.
#[tokio::test]
async fn a_lease_of_a_finished_apply_of_this_store_is_taken_over() {
    let w = world().await;
    w.begin("apply-killed").await;
    w.store
        .finish_apply("apply-killed", ApplyOutcome::Interrupted, None, 3_000)
        .await
        .unwrap();
    let left = lease::marker_name(
        &orders_hash(),
        crate::clock::now_ms() + 600_000,
        "apply-killed",
    );
    w.fake.insert_jar(&left);
    let outcomes = w.applier.apply(&w.plan, "apply-next").await.unwrap();
    assert!(outcomes[0].ok, "{}", outcomes[0].message);
    assert!(lease_markers(&w).await.is_empty());
}

/// The lease is released when the change fails too.
#[tokio::test]
async fn the_lease_is_released_when_the_change_fails() {
    let w = world().await;
    w.fake.fail(
        STOP,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no savepoint",
        None,
    );
    let outcomes = w.applier.apply(&w.plan, "apply-fails").await.unwrap();
    assert!(!outcomes[0].ok);
    assert!(lease_markers(&w).await.is_empty());
}
