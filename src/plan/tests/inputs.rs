//! Dependencies, secrets, environments and redeploy nonces as inputs of a plan.

use super::*;

#[test]
fn a_dependency_change_is_a_redeploy_whose_diff_names_it() {
    use crate::desired::{Dependency, DependencySource};
    let dep = |version: &str, sha: Option<String>| Dependency {
        source: DependencySource::Maven {
            coordinate: crate::artifact::maven::Coordinate::parse(&format!(
                "org.example:udfs:{version}"
            ))
            .unwrap(),
            repositories: Vec::new(),
        },
        sha256: sha,
        origin: "jobs/a.yaml:9:7".into(),
    };
    let plain = job("a");
    let mut before = job("a");
    before.dependencies = vec![dep("1.0", None)];
    let mut after = job("a");
    after.dependencies = vec![dep("1.1", Some("ab".repeat(32)))];
    let diffs = field_diffs(&before, &after);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert_eq!(diffs[0].field, "dependencies");
    assert_eq!(diffs[0].severity, Severity::Redeploy);
    assert_eq!(diffs[0].before.as_deref(), Some("org.example:udfs:1.0"));
    assert_eq!(
        diffs[0].after.as_deref(),
        Some("org.example:udfs:1.1 (sha256 abababababab)")
    );
    // Adding the first dependency shows it; jobs without any have no such field.
    let diffs = field_diffs(&plain, &before);
    assert_eq!(diffs[0].field, "dependencies");
    assert_eq!(diffs[0].before, None);
    assert!(field_diffs(&plain, &plain).is_empty());
}

#[test]
fn an_unset_secret_is_an_error_of_its_job_and_touches_nothing() {
    let old = job("a");
    let mut j = old.clone();
    j.flink_configuration
        .insert("sasl".into(), "password=${env:KAFKA_PASSWORD}".into());
    j.secrets.insert("KAFKA_PASSWORD".into(), None);
    let current = running(&old, 1, JobState::Running);
    let h = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![j], true),
        &observation(vec![current]),
        &h,
        &[],
    );
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert!(p.unmanaged.is_empty() && p.warnings.is_empty());
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].job.as_deref(), Some("a"));
    assert!(
        p.errors[0]
            .message
            .contains("secret `${env:KAFKA_PASSWORD}` is not set"),
        "{}",
        p.errors[0].message
    );
    assert!(
        p.errors[0]
            .message
            .ends_with("not set in the environment of weir's process; the job is left as it is"),
        "{}",
        p.errors[0].message
    );
    assert_eq!(p.errors[0].cluster, "local");
    assert!(!p.errors[0].drift);
}

#[test]
fn a_rotated_secret_is_a_redeploy_that_names_it_only() {
    let mut old = job("a");
    old.flink_configuration
        .insert("sasl".into(), "password=${env:KAFKA_PASSWORD}".into());
    old.secrets
        .insert("KAFKA_PASSWORD".into(), Some("1111".repeat(8)));
    let mut new = old.clone();
    new.secrets
        .insert("KAFKA_PASSWORD".into(), Some("2222".repeat(8)));
    let current = running(&old, 1, JobState::Running);
    let h = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &h,
        &[],
    );
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Redeploy);
    let diff = &p.changes[0].diff;
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(diff[0].field, "secret KAFKA_PASSWORD");
    assert_eq!(
        diff[0].after.as_deref(),
        Some("${env:KAFKA_PASSWORD} (changed)")
    );
}

#[test]
fn jobs_of_another_environment_on_the_cluster_are_not_foreign() {
    let mut d = desired(vec![job("a")], true);
    d.environment = Some("prod".into());
    for e in ["staging", "prod"] {
        d.config.environments.insert(e.into(), Default::default());
    }
    let mut other = running(&job("a"), 7, JobState::Running);
    let mut ident = other.identity.unwrap();
    ident.name_hash = crate::identity::name_hash_in(Some("staging"), "a");
    other.identity = Some(ident);
    other.id = ident.job_id();
    let p = run(&d, &observation(vec![other.clone()]), &BTreeMap::new(), &[]);
    assert!(p.unmanaged.is_empty(), "{:?}", p.unmanaged);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Create);
    // Without environments the same job is someone else's (left alone, listed).
    let plain = desired(vec![job("b")], true);
    let p = run(&plain, &observation(vec![other]), &BTreeMap::new(), &[]);
    assert_eq!(p.unmanaged.len(), 1);
}

