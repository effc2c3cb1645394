//! Retention (schema version 5, `migrations/0005_retention.sql`): [`Store::prune`] deletes whole
//! plan and apply records older than a cutoff, the one exception to the audit log being
//! append-only.
//!
//! A record is deleted whole: an apply with its jobs, journal, change results, events, origin,
//! the savepoints it took and its restores; a plan with its jobs and origin. Notification
//! deliveries go by their own time. What weir needs to recover and to plan is never deleted,
//! whatever its age, and neither is anything that it references:
//!
//! * unfinished applies (an interrupted apply is finished from its journal and plan);
//! * for each job the newest savepoint or retained checkpoint and the one its job record names
//!   as the last (the planner restores from it), with the apply that took it and those that
//!   restored it;
//! * every savepoint a kept apply took or restored from, and so the apply that took it;
//! * the plan of every kept apply, and the plans the caller asks to keep (the daemon's plan
//!   waiting for approval);
//! * job records (the `jobs` table is not an audit table).
//!
//! The schema enforces the append-only rule outside a prune, and the first two points even
//! inside one. Each prune is recorded in the append-only `prunes` table, which is never pruned.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::{Store, StoreError, Trigger};

/// What [`Store::prune`] is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRequest {
    /// Records before this time (epoch ms) are deleted: a plan by when it was made, an apply by
    /// when it finished, a delivery by when it ended.
    pub cutoff_ms: i64,
    /// Now (recorded with the prune).
    pub at_ms: i64,
    /// [`Trigger::Cli`] (`weir prune`) or [`Trigger::Retention`] (the daemon's
    /// `audit.retentionDays`).
    pub trigger: Trigger,
    /// Who pruned: the local user for `cli`.
    pub actor: Option<String>,
    /// Plans kept whatever their age (e.g. the daemon's plan waiting for approval).
    pub keep_plans: Vec<String>,
    /// Count only: nothing is deleted and no prune is recorded.
    pub dry_run: bool,
}

/// How many rows of each kind a prune deleted (or would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneCounts {
    pub plans: u64,
    pub applies: u64,
    pub journal_entries: u64,
    pub apply_changes: u64,
    pub apply_events: u64,
    pub origins: u64,
    pub savepoints: u64,
    pub savepoint_restores: u64,
    pub deliveries: u64,
}

impl PruneCounts {
    /// Plans plus applies.
    pub fn records(&self) -> u64 {
        self.plans + self.applies
    }
}

/// What a prune kept although it is older than the cutoff, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneKept {
    /// Unfinished applies (whatever their age), with their journal and plan.
    pub unfinished_applies: u64,
    /// Savepoints kept as the newest of their job or the last one its job record names.
    pub newest_savepoints: u64,
    /// Applies finished before the cutoff, kept because a kept savepoint came from them or
    /// they restored one.
    pub old_applies: u64,
    /// Plans made before the cutoff, kept because a kept apply applied them or the caller
    /// asked.
    pub old_plans: u64,
}

/// What [`Store::prune`] did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// The prune's id in the prune log; `None` for a dry run.
    pub id: Option<i64>,
    pub at_ms: i64,
    pub cutoff_ms: i64,
    pub trigger: Trigger,
    pub actor: Option<String>,
    pub dry_run: bool,
    pub deleted: PruneCounts,
    pub kept: PruneKept,
}

/// One recorded prune (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PruneRecord {
    pub id: i64,
    pub at_ms: i64,
    pub cutoff_ms: i64,
    pub trigger: Trigger,
    pub actor: Option<String>,
    #[sqlx(rename = "counts_json", try_from = "String")]
    pub deleted: PruneCounts,
}

impl TryFrom<String> for PruneCounts {
    type Error = serde_json::Error;

    /// The counts as the prune log stores them (JSON).
    fn try_from(json: String) -> Result<PruneCounts, serde_json::Error> {
        serde_json::from_str(&json)
    }
}

/// The rows [`select`] decides about.
struct Graph {
    /// (id, plan id, finished at).
    applies: Vec<(String, String, Option<i64>)>,
    /// (id, made at).
    plans: Vec<(String, i64)>,
    /// (path, produced by apply, at).
    savepoints: Vec<(String, Option<String>, i64)>,
    /// (path, apply id).
    restores: Vec<(String, String)>,
    /// The newest savepoint of each job and every job record's last savepoint.
    protected: BTreeSet<String>,
}

/// What to delete.
#[derive(Debug, Default, PartialEq, Eq)]
struct Selection {
    applies: BTreeSet<String>,
    plans: BTreeSet<String>,
    savepoints: BTreeSet<String>,
    kept: PruneKept,
}

