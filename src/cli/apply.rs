//! `weir apply`: finish interrupted applies, then apply a fresh plan (after confirmation) or a
//! saved plan (refused when stale).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::plan::{CliPlan, load_valid, make_plan, preflight_options, source_for};
use crate::clock::new_id;
use crate::engine::{self, ApplySettings, Planned, Scope, Stale};
use crate::observe::{ClusterObservation, Observation};
use crate::plan::Plan;
use crate::redact;
use crate::render;
use crate::store::{Store, Trigger};
use crate::text::escape_controls;

pub(super) struct ApplyOptions {
    pub auto_approve: bool,
    pub parallel: usize,
    pub savepoint_timeout: Duration,
    pub start_timeout: Duration,
    pub artifacts: crate::artifact::ArtifactSettings,
    pub run_timeout: Duration,
}

impl ApplyOptions {
    fn settings(&self) -> ApplySettings {
        ApplySettings {
            parallel: self.parallel,
            slots: None,
            savepoint_timeout: self.savepoint_timeout,
            start_timeout: self.start_timeout,
            artifacts: self.artifacts.clone(),
            run_timeout: self.run_timeout,
        }
    }
}

fn progress() -> Arc<dyn Fn(&str) + Send + Sync> {
    // The applier scrubs its messages; names and Flink's text may still hold control characters.
    Arc::new(|msg: &str| eprintln!("  {}", escape_controls(msg)))
}

/// Finishes interrupted applies first; false when one of them failed.
async fn resume_interrupted(store: &Store, repo: &Path, opts: &ApplyOptions) -> Result<bool> {
    if store.unfinished_applies().await?.is_empty() {
        return Ok(true);
    }
    // The interrupted changes are completed against the working tree's definitions; a submission
    // is only repeated when the definition still yields the recorded job id.
    let source = source_for(repo, None)?;
    eprintln!("weir: interrupted apply(s) found; finishing them first.");
    let report =
        engine::resume_interrupted(store, source, &opts.settings(), progress(), Trigger::Cli)
            .await?;
    for line in report.lines() {
        eprintln!("  {}", escape_controls(&redact::text(&line)));
    }
    Ok(report.ok())
}

pub(super) async fn apply_cmd(
    store: &Store,
    repo: &Path,
    planfile: Option<&Path>,
    opts: ApplyOptions,
) -> Result<i32> {
    let _lock = engine::lock_store(store)?;
    let resumed_ok = resume_interrupted(store, repo, &opts).await?;
    let exit = |plan: &Plan, ok: bool| i32::from(!(ok && plan.errors.is_empty() && resumed_ok));
    let made = match planfile {
        Some(path) => match saved_plan(store, repo, path).await? {
            Some(made) => made,
            None => return Ok(1),
        },
        None => {
            // Always pre-flighted: a program the cluster refuses never stops its running job.
            let preflight = preflight_options(true, opts.artifacts.clone());
            let Some(made) = make_plan(store, repo, None, None, &preflight).await? else {
                return Ok(1);
            };
            print!("{}", redact::text(&render::text(&made.planned.plan)));
            if !made.planned.plan.has_changes() {
                return Ok(exit(&made.planned.plan, true));
            }
            if !opts.auto_approve && !confirmed()? {
                return Ok(1);
            }
            made
        }
    };
    let CliPlan { planned, source } = made;
    let plan = planned.plan;
    if !plan.has_changes() {
        println!("No changes to apply.");
        return Ok(exit(&plan, true));
    }
    let apply_id = new_id("apply");
    eprintln!("Applying {} (plan {}):", apply_id, plan.id);
    let settings = opts.settings();
    let applier = engine::applier(
        store,
        planned.snapshot.clients,
        source,
        &settings,
        progress(),
        Trigger::Cli,
    );
    let outcomes = applier.apply(&plan, &apply_id).await?;
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    println!(
        "\nApply {}: {} change(s) succeeded, {} failed.",
        if failed == 0 {
            "complete"
        } else {
            "finished with errors"
        },
        outcomes.len() - failed,
        failed
    );
    for o in outcomes.iter().filter(|o| !o.ok) {
        println!(
            "  {}: {}",
            escape_controls(&o.job),
            escape_controls(&redact::text(&o.message))
        );
    }
    Ok(exit(&plan, failed == 0))
}

/// Asks on the terminal; false (with the reason printed) unless the answer is `yes`.
fn confirmed() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "weir: refusing to apply without confirmation: stdin is not a terminal (use --auto-approve)."
        );
        return Ok(false);
    }
    print!("\nApply these changes? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        eprintln!("Apply cancelled.");
        return Ok(false);
    }
    Ok(true)
}

/// Reads a saved plan and checks it against the repo and the clusters as they are now. `None`
/// (with the reason printed) when it may not be applied.
async fn saved_plan(store: &Store, repo: &Path, path: &Path) -> Result<Option<CliPlan>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut plan: Plan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a weir plan", path.display()))?;
    // The plan must still describe the repo as it is now: compare against the working tree (a
    // plan made with --ref is applied from a checkout of that revision).
    let source = source_for(repo, None)?;
    let (valid, outcome) = load_valid(&source);
    let Some(desired) = valid else {
        eprintln!("weir: the repo is invalid; nothing was applied.");
        return Ok(None);
    };
    if let Err(why) = engine::stale::check_revision(&plan, &desired) {
        refuse(&why, None);
        return Ok(None);
    }
    let snapshot = engine::snapshot(store, &desired).await?;
    let checked = engine::stale::check(
        &plan,
        Scope::Repo,
        &desired,
        &outcome.invalid_files,
        &snapshot,
    );
    if let Err(why) = checked {
        refuse(&why, Some(&snapshot.observation));
        return Ok(None);
    }
    plan.attach(&desired)?;
    print!("{}", redact::text(&render::text(&plan)));
    Ok(Some(CliPlan {
        planned: Planned {
            plan,
            desired,
            snapshot,
        },
        source,
    }))
}

/// Says why a saved plan is stale.
fn refuse(why: &Stale, observation: Option<&Observation>) {
    match (why, observation) {
        (Stale::Revision { made, now }, _) => eprintln!(
            "weir: the saved plan is stale: it was made from revision {made}, the repo is now at \
             {now}. Nothing was applied; run `weir plan` again."
        ),
        (_, Some(o)) => eprintln!(
            "weir: the saved plan is stale: the clusters changed since it was made ({}). \
             Nothing was applied; run `weir plan` again.",
            describe_observation(o)
        ),
        (why, None) => eprintln!(
            "weir: the saved plan is stale: {why}. Nothing was applied; run `weir plan` again."
        ),
    }
}

fn describe_observation(o: &Observation) -> String {
    o.clusters
        .iter()
        .map(|(name, c)| match c {
            ClusterObservation::Reachable { jobs, .. } => {
                format!(
                    "{name}: {} weir job(s)",
                    jobs.iter().filter(|j| j.identity.is_some()).count()
                )
            }
            ClusterObservation::Unreachable { error, .. } => {
                let error = redact::text(&error.to_string());
                format!("{name}: unreachable ({})", escape_controls(&error))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