/// Invariant 5: a definition without `${env:…}` secrets keeps the fingerprint (and so the job
/// id) of the versions before secrets existed: the canonical JSON as they wrote it.
#[test]
fn fingerprints_without_secrets_are_unchanged() {
    use sha2::Digest;
    let j = job("a");
    let before_secrets = serde_json::json!({
        "jarSha256": "ab".repeat(32),
        "entryClass": "com.acme.App",
        "args": ["--topic", "orders"],
        "sql": null,
        "flinkConfiguration": {"execution.checkpointing.interval": "10s"},
        "restartNonce": 0,
    });
    let expected: [u8; 32] = sha2::Sha256::digest(before_secrets.to_string().as_bytes()).into();
    assert_eq!(j.code_fingerprint(), expected);
    let mut with_secret = j.clone();
    with_secret
        .secrets
        .insert("PW".into(), Some("00".repeat(16)));
    assert_ne!(with_secret.code_fingerprint(), expected);
}

/// Issue 12: bumping `redeployNonce` with `restoreFrom` redeploys from that savepoint, loudly,
/// after saving the current state; the same restoreFrom without a bump changes nothing.
#[test]
fn a_bumped_redeploy_nonce_restores_the_chosen_savepoint() {
    let mut old = job("a");
    old.lifecycle.restore_from = Some("file:///sp/savepoint-old".into());
    let current = running(&old, 1, JobState::Running);
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&old, &current))].into();
    let p = run(
        &desired(vec![old.clone()], false),
        &observation(vec![current.clone()]),
        &hist,
        &[],
    );
    assert!(p.changes.is_empty(), "restoreFrom alone does nothing");

    let mut new = old.clone();
    new.lifecycle.redeploy_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current.clone()]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Redeploy);
    let chosen = Restore::Path {
        path: "file:///sp/savepoint-old".into(),
    };
    assert_eq!(c.restore, chosen);
    assert!(
        matches!(c.steps[0], Step::StopWithSavepoint { .. }),
        "{:?}",
        c.steps
    );
    assert_eq!(
        c.steps[1],
        Step::Submit {
            parallelism: 2,
            restore: chosen
        }
    );
    assert!(
        c.warnings[0].starts_with("REDEPLOY FROM A CHOSEN SAVEPOINT"),
        "{:?}",
        c.warnings
    );
    assert!(
        c.reason.contains("savepoint.redeployNonce changed"),
        "{}",
        c.reason
    );
    assert!(c.warnings[1].starts_with("weir has no record of file:///sp/savepoint-old"));

    // A savepoint of the lineage is not warned about.
    let mut known = hist.clone();
    known
        .get_mut("a")
        .unwrap()
        .known_savepoints
        .insert("file:///sp/savepoint-old".into());
    let mut new = old.clone();
    new.lifecycle.redeploy_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &known,
        &[],
    );
    assert!(
        !p.changes[0]
            .warnings
            .iter()
            .any(|w| w.contains("no record"))
    );
}

/// Invariant 5: a job without the new fields keeps its fingerprint.
#[test]
fn fingerprints_of_jobs_without_a_redeploy_nonce_do_not_change() {
    let plain = job("a");
    let mut with_from = plain.clone();
    with_from.lifecycle.restore_from = Some("file:///sp/x".into());
    with_from.lifecycle.periodic_ms = Some(60_000);
    assert_eq!(plain.code_fingerprint(), with_from.code_fingerprint());
    let mut bumped = with_from.clone();
    bumped.lifecycle.redeploy_nonce = 1;
    assert_ne!(plain.code_fingerprint(), bumped.code_fingerprint());
    // The canonical form of a job without it is what earlier versions hashed.
    let canonical = serde_json::json!({
        "jarSha256": plain.jar().sha256,
        "entryClass": plain.entry_class(),
        "args": match &plain.program { crate::desired::Program::Jar { args, .. } => args.clone(), _ => vec![] },
        "sql": Option::<String>::None,
        "flinkConfiguration": plain.flink_configuration,
        "restartNonce": plain.restart_nonce,
    });
    let old: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        canonical.to_string().as_bytes(),
    ))
    .into();
    assert_eq!(plain.code_fingerprint(), old);
}

/// A stateless redeploy from a chosen savepoint restarts with that state: the plan does not also
/// say it restarts without state.
#[test]
fn a_stateless_redeploy_from_a_chosen_savepoint_is_not_called_stateless() {
    let mut old = job("a");
    old.upgrade_mode = UpgradeMode::Stateless;
    old.lifecycle.restore_from = Some("file:///sp/chosen".into());
    let current = running(&old, 1, JobState::Running);
    let hist: BTreeMap<_, _> = [("a".to_string(), history_for(&old, &current))].into();
    let mut new = old.clone();
    new.lifecycle.redeploy_nonce = 1;
    let p = run(
        &desired(vec![new], false),
        &observation(vec![current]),
        &hist,
        &[],
    );
    let c = &p.changes[0];
    assert_eq!(
        c.restore,
        Restore::Path {
            path: "file:///sp/chosen".into()
        }
    );
    assert!(
        c.warnings[0].contains("cancelled without a savepoint"),
        "{:?}",
        c.warnings
    );
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("restarts without its state")),
        "{:?}",
        c.warnings
    );
}