/// Decides what to delete. Pure; see the module documentation for the rules.
fn select(g: &Graph, cutoff_ms: i64, keep_plans: &[String]) -> Selection {
    let old = |finished: Option<i64>| finished.is_some_and(|f| f < cutoff_ms);
    let mut kept_applies: BTreeSet<&str> = g
        .applies
        .iter()
        .filter(|(_, _, f)| !old(*f))
        .map(|(id, _, _)| id.as_str())
        .collect();
    let mut kept_savepoints: BTreeSet<&str> = g.protected.iter().map(String::as_str).collect();
    let producer: BTreeMap<&str, &str> = g
        .savepoints
        .iter()
        .filter_map(|(path, by, _)| Some((path.as_str(), by.as_deref()?)))
        .collect();
    let mut touched: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, by) in &producer {
        touched.entry(by).or_default().push(path);
    }
    for (path, apply) in &g.restores {
        touched.entry(apply).or_default().push(path);
        if g.protected.contains(path) {
            kept_applies.insert(apply);
        }
    }
    // A kept apply keeps the savepoints it took or restored (its record names them), and a kept
    // savepoint keeps the apply that took it; repeat until nothing changes.
    loop {
        let before = (kept_applies.len(), kept_savepoints.len());
        for a in &kept_applies {
            kept_savepoints.extend(touched.get(a).into_iter().flatten());
        }
        for s in &kept_savepoints {
            if let Some(p) = producer.get(s) {
                kept_applies.insert(p);
            }
        }
        if (kept_applies.len(), kept_savepoints.len()) == before {
            break;
        }
    }

    let applies: BTreeSet<String> = g
        .applies
        .iter()
        .filter(|(id, _, _)| !kept_applies.contains(id.as_str()))
        .map(|(id, _, _)| id.clone())
        .collect();
    let mut kept_plans: BTreeSet<&str> = keep_plans.iter().map(String::as_str).collect();
    kept_plans.extend(
        g.applies
            .iter()
            .filter(|(id, _, _)| kept_applies.contains(id.as_str()))
            .map(|(_, plan, _)| plan.as_str()),
    );
    let plans = g
        .plans
        .iter()
        .filter(|(id, at)| *at < cutoff_ms && !kept_plans.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let savepoints = g
        .savepoints
        .iter()
        .filter(|(path, by, at)| {
            !kept_savepoints.contains(path.as_str())
                && match by {
                    Some(by) => applies.contains(by),
                    // Not taken by weir: its record is its first use, so it goes by its own time.
                    None => *at < cutoff_ms,
                }
        })
        .map(|(path, _, _)| path.clone())
        .collect();
    let kept = PruneKept {
        unfinished_applies: g.applies.iter().filter(|(_, _, f)| f.is_none()).count() as u64,
        newest_savepoints: g.protected.len() as u64,
        old_applies: g
            .applies
            .iter()
            .filter(|(id, _, f)| old(*f) && kept_applies.contains(id.as_str()))
            .count() as u64,
        old_plans: g
            .plans
            .iter()
            .filter(|(id, at)| *at < cutoff_ms && kept_plans.contains(id.as_str()))
            .count() as u64,
    };
    Selection {
        applies,
        plans,
        savepoints,
        kept,
    }
}

const PRUNE_SELECT: &str = "SELECT id, at_ms, cutoff_ms, trigger, actor, counts_json FROM prunes";

