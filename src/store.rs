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

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

pub mod audit;
mod daemon;
mod jobs;
pub mod journal;
pub mod lifecycle;
pub mod notify;
mod plans;
mod preflight;
mod records;
pub mod retention;
mod trigger;

pub use journal::{
    JobRef, JournalEntry, JournalStatus, NewJournalEntry, StepDetail, StepKind, StepResult,
    StepStatus, StopDetail, SubmitDetail,
};
pub use preflight::PreflightKey;
pub use records::{
    ApplyOutcome, ApplyRecord, HistoryEntry, HistoryKind, JobRecord, NewApply, PlanRecord,
    SavepointKind, SavepointRecord, SavepointRestore,
};
pub use trigger::Trigger;

/// How long one connection waits for another connection (or process) holding the write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ordered schema migrations; the schema version of a file is its `PRAGMA user_version`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("store/migrations/0001_initial.sql")),
    (2, include_str!("store/migrations/0002_audit.sql")),
    (3, include_str!("store/migrations/0003_notify.sql")),
    (4, include_str!("store/migrations/0004_daemon.sql")),
    (5, include_str!("store/migrations/0005_retention.sql")),
    (6, include_str!("store/migrations/0006_preflight.sql")),
    (
        9,
        include_str!("store/migrations/0009_savepoint_lifecycle.sql"),
    ),
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

/// Whether SQLite reported `SQLITE_BUSY` (or one of its extended codes).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

#[cfg(test)]
mod tests;
