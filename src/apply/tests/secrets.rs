//! Secrets checked before anything is touched, and sent to Flink's run request only.

use super::*;

/// A definition whose `${env:…}` secret is not set where the apply runs (a plan made where it
/// was): nothing is touched, the running job keeps running.
#[tokio::test]
async fn an_unset_secret_touches_nothing() {
    let mut w = world().await;
    let desired = w.plan.changes[0].desired.as_mut().unwrap();
    desired
        .flink_configuration
        .insert("sasl".into(), "${env:WEIR_TEST_NEVER_SET_IN_APPLY}".into());
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-s1").await.unwrap();
    assert!(!outcomes[0].ok, "{outcomes:?}");
    assert!(
        outcomes[0].message.contains("WEIR_TEST_NEVER_SET_IN_APPLY"),
        "{outcomes:?}"
    );
    let requests = w.fake.since(mark);
    assert!(calls(&requests, STOP).is_empty() && calls(&requests, RUN).is_empty());
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
}

/// A secret's value reaches Flink's run request, and neither the journal nor the store's
/// records of the apply.
#[tokio::test]
async fn a_secret_reaches_the_run_request_only() {
    let value = std::env::var("PATH").expect("PATH is set in tests");
    let mut w = world().await;
    let desired = w.plan.changes[0].desired.as_mut().unwrap();
    desired
        .flink_configuration
        .insert("sasl".into(), "${env:PATH}".into());
    let planned = crate::secrets::digest("PATH", &value);
    desired.secrets.insert("PATH".into(), Some(planned));
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-s2").await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:?}");
    let requests = w.fake.since(mark);
    let run = calls(&requests, RUN)[0].json.clone().unwrap();
    assert_eq!(run["flinkConfiguration"]["sasl"], value.as_str());
    let journal = format!("{:?}", w.store.journal("apply-s2").await.unwrap());
    assert!(!journal.contains(&value), "{journal}");
    let progress = w.progress.lock().unwrap().join("\n");
    assert!(!progress.contains(&value), "{progress}");
}

/// A secret rotated between the plan and the apply: the plan's job ids carry the old digest, so
/// nothing is touched and the apply says to plan again.
#[tokio::test]
async fn a_secret_changed_since_the_plan_touches_nothing() {
    let mut w = world().await;
    let desired = w.plan.changes[0].desired.as_mut().unwrap();
    desired
        .flink_configuration
        .insert("sasl".into(), "${env:PATH}".into());
    desired.secrets.insert(
        "PATH".into(),
        Some(crate::secrets::digest("PATH", "an older value")),
    );
    let mark = w.fake.mark();
    let outcomes = w.applier.apply(&w.plan, "apply-s3").await.unwrap();
    assert!(!outcomes[0].ok, "{outcomes:?}");
    assert!(
        outcomes[0].message.contains("has changed since the plan"),
        "{outcomes:?}"
    );
    let requests = w.fake.since(mark);
    assert!(calls(&requests, STOP).is_empty() && calls(&requests, RUN).is_empty());
    assert_eq!(w.fake.job(&w.old_id.to_string()).unwrap().state, "RUNNING");
}