impl Store {
    /// Deletes whole plan and apply records older than `req.cutoff_ms` (see the module
    /// documentation for what is always kept) and records the prune, in one transaction; with
    /// `dry_run` the transaction is rolled back, so the counts are exactly what a prune would
    /// delete at that moment.
    pub async fn prune(&self, req: &PruneRequest) -> Result<PruneReport, StoreError> {
        const OP: &str = "prune";
        let mut tx = self.begin_immediate(OP).await?;
        let graph = self.graph(&mut tx).await.map_err(self.query(OP))?;
        let selection = select(&graph, req.cutoff_ms, &req.keep_plans);
        let deleted = self
            .delete_selected(&mut tx, &selection, req.cutoff_ms)
            .await
            .map_err(self.query(OP))?;
        let mut report = PruneReport {
            id: None,
            at_ms: req.at_ms,
            cutoff_ms: req.cutoff_ms,
            trigger: req.trigger.clone(),
            actor: req.actor.clone(),
            dry_run: req.dry_run,
            deleted,
            kept: selection.kept,
        };
        if req.dry_run {
            tx.rollback().await.map_err(self.query(OP))?;
            return Ok(report);
        }
        let counts = serde_json::to_string(&report.deleted).unwrap_or_default();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO prunes (at_ms, cutoff_ms, trigger, actor, records, counts_json)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(req.at_ms)
        .bind(req.cutoff_ms)
        .bind(&req.trigger)
        .bind(&req.actor)
        .bind(i64::try_from(report.deleted.records()).unwrap_or(i64::MAX))
        .bind(counts)
        .fetch_one(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        tx.commit().await.map_err(self.query(OP))?;
        report.id = Some(id);
        Ok(report)
    }

    /// The rows a prune decides about, read inside its transaction.
    async fn graph(&self, tx: &mut Transaction<'static, Any>) -> Result<Graph, sqlx::Error> {
        Ok(Graph {
            applies: sqlx::query_as("SELECT id, plan_id, finished_at_ms FROM applies")
                .fetch_all(&mut **tx)
                .await?,
            plans: sqlx::query_as("SELECT id, created_at_ms FROM plans")
                .fetch_all(&mut **tx)
                .await?,
            savepoints: sqlx::query_as("SELECT path, produced_by_apply, at_ms FROM savepoints")
                .fetch_all(&mut **tx)
                .await?,
            restores: sqlx::query_as("SELECT path, apply_id FROM savepoint_restores")
                .fetch_all(&mut **tx)
                .await?,
            // The same order as `Store::savepoints` and the `savepoints_keep_last` trigger.
            protected: sqlx::query_scalar(
                "SELECT path FROM (
                     SELECT path, ROW_NUMBER() OVER (
                         PARTITION BY job ORDER BY at_ms DESC, rowid DESC) AS n
                     FROM savepoints) AS ranked
                 WHERE n = 1
                 UNION
                 SELECT s.path FROM savepoints s JOIN jobs j ON j.last_savepoint = s.path",
            )
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect(),
        })
    }

    /// Deletes what `selection` names (and deliveries older than `cutoff_ms`) with the schema's
    /// delete triggers opened for the length of the transaction.
    async fn delete_selected(
        &self,
        tx: &mut Transaction<'static, Any>,
        selection: &Selection,
        cutoff_ms: i64,
    ) -> Result<PruneCounts, sqlx::Error> {
        let ids = |set: &BTreeSet<String>| serde_json::to_string(set).unwrap_or_default();
        let applies = ids(&selection.applies);
        let plans = ids(&selection.plans);
        let records = ids(&selection.applies.union(&selection.plans).cloned().collect());
        let savepoints = ids(&selection.savepoints);

        sqlx::query("INSERT INTO prune_in_progress (one) VALUES (1)")
            .execute(&mut **tx)
            .await?;
        // The ids travel as one JSON array.
        let unnest = self.backend.json_strings(1);
        // Children before parents (foreign keys). A statement's count is its own rows only.
        let mut delete = async |table: &str, column: &str, ids: &str| {
            sqlx::query(&format!("DELETE FROM {table} WHERE {column} IN ({unnest})"))
                .bind(ids)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected())
        };
        let savepoint_restores = delete("savepoint_restores", "apply_id", &applies).await?;
        let savepoints = delete("savepoints", "path", &savepoints).await?;
        let journal_entries = delete("journal", "apply_id", &applies).await?;
        let apply_changes = delete("apply_changes", "apply_id", &applies).await?;
        let apply_events = delete("apply_events", "apply_id", &applies).await?;
        delete("apply_jobs", "apply_id", &applies).await?;
        // What a pruned apply would have rolled back to (no longer needed: it finished).
        delete("rollback_targets", "apply_id", &applies).await?;
        let applies = delete("applies", "id", &applies).await?;
        delete("plan_jobs", "plan_id", &plans).await?;
        let plans = delete("plans", "id", &plans).await?;
        let origins = delete("record_origins", "record_id", &records).await?;
        let deliveries =
            sqlx::query("DELETE FROM notification_deliveries WHERE finished_at_ms < $1")
                .bind(cutoff_ms)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM prune_in_progress")
            .execute(&mut **tx)
            .await?;
        Ok(PruneCounts {
            plans,
            applies,
            journal_entries,
            apply_changes,
            apply_events,
            origins,
            savepoints,
            savepoint_restores,
            deliveries,
        })
    }

    /// Every recorded prune, newest first.
    pub async fn prunes(&self) -> Result<Vec<PruneRecord>, StoreError> {
        sqlx::query_as::<_, PruneRecord>(&format!("{PRUNE_SELECT} ORDER BY id DESC"))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query("prunes"))
    }
}

#[cfg(test)]
mod tests;
