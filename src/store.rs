//! weir's durable store: one SQLite file holding the audit log (plans, applies), the apply
//! journal, current knowledge per job, and savepoint lineage.
//!
//! # Durability
//!
//! The journal is the write-ahead record of every side effect weir has on a cluster, so a write
//! the store has acknowledged must survive a `kill -9` (or a power loss) at any later instant:
//!
//! * the file runs in WAL mode with `synchronous = FULL` (and `fullfsync` where the OS has it),
//!   so every commit is on disk before the call that made it returns;
//! * every journal call is one statement in its own committed transaction; nothing is batched;
//! * multi-statement writes use `BEGIN IMMEDIATE`, so they take the write lock up front and wait
//!   for it instead of failing half-way with `SQLITE_BUSY`.
//!
//! Several weir processes may open the same file: each connection waits up to
//! [`BUSY_TIMEOUT`] for another writer. Opening also creates the file and its parent directory,
//! switches the file to WAL mode and brings the schema to [`SCHEMA_VERSION`] (migrations are
//! applied inside one `BEGIN IMMEDIATE` transaction, so concurrent first opens are safe).
//!
//! # Append-only
//!
//! Plans, applies, journal entries and savepoint lineage are never deleted except by
//! [`Store::prune`] (retention, see [`retention`]), and triggers in the schema refuse every update
//! except recording how an apply ended ([`Store::finish_apply`], once) and a journal entry's
//! progress and result ([`Store::journal_progress`] and [`Store::journal_result`], only while it
//! is pending). Job records ([`Store::upsert_job`]) are the only mutable view.
//!
//! # Time
//!
//! Every time is passed in by the caller as unix epoch milliseconds; the store never reads the
//! clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

/// How long one connection waits for another connection (or process) holding the write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ordered schema migrations; the schema version of a file is its `PRAGMA user_version`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("store/migrations/0001_initial.sql")),
    (2, include_str!("store/migrations/0002_audit.sql")),
    (3, include_str!("store/migrations/0003_notify.sql")),
    (4, include_str!("store/migrations/0004_daemon.sql")),
    (5, include_str!("store/migrations/0005_retention.sql")),
];

/// The schema version this build of weir reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Connections per [`Store`] handle on a file (readers run concurrently in WAL mode; writers are
/// serialised by SQLite).
const MAX_CONNECTIONS: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Errors

/// A failed store operation. Every variant names the store file and carries its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {} for the weir store {}", dir.display(), path.display())]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the weir store {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the weir store {} to schema version {version}", path.display())]
    Migrate {
        path: PathBuf,
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    /// The database refused or failed a statement (I/O error, lock timeout, constraint, ...).
    #[error("weir store {}: {op} failed", path.display())]
    Query {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The store refused the operation because of what it already holds.
    #[error("weir store {}: {op} refused", path.display())]
    Rejected {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: Rejection,
    },
}

impl StoreError {
    /// The reason the store refused an operation, when it did.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            StoreError::Rejected { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The store file the failed operation was on (`:memory:` for in-memory stores).
    pub fn path(&self) -> &Path {
        match self {
            StoreError::CreateDir { path, .. }
            | StoreError::Open { path, .. }
            | StoreError::Migrate { path, .. }
            | StoreError::Query { path, .. }
            | StoreError::Rejected { path, .. } => path,
        }
    }
}

/// Why the store refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the file has schema version {found}, newer than this weir supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("the file cannot be put in WAL mode (journal mode is {mode:?})")]
    NotWal { mode: String },
    #[error("there is no {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    #[error("apply {id:?} is already finished")]
    ApplyFinished { id: String },
    #[error("journal entry {id} is already complete")]
    EntryComplete { id: i64 },
    #[error("savepoint {path:?} is already recorded with different values")]
    SavepointConflict { path: String },
}

// ---------------------------------------------------------------------------------------------
// Records

