//! The fields of a definition that plans show and compare, as people read them (secrets
//! redacted), and the diffs between two definitions.

use crate::desired::{DesiredJob, JarLocation, JarRef, Program};
use crate::redact;
use crate::spec::UpgradeMode;
use crate::text::escape_controls;

use super::{FieldDiff, Severity};

/// The value of each diffable field, rendered for humans (secrets redacted).
fn fields(job: &DesiredJob) -> Vec<(&'static str, Severity, Option<String>)> {
    let (jar, entry, args, sql) = match &job.program {
        Program::Jar {
            jar,
            entry_class,
            args,
        } => (
            Some(jar_label(jar)),
            entry_class.clone(),
            // One argument per line: a line break inside one must not look like two.
            Some(
                redact::args(args)
                    .iter()
                    .map(|a| escape_controls(a))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            None,
        ),
        Program::Sql { script, runner, .. } => (
            Some(jar_label(runner)),
            None,
            None,
            Some(redact::sql(script)),
        ),
    };
    let config = configuration_text(job);
    let mut fields = vec![
        ("jar", Severity::Redeploy, jar),
        ("entryClass", Severity::Redeploy, entry),
        ("args", Severity::Redeploy, args.filter(|a| !a.is_empty())),
        ("sql", Severity::Redeploy, sql),
        // One dependency per line: name, version and the start of its SHA-256, so a diff names
        // the one that changed. Absent without dependencies (plans of such jobs are unchanged).
        (
            "dependencies",
            Severity::Redeploy,
            (!job.dependencies.is_empty()).then(|| {
                job.dependencies
                    .iter()
                    .map(|d| escape_controls(&d.label()).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
        ),
        ("flinkConfiguration", Severity::Redeploy, config),
        (
            "restartNonce",
            Severity::Redeploy,
            Some(job.restart_nonce.to_string()),
        ),
        (
            "parallelism",
            Severity::Rescale,
            Some(job.parallelism.to_string()),
        ),
        (
            "upgradeMode",
            Severity::RecordOnly,
            Some(upgrade_mode_str(job.upgrade_mode).into()),
        ),
        (
            "savepoint.allowNonRestoredState",
            Severity::RecordOnly,
            Some(job.allow_non_restored_state.to_string()),
        ),
        (
            "savepoint.directory",
            Severity::RecordOnly,
            job.savepoint_dir.clone(),
        ),
    ];
    fields.extend(newer_fields(job));
    fields
}

/// Fields that later versions of weir added: each shown only when set, so that the plans of jobs
/// without them read as before.
fn newer_fields(job: &DesiredJob) -> [(&'static str, Severity, Option<String>); 4] {
    [
        // Shown for batch jobs only, so that streaming jobs' plans read as before.
        (
            "mode",
            Severity::Redeploy,
            job.is_batch().then(|| job.mode.as_str().to_string()),
        ),
        (
            "schedule",
            Severity::RecordOnly,
            job.schedule.as_ref().map(|s| match &s.time_zone {
                Some(tz) => format!("{} ({tz})", s.cron),
                None => s.cron.clone(),
            }),
        ),
        // Shown only when set, so plans of jobs without them read as before.
        (
            "savepoint.redeployNonce",
            Severity::Redeploy,
            (job.lifecycle.redeploy_nonce != 0).then(|| job.lifecycle.redeploy_nonce.to_string()),
        ),
        (
            "savepoint.restoreFrom",
            Severity::RecordOnly,
            job.lifecycle.restore_from.clone(),
        ),
    ]
}

/// `flinkConfiguration` one `key: value` per line (secret values redacted); `None` when empty.
fn configuration_text(job: &DesiredJob) -> Option<String> {
    if job.flink_configuration.is_empty() {
        return None;
    }
    Some(
        job.flink_configuration
            .iter()
            .map(|(k, v)| {
                let v = redact::config_value(k, v);
                format!("{}: {}", escape_controls(k), escape_controls(&v))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// A jar as shown in diffs: its file name (without a URL's query or fragment, where presigned
/// URLs carry credentials) and the start of its SHA-256.
fn jar_label(jar: &JarRef) -> String {
    let name = match &jar.location {
        JarLocation::Url { url } => {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            path.rsplit('/').next().unwrap_or(path)
        }
        JarLocation::Repo { .. } => jar.file_name(),
        // Built into weir: its digest depends on the cluster's Flink version.
        JarLocation::Embedded => return format!("{} (built into weir)", jar.file_name()),
    };
    format!(
        "{name} (sha256 {})",
        &jar.sha256[..jar.sha256.len().min(12)]
    )
}

pub fn upgrade_mode_str(m: UpgradeMode) -> &'static str {
    match m {
        UpgradeMode::Savepoint => "savepoint",
        UpgradeMode::LastState => "last-state",
        UpgradeMode::Stateless => "stateless",
    }
}

/// Field-level differences between two definitions, most severe first.
pub fn field_diffs(before: &DesiredJob, after: &DesiredJob) -> Vec<FieldDiff> {
    let mut out: Vec<FieldDiff> = fields(before)
        .into_iter()
        .zip(fields(after))
        .filter(|((_, _, b), (_, _, a))| a != b)
        .map(|((field, severity, b), (_, _, a))| FieldDiff {
            field: field.into(),
            severity,
            before: b,
            after: a,
        })
        .collect();
    // `${env:NAME}` secrets: which one changed, never what it holds.
    let names: std::collections::BTreeSet<&String> =
        before.secrets.keys().chain(after.secrets.keys()).collect();
    for name in names {
        let (b, a) = (before.secrets.get(name), after.secrets.get(name));
        if b != a {
            let shown = |d: Option<&Option<String>>| d.map(|_| format!("${{env:{name}}}"));
            out.push(FieldDiff {
                field: format!("secret {name}"),
                severity: Severity::Redeploy,
                before: shown(b),
                after: shown(a).map(|s| {
                    if b.is_some() {
                        format!("{s} (changed)")
                    } else {
                        s
                    }
                }),
            });
        }
    }
    // Two secrets that both render as redacted still differ when the fingerprints do.
    if before.code_fingerprint() != after.code_fingerprint()
        && !out.iter().any(|d| d.severity == Severity::Redeploy)
    {
        out.push(FieldDiff {
            field: "flinkConfiguration".into(),
            severity: Severity::Redeploy,
            before: Some("(redacted values)".into()),
            after: Some("(redacted values changed)".into()),
        });
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.severity));
    out
}

/// For a create: every field as an addition.
pub(super) fn creation_diff(job: &DesiredJob) -> Vec<FieldDiff> {
    fields(job)
        .into_iter()
        .filter(|(_, _, v)| v.is_some())
        .map(|(field, severity, after)| FieldDiff {
            field: field.into(),
            severity,
            before: None,
            after,
        })
        .collect()
}