/// A computed plan (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub id: String,
    pub created_at_ms: i64,
    pub revision: String,
    /// What caused the plan (e.g. `cli`, `webhook`, `schedule`).
    pub trigger: String,
    pub summary: String,
    pub plan_json: String,
    /// The jobs the plan touches. Stored as a set: read back sorted and without duplicates.
    pub job_names: Vec<String>,
}

/// An apply as it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApply {
    pub id: String,
    /// The plan being applied; it must have been inserted first.
    pub plan_id: String,
    pub started_at_ms: i64,
    pub revision: String,
    pub trigger: String,
    /// Stored as a set: read back sorted and without duplicates.
    pub job_names: Vec<String>,
}

/// How an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum ApplyOutcome {
    Succeeded,
    Failed,
    /// The process running it died or gave up without finishing; set by recovery.
    Interrupted,
}

impl ApplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Succeeded => "succeeded",
            ApplyOutcome::Failed => "failed",
            ApplyOutcome::Interrupted => "interrupted",
        }
    }
}

/// An apply as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub id: String,
    pub plan_id: String,
    pub started_at_ms: i64,
    pub revision: String,
    pub trigger: String,
    pub job_names: Vec<String>,
    /// `None` while the apply runs (or after its process died before finishing it).
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<ApplyOutcome>,
    pub error: Option<String>,
}

/// A journal entry as first written, before its side effect is attempted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJournalEntry {
    pub apply_id: String,
    pub job: String,
    /// Order of the step within its job in this apply.
    pub seq: u32,
    /// The step kind, e.g. `stop_with_savepoint`, `cancel`, `upload_jar`, `submit`,
    /// `await_running`, `record`.
    pub kind: String,
    /// What is about to be done, e.g. the job id chosen before submitting.
    pub detail_json: String,
    pub at_ms: i64,
}

/// How a completed step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
}

/// The state of a journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum JournalStatus {
    /// The side effect may or may not have happened: recovery must find out.
    Pending,
    Succeeded,
    Failed,
}

impl JournalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalStatus::Pending => "pending",
            JournalStatus::Succeeded => "succeeded",
            JournalStatus::Failed => "failed",
        }
    }
}

impl From<StepStatus> for JournalStatus {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Succeeded => JournalStatus::Succeeded,
            StepStatus::Failed => JournalStatus::Failed,
        }
    }
}

/// A journal entry as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub id: i64,
    pub apply_id: String,
    pub job: String,
    pub seq: u32,
    pub kind: String,
    pub status: JournalStatus,
    /// The detail as written by [`Store::journal_intent`], never changed.
    pub intent_json: String,
    /// The latest detail: the intent, or what [`Store::journal_progress`] last recorded.
    pub detail_json: String,
    /// Set when the entry completes.
    pub result_json: Option<String>,
    pub created_at_ms: i64,
    pub progress_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// What weir currently knows about one job definition (mutable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub name: String,
    pub cluster: String,
    /// The Flink job id weir last submitted (or adopted) for this definition.
    pub current_job_id: Option<String>,
    /// The last applied `DesiredJob`, as JSON.
    pub spec_json: Option<String>,
    pub suspended: bool,
    pub last_savepoint: Option<String>,
    pub last_savepoint_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The definition was removed from the repo and its job torn down.
    pub deleted: bool,
}

/// Whether a snapshot is a savepoint or a retained checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum SavepointKind {
    Savepoint,
    Checkpoint,
}

impl SavepointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SavepointKind::Savepoint => "savepoint",
            SavepointKind::Checkpoint => "checkpoint",
        }
    }
}

/// A savepoint or retained checkpoint in a job's lineage (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointRecord {
    pub job: String,
    /// Where the snapshot is; identifies it.
    pub path: String,
    pub kind: SavepointKind,
    /// The Flink job that produced it.
    pub flink_job_id: String,
    /// The apply that took it, if weir did.
    pub produced_by_apply: Option<String>,
    pub at_ms: i64,
    /// Every time a job was started from this snapshot, oldest first. Normally empty when
    /// inserting; [`Store::mark_savepoint_restored`] appends.
    #[serde(default)]
    pub restores: Vec<SavepointRestore>,
}

/// One start of a job from a savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointRestore {
    pub apply_id: String,
    /// The Flink job id started from the snapshot.
    pub job_id: String,
    pub at_ms: i64,
}

/// Whether a history entry is a plan or an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum HistoryKind {
    Plan,
    Apply,
}

/// One line of `weir history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub kind: HistoryKind,
    pub id: String,
    /// When the plan was made or the apply started.
    pub at_ms: i64,
    pub revision: String,
    pub trigger: String,
    /// A plan's summary, or an apply's outcome (`succeeded`, `failed`, `interrupted`, or
    /// `unfinished` while it has none).
    pub summary_or_outcome: String,
    /// An apply's error.
    pub error: Option<String>,
    /// The plan an apply applied.
    pub plan_id: Option<String>,
    /// When an apply finished.
    pub finished_at_ms: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Store

/// A handle on the store; cheap to clone (all clones share one connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens (creating when missing) the store file at `path`, and its parent directory.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let owned = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| StoreError::CreateDir {
                    path: owned.clone(),
                    dir: dir.to_path_buf(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full)
            .pragma("fullfsync", "ON")
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(BUSY_TIMEOUT * 3)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: owned.clone(),
                source,
            })?;
        let store = Store {
            pool,
            path: Arc::new(owned),
        };
        store.enable_wal().await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a fresh, private in-memory store (for tests).
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Memory);
        // One connection that is never closed: the database lives as long as it does.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let store = Store {
            pool,
            path: Arc::new(path),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The store file (`:memory:` for in-memory stores).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection of this handle and its clones, waiting for running statements.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Switches the file to WAL mode (persistent). Changing the journal mode needs an exclusive
    /// lock that SQLite's busy handler does not wait for, so retry while another process holds a
    /// lock.
    async fn enable_wal(&self) -> Result<(), StoreError> {
        let start = Instant::now();
        loop {
            match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
                .fetch_one(&self.pool)
                .await
            {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
                Ok(mode) => return Err(self.rejected("open", Rejection::NotWal { mode })),
                Err(e) if is_busy(&e) && start.elapsed() < BUSY_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: self.path_buf(),
                        source,
                    });
                }
            }
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrate_err = |source| StoreError::Migrate {
            path: self.path_buf(),
            version: SCHEMA_VERSION,
            source,
        };
        let version = self.user_version(&self.pool).await.map_err(migrate_err)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if version > SCHEMA_VERSION {
            return Err(self.rejected(
                "open",
                Rejection::SchemaTooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                },
            ));
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(migrate_err)?;
        // Another process may have migrated between the check above and taking the lock.
        let version = self.user_version(&mut *tx).await.map_err(migrate_err)?;
        if version > SCHEMA_VERSION {
            return Err(self.rejected(
                "open",
                Rejection::SchemaTooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                },
            ));
        }
        for &(v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > version) {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migrate {
                    path: self.path_buf(),
                    version: v,
                    source,
                })?;
        }
        if version < SCHEMA_VERSION {
            sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .execute(&mut *tx)
                .await
                .map_err(migrate_err)?;
        }
        tx.commit().await.map_err(migrate_err)
    }

    async fn user_version<'e, E>(&self, executor: E) -> Result<i64, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = Sqlite>,
    {
        sqlx::query_scalar::<_, i64>("PRAGMA user_version")
            .fetch_one(executor)
            .await
    }

    // ---- audit: plans ------------------------------------------------------------------------

    /// Records a plan and the jobs it touches.
    pub async fn insert_plan(&self, p: &PlanRecord) -> Result<(), StoreError> {
        const OP: &str = "insert_plan";
        let mut tx = self.begin_immediate(OP).await?;
        sqlx::query(
            "INSERT INTO plans (id, created_at_ms, revision, triggered_by, summary, plan_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&p.id)
        .bind(p.created_at_ms)
        .bind(&p.revision)
        .bind(&p.trigger)
        .bind(&p.summary)
        .bind(&p.plan_json)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        for job in p.job_names.iter().collect::<BTreeSet<_>>() {
            sqlx::query("INSERT INTO plan_jobs (plan_id, job) VALUES (?1, ?2)")
                .bind(&p.id)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(self.query(OP))?;
        }
        tx.commit().await.map_err(self.query(OP))
    }

    pub async fn plan(&self, id: &str) -> Result<Option<PlanRecord>, StoreError> {
        const OP: &str = "plan";
        let Some(row) = sqlx::query(
            "SELECT id, created_at_ms, revision, triggered_by, summary, plan_json
             FROM plans WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(OP))?
        else {
            return Ok(None);
        };
        let job_names = self
            .names(
                "SELECT job FROM plan_jobs WHERE plan_id = ?1 ORDER BY job",
                id,
                OP,
            )
            .await?;
        let plan = plan_from_row(&row, job_names).map_err(self.query(OP))?;
        Ok(Some(plan))
    }

    // ---- audit: applies ----------------------------------------------------------------------

    /// Records the start of an apply. Its plan must exist.
    pub async fn insert_apply(&self, a: &NewApply) -> Result<(), StoreError> {
        const OP: &str = "insert_apply";
        let mut tx = self.begin_immediate(OP).await?;
        sqlx::query(
            "INSERT INTO applies (id, plan_id, started_at_ms, revision, triggered_by)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&a.id)
        .bind(&a.plan_id)
        .bind(a.started_at_ms)
        .bind(&a.revision)
        .bind(&a.trigger)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        for job in a.job_names.iter().collect::<BTreeSet<_>>() {
            sqlx::query("INSERT INTO apply_jobs (apply_id, job) VALUES (?1, ?2)")
                .bind(&a.id)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(self.query(OP))?;
        }
        tx.commit().await.map_err(self.query(OP))
    }

    /// Records how an apply ended. Refused when the apply is unknown or already finished.
    pub async fn finish_apply(
        &self,
        id: &str,
        outcome: ApplyOutcome,
        error: Option<&str>,
        finished_at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_apply";
        let done = sqlx::query(
            "UPDATE applies SET finished_at_ms = ?2, outcome = ?3, error = ?4
             WHERE id = ?1 AND finished_at_ms IS NULL",
        )
        .bind(id)
        .bind(finished_at_ms)
        .bind(outcome.as_str())
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self.rejected(OP, self.apply_rejection(id, OP).await?))
    }

    pub async fn apply(&self, id: &str) -> Result<Option<ApplyRecord>, StoreError> {
        const OP: &str = "apply";
        let row = sqlx::query(&format!("{APPLY_SELECT} WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(self.apply_with_jobs(&row, OP).await?)),
        }
    }

    /// Applies that never finished, oldest first: after a crash, recovery walks their journals.
    pub async fn unfinished_applies(&self) -> Result<Vec<ApplyRecord>, StoreError> {
        const OP: &str = "unfinished_applies";
        let rows = sqlx::query(&format!(
            "{APPLY_SELECT} WHERE finished_at_ms IS NULL ORDER BY started_at_ms, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.apply_with_jobs(row, OP).await?);
        }
        Ok(out)
    }

    async fn apply_with_jobs(
        &self,
        row: &SqliteRow,
        op: &'static str,
    ) -> Result<ApplyRecord, StoreError> {
        let mut apply = apply_from_row(row).map_err(self.query(op))?;
        apply.job_names = self
            .names(
                "SELECT job FROM apply_jobs WHERE apply_id = ?1 ORDER BY job",
                &apply.id,
                op,
            )
            .await?;
        Ok(apply)
    }

    async fn apply_rejection(&self, id: &str, op: &'static str) -> Result<Rejection, StoreError> {
        let finished = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT finished_at_ms FROM applies WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(op))?;
        Ok(match finished {
            None => Rejection::NotFound {
                what: "apply",
                id: id.to_string(),
            },
            Some(_) => Rejection::ApplyFinished { id: id.to_string() },
        })
    }

    // ---- journal -----------------------------------------------------------------------------

    /// Durably records that a side effect is about to be attempted, before attempting it.
    /// Returns the entry's id. Refused when the apply is unknown or already finished (so a
    /// process whose apply was declared interrupted by another cannot go on acting).
    pub async fn journal_intent(&self, e: &NewJournalEntry) -> Result<i64, StoreError> {
        const OP: &str = "journal_intent";
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO journal (apply_id, job, seq, kind, status, intent_json, detail_json,
                                  created_at_ms)
             SELECT id, ?2, ?3, ?4, 'pending', ?5, ?5, ?6
             FROM applies WHERE id = ?1 AND finished_at_ms IS NULL
             RETURNING id",
        )
        .bind(&e.apply_id)
        .bind(&e.job)
        .bind(i64::from(e.seq))
        .bind(&e.kind)
        .bind(&e.detail_json)
        .bind(e.at_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query(OP))?;
        match id {
            Some(id) => Ok(id),
            None => Err(self.rejected(OP, self.apply_rejection(&e.apply_id, OP).await?)),
        }
    }

    /// Replaces the detail of a pending entry (e.g. with the savepoint request id as soon as
    /// Flink returns it). The original detail stays in [`JournalEntry::intent_json`].
    pub async fn journal_progress(
        &self,
        entry_id: i64,
        detail_json: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "journal_progress";
        let done = sqlx::query(
            "UPDATE journal SET detail_json = ?2, progress_at_ms = ?3
             WHERE id = ?1 AND status = 'pending'",
        )
        .bind(entry_id)
        .bind(detail_json)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self.rejected(OP, self.entry_rejection(entry_id, OP).await?))
    }

    /// Completes a pending entry with the side effect's result.
    pub async fn journal_result(
        &self,
        entry_id: i64,
        status: StepStatus,
        result_json: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "journal_result";
        let done = sqlx::query(
            "UPDATE journal SET status = ?2, result_json = ?3, finished_at_ms = ?4
             WHERE id = ?1 AND status = 'pending'",
        )
        .bind(entry_id)
        .bind(JournalStatus::from(status).as_str())
        .bind(result_json)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self.rejected(OP, self.entry_rejection(entry_id, OP).await?))
    }

    /// The journal of one apply, ordered by job, seq, id (empty for an unknown apply).
    pub async fn journal(&self, apply_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        const OP: &str = "journal";
        let rows = sqlx::query(
            "SELECT id, apply_id, job, seq, kind, status, intent_json, detail_json, result_json,
                    created_at_ms, progress_at_ms, finished_at_ms
             FROM journal WHERE apply_id = ?1 ORDER BY job, seq, id",
        )
        .bind(apply_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                Ok(JournalEntry {
                    id: row.try_get("id")?,
                    apply_id: row.try_get("apply_id")?,
                    job: row.try_get("job")?,
                    seq: u32::try_from(seq).map_err(|e| sqlx::Error::ColumnDecode {
                        index: "seq".into(),
                        source: Box::new(e),
                    })?,
                    kind: row.try_get("kind")?,
                    status: row.try_get("status")?,
                    intent_json: row.try_get("intent_json")?,
                    detail_json: row.try_get("detail_json")?,
                    result_json: row.try_get("result_json")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    progress_at_ms: row.try_get("progress_at_ms")?,
                    finished_at_ms: row.try_get("finished_at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.query(OP))
    }

    async fn entry_rejection(&self, id: i64, op: &'static str) -> Result<Rejection, StoreError> {
        let exists = sqlx::query_scalar::<_, i64>("SELECT 1 FROM journal WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(op))?;
        Ok(match exists {
            None => Rejection::NotFound {
                what: "journal entry",
                id: id.to_string(),
            },
            Some(_) => Rejection::EntryComplete { id },
        })
    }

    // ---- current knowledge per job -----------------------------------------------------------

    /// Inserts or replaces what is known about a job.
    pub async fn upsert_job(&self, j: &JobRecord) -> Result<(), StoreError> {
        const OP: &str = "upsert_job";
        sqlx::query(
            "INSERT INTO jobs (name, cluster, current_job_id, spec_json, suspended, last_savepoint,
                               last_savepoint_at_ms, updated_at_ms, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (name) DO UPDATE SET
                 cluster = excluded.cluster,
                 current_job_id = excluded.current_job_id,
                 spec_json = excluded.spec_json,
                 suspended = excluded.suspended,
                 last_savepoint = excluded.last_savepoint,
                 last_savepoint_at_ms = excluded.last_savepoint_at_ms,
                 updated_at_ms = excluded.updated_at_ms,
                 deleted = excluded.deleted",
        )
        .bind(&j.name)
        .bind(&j.cluster)
        .bind(&j.current_job_id)
        .bind(&j.spec_json)
        .bind(j.suspended)
        .bind(&j.last_savepoint)
        .bind(j.last_savepoint_at_ms)
        .bind(j.updated_at_ms)
        .bind(j.deleted)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        Ok(())
    }

    pub async fn job(&self, name: &str) -> Result<Option<JobRecord>, StoreError> {
        const OP: &str = "job";
        let row = sqlx::query(&format!("{JOB_SELECT} WHERE name = ?1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))?;
        row.as_ref()
            .map(job_from_row)
            .transpose()
            .map_err(self.query(OP))
    }

    /// Every job record (including deleted ones), by name.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        const OP: &str = "jobs";
        let rows = sqlx::query(&format!("{JOB_SELECT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query(OP))?;
        rows.iter()
            .map(job_from_row)
            .collect::<Result<_, _>>()
            .map_err(self.query(OP))
    }

    // ---- savepoint lineage -------------------------------------------------------------------

    /// Records a savepoint or retained checkpoint (and any `restores` it carries). Recording the
    /// same path again with the same values is a no-op, so a resumed apply may repeat it; with
    /// different values it is refused.
    pub async fn insert_savepoint(&self, s: &SavepointRecord) -> Result<(), StoreError> {
        const OP: &str = "insert_savepoint";
        let mut tx = self.begin_immediate(OP).await?;
        let inserted = sqlx::query(
            "INSERT INTO savepoints (path, job, kind, flink_job_id, produced_by_apply, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (path) DO NOTHING",
        )
        .bind(&s.path)
        .bind(&s.job)
        .bind(s.kind.as_str())
        .bind(&s.flink_job_id)
        .bind(&s.produced_by_apply)
        .bind(s.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.query(OP))?;
        if inserted.rows_affected() == 0 {
            let row = sqlx::query(&format!("{SAVEPOINT_SELECT} WHERE path = ?1"))
                .bind(&s.path)
                .fetch_one(&mut *tx)
                .await
                .map_err(self.query(OP))?;
            let existing = savepoint_from_row(&row).map_err(self.query(OP))?;
            let same = existing.job == s.job
                && existing.kind == s.kind
                && existing.flink_job_id == s.flink_job_id
                && existing.produced_by_apply == s.produced_by_apply
                && existing.at_ms == s.at_ms;
            if !same {
                return Err(self.rejected(
                    OP,
                    Rejection::SavepointConflict {
                        path: s.path.clone(),
                    },
                ));
            }
            return Ok(());
        }
        for r in &s.restores {
            sqlx::query(
                "INSERT INTO savepoint_restores (path, apply_id, job_id, at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(&s.path)
            .bind(&r.apply_id)
            .bind(&r.job_id)
            .bind(r.at_ms)
            .execute(&mut *tx)
            .await
            .map_err(self.query(OP))?;
        }
        tx.commit().await.map_err(self.query(OP))
    }

    /// Records that `restored_by_apply` started Flink job `restored_job_id` from the savepoint
    /// at `path`. A savepoint may be restored any number of times.
    pub async fn mark_savepoint_restored(
        &self,
        path: &str,
        restored_by_apply: &str,
        restored_job_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "mark_savepoint_restored";
        let done = sqlx::query(
            "INSERT INTO savepoint_restores (path, apply_id, job_id, at_ms)
             SELECT ?1, ?2, ?3, ?4
             WHERE EXISTS (SELECT 1 FROM savepoints WHERE path = ?1)
               AND EXISTS (SELECT 1 FROM applies WHERE id = ?2)",
        )
        .bind(path)
        .bind(restored_by_apply)
        .bind(restored_job_id)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.query(OP))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let savepoint = sqlx::query_scalar::<_, i64>("SELECT 1 FROM savepoints WHERE path = ?1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query(OP))?;
        let rejection = match savepoint {
            None => Rejection::NotFound {
                what: "savepoint",
                id: path.to_string(),
            },
            Some(_) => Rejection::NotFound {
                what: "apply",
                id: restored_by_apply.to_string(),
            },
        };
        Err(self.rejected(OP, rejection))
    }

    /// A job's savepoints and retained checkpoints, newest first.
    pub async fn savepoints(&self, job: &str) -> Result<Vec<SavepointRecord>, StoreError> {
        const OP: &str = "savepoints";
        let rows = sqlx::query(&format!(
            "{SAVEPOINT_SELECT} WHERE job = ?1 ORDER BY at_ms DESC, rowid DESC"
        ))
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let mut out: Vec<SavepointRecord> = rows
            .iter()
            .map(savepoint_from_row)
            .collect::<Result<_, _>>()
            .map_err(self.query(OP))?;
        let restores = sqlx::query(
            "SELECT r.path, r.apply_id, r.job_id, r.at_ms
             FROM savepoint_restores r JOIN savepoints s ON s.path = r.path
             WHERE s.job = ?1 ORDER BY r.id",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query(OP))?;
        let mut by_path: BTreeMap<String, Vec<SavepointRestore>> = BTreeMap::new();
        for row in &restores {
            let (path, restore) = restore_from_row(row).map_err(self.query(OP))?;
            by_path.entry(path).or_default().push(restore);
        }
        for s in &mut out {
            s.restores = by_path.remove(&s.path).unwrap_or_default();
        }
        Ok(out)
    }

    // ---- history -----------------------------------------------------------------------------

    /// Plans and applies touching `job` (or all of them), newest first, at most `limit`.
    pub async fn history(
        &self,
        job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        const OP: &str = "history";
        let (plans, applies) = match job {
            Some(_) => (
                "FROM plan_jobs pj JOIN plans p ON p.id = pj.plan_id WHERE pj.job = ?1",
                "FROM apply_jobs aj JOIN applies a ON a.id = aj.apply_id WHERE aj.job = ?1",
            ),
            None => (
                "FROM plans p WHERE ?1 IS NULL",
                "FROM applies a WHERE ?1 IS NULL",
            ),
        };
        let sql = format!(
            "SELECT 'plan' AS kind, p.id AS id, p.created_at_ms AS at_ms, p.revision AS revision,
                    p.triggered_by AS triggered_by, p.summary AS summary_or_outcome,
                    NULL AS error, NULL AS plan_id, NULL AS finished_at_ms, 0 AS sort_rank
             {plans}
             UNION ALL
             SELECT 'apply', a.id, a.started_at_ms, a.revision, a.triggered_by,
                    COALESCE(a.outcome, 'unfinished'), a.error, a.plan_id, a.finished_at_ms, 1
             {applies}
             ORDER BY at_ms DESC, sort_rank DESC, id DESC
             LIMIT ?2"
        );
        let rows = sqlx::query(&sql)
            .bind(job)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query(OP))?;
        rows.iter()
            .map(|row| {
                Ok(HistoryEntry {
                    kind: row.try_get("kind")?,
                    id: row.try_get("id")?,
                    at_ms: row.try_get("at_ms")?,
                    revision: row.try_get("revision")?,
                    trigger: row.try_get("triggered_by")?,
                    summary_or_outcome: row.try_get("summary_or_outcome")?,
                    error: row.try_get("error")?,
                    plan_id: row.try_get("plan_id")?,
                    finished_at_ms: row.try_get("finished_at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.query(OP))
    }

    // ---- helpers -----------------------------------------------------------------------------

    fn path_buf(&self) -> PathBuf {
        self.path.as_ref().clone()
    }

    fn query(&self, op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path_buf(),
            op,
            source,
        }
    }

    fn rejected(&self, op: &'static str, source: Rejection) -> StoreError {
        StoreError::Rejected {
            path: self.path_buf(),
            op,
            source,
        }
    }

    /// A transaction holding the write lock from its start, so it never has to upgrade a read
    /// lock (which SQLite refuses with `SQLITE_BUSY` without waiting).
    async fn begin_immediate(
        &self,
        op: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query(op))
    }

    async fn names(
        &self,
        sql: &str,
        key: &str,
        op: &'static str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>(sql)
            .bind(key)
            .fetch_all(&self.pool)
            .await
            .map_err(self.query(op))
    }
}

const APPLY_SELECT: &str = "SELECT id, plan_id, started_at_ms, revision, triggered_by,
    finished_at_ms, outcome, error FROM applies";

const JOB_SELECT: &str = "SELECT name, cluster, current_job_id, spec_json, suspended,
    last_savepoint, last_savepoint_at_ms, updated_at_ms, deleted FROM jobs";

const SAVEPOINT_SELECT: &str =
    "SELECT path, job, kind, flink_job_id, produced_by_apply, at_ms FROM savepoints";

fn plan_from_row(row: &SqliteRow, job_names: Vec<String>) -> Result<PlanRecord, sqlx::Error> {
    Ok(PlanRecord {
        id: row.try_get("id")?,
        created_at_ms: row.try_get("created_at_ms")?,
        revision: row.try_get("revision")?,
        trigger: row.try_get("triggered_by")?,
        summary: row.try_get("summary")?,
        plan_json: row.try_get("plan_json")?,
        job_names,
    })
}

/// An apply row, without its job names.
fn apply_from_row(row: &SqliteRow) -> Result<ApplyRecord, sqlx::Error> {
    Ok(ApplyRecord {
        id: row.try_get("id")?,
        plan_id: row.try_get("plan_id")?,
        started_at_ms: row.try_get("started_at_ms")?,
        revision: row.try_get("revision")?,
        trigger: row.try_get("triggered_by")?,
        job_names: Vec::new(),
        finished_at_ms: row.try_get("finished_at_ms")?,
        outcome: row.try_get("outcome")?,
        error: row.try_get("error")?,
    })
}

fn restore_from_row(row: &SqliteRow) -> Result<(String, SavepointRestore), sqlx::Error> {
    Ok((
        row.try_get("path")?,
        SavepointRestore {
            apply_id: row.try_get("apply_id")?,
            job_id: row.try_get("job_id")?,
            at_ms: row.try_get("at_ms")?,
        },
    ))
}

fn job_from_row(row: &SqliteRow) -> Result<JobRecord, sqlx::Error> {
    Ok(JobRecord {
        name: row.try_get("name")?,
        cluster: row.try_get("cluster")?,
        current_job_id: row.try_get("current_job_id")?,
        spec_json: row.try_get("spec_json")?,
        suspended: row.try_get("suspended")?,
        last_savepoint: row.try_get("last_savepoint")?,
        last_savepoint_at_ms: row.try_get("last_savepoint_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        deleted: row.try_get("deleted")?,
    })
}

fn savepoint_from_row(row: &SqliteRow) -> Result<SavepointRecord, sqlx::Error> {
    Ok(SavepointRecord {
        job: row.try_get("job")?,
        path: row.try_get("path")?,
        kind: row.try_get("kind")?,
        flink_job_id: row.try_get("flink_job_id")?,
        produced_by_apply: row.try_get("produced_by_apply")?,
        at_ms: row.try_get("at_ms")?,
        restores: Vec::new(),
    })
}

/// Whether SQLite reported `SQLITE_BUSY` (or one of its extended codes).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

pub mod audit;
mod daemon;

mod notify;

pub mod retention;

#[cfg(test)]
mod tests;
