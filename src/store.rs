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
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::{Any, Executor, Transaction};

pub mod audit;
mod backend;
pub mod copy;
mod daemon;
mod jobs;
pub mod journal;
mod lease;
pub mod lifecycle;
pub mod notify;
mod plans;
mod preflight;
mod records;
pub mod retention;
mod rollback;
pub mod runs;
mod trigger;

pub use backend::{Backend, SqlBool, is_postgres_location, location_display};
pub use journal::{
    JobRef, JournalEntry, JournalStatus, NewJournalEntry, RollbackDetail, StepDetail, StepKind,
    StepResult, StepStatus, StopDetail, SubmitDetail,
};
pub use lease::LeaseHolder;
pub use preflight::{PreflightKey, PreflightsByFingerprint};
pub use records::{
    ApplyOutcome, ApplyRecord, HistoryEntry, HistoryKind, JobRecord, NewApply, PlanRecord,
    SavepointKind, SavepointRecord, SavepointRestore,
};
pub use rollback::RollbackTarget;
pub use trigger::Trigger;

/// How long one connection waits for another connection (or process) holding the write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ordered schema migrations; the schema version of a file is its `PRAGMA user_version`.
///
/// Every SQLite migration has a PostgreSQL twin with the same number in [`PG_MIGRATIONS`]
/// (`store/migrations/postgres/`) giving the same guarantees; a test fails when the two lists
/// differ in length or numbers.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("store/migrations/0001_initial.sql")),
    (2, include_str!("store/migrations/0002_audit.sql")),
    (3, include_str!("store/migrations/0003_notify.sql")),
    (4, include_str!("store/migrations/0004_daemon.sql")),
    (5, include_str!("store/migrations/0005_retention.sql")),
    (6, include_str!("store/migrations/0006_preflight.sql")),
    (7, include_str!("store/migrations/0007_runs.sql")),
    (8, include_str!("store/migrations/0008_rollback.sql")),
    (
        9,
        include_str!("store/migrations/0009_savepoint_lifecycle.sql"),
    ),
];

/// The PostgreSQL twins of [`MIGRATIONS`], number for number.
const PG_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("store/migrations/postgres/0001_initial.sql"),
    ),
    (2, include_str!("store/migrations/postgres/0002_audit.sql")),
    (3, include_str!("store/migrations/postgres/0003_notify.sql")),
    (4, include_str!("store/migrations/postgres/0004_daemon.sql")),
    (
        5,
        include_str!("store/migrations/postgres/0005_retention.sql"),
    ),
    (
        6,
        include_str!("store/migrations/postgres/0006_preflight.sql"),
    ),
    (7, include_str!("store/migrations/postgres/0007_runs.sql")),
    (
        8,
        include_str!("store/migrations/postgres/0008_rollback.sql"),
    ),
    (
        9,
        include_str!("store/migrations/postgres/0009_savepoint_lifecycle.sql"),
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
    #[error(transparent)]
    Copy(copy::CopyRefusal),
}

// ---------------------------------------------------------------------------------------------
// Store

/// A handle on the store; cheap to clone (all clones share one connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// The store file, or the PostgreSQL URL without any password (what errors name).
    path: Arc<PathBuf>,
    backend: Backend,
    /// The leader epoch every PostgreSQL connection claims (`weir.epoch`), see
    /// [`Store::set_fence`]; shared by all clones.
    fence: Arc<std::sync::atomic::AtomicI64>,
}

impl Store {
    /// Opens (creating when missing) the store at `path`: a SQLite file (and its parent
    /// directory), or a PostgreSQL database when `path` is a `postgres://` URL (see
    /// [`backend`] for where its password comes from).
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if is_postgres_location(path) {
            return Store::open_postgres(path).await;
        }
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
        let pool = backend::sqlite_pool(
            &backend::sqlite_url(path),
            MAX_CONNECTIONS,
            Some(backend::SQLITE_IDLE_TIMEOUT),
        )
        .await
        .map_err(|source| StoreError::Open {
            path: owned.clone(),
            source,
        })?;
        let store = Store {
            pool,
            path: Arc::new(owned),
            backend: Backend::Sqlite,
            fence: Arc::new(lease::UNFENCED.into()),
        };
        store.enable_wal().await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a fresh, private in-memory store (for tests).
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        // One connection that is never closed: the database lives as long as it does.
        let pool = backend::sqlite_pool("sqlite::memory:", 1, None)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let store = Store {
            pool,
            path: Arc::new(path),
            backend: Backend::Sqlite,
            fence: Arc::new(lease::UNFENCED.into()),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn open_postgres(location: &Path) -> Result<Store, StoreError> {
        let shown = PathBuf::from(location_display(location));
        let url = backend::postgres_url(location).map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        let fence = Arc::new(std::sync::atomic::AtomicI64::new(lease::UNFENCED));
        let pool = backend::postgres_pool(&url, MAX_CONNECTIONS, fence.clone())
            .await
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        let store = Store {
            pool,
            path: Arc::new(shown),
            backend: Backend::Postgres,
            fence,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The store file (`:memory:` for in-memory stores; the URL without password for
    /// PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which database holds this store.
    pub fn backend(&self) -> Backend {
        self.backend
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

    fn migrations(&self) -> &'static [(i64, &'static str)] {
        match self.backend {
            Backend::Sqlite => MIGRATIONS,
            Backend::Postgres => PG_MIGRATIONS,
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrate_err = |source| StoreError::Migrate {
            path: self.path_buf(),
            version: SCHEMA_VERSION,
            source,
        };
        let too_new = |found| {
            self.rejected(
                "open",
                Rejection::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                },
            )
        };
        if self.backend == Backend::Postgres {
            return self.migrate_postgres().await;
        }
        let version = self.user_version(&self.pool).await.map_err(migrate_err)?;
        let latest = self.migrations().last().map_or(0, |m| m.0);
        if version == latest {
            return Ok(());
        }
        if version > latest {
            return Err(too_new(version));
        }
        let mut tx = self.begin_immediate("migrate").await.map_err(|e| match e {
            StoreError::Query { source, .. } => migrate_err(source),
            other => other,
        })?;
        // Another process may have migrated between the check above and taking the lock.
        let version = self.user_version(&mut *tx).await.map_err(migrate_err)?;
        if version > latest {
            return Err(too_new(version));
        }
        for &(v, sql) in self.migrations().iter().filter(|(v, _)| *v > version) {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migrate {
                    path: self.path_buf(),
                    version: v,
                    source,
                })?;
        }
        if version < latest {
            let set = match self.backend {
                Backend::Sqlite => format!("PRAGMA user_version = {latest}"),
                Backend::Postgres => format!("UPDATE weir_schema SET version = {latest}"),
            };
            sqlx::raw_sql(&set)
                .execute(&mut *tx)
                .await
                .map_err(migrate_err)?;
        }
        tx.commit().await.map_err(migrate_err)
    }

    /// PostgreSQL: everything under the write lock, in one transaction, since replicas start
    /// together (concurrent `CREATE ... IF NOT EXISTS` races in PostgreSQL's catalog).
    async fn migrate_postgres(&self) -> Result<(), StoreError> {
        let migrate_err = |source| StoreError::Migrate {
            path: self.path_buf(),
            version: SCHEMA_VERSION,
            source,
        };
        let mut tx = self.begin_immediate("migrate").await.map_err(|e| match e {
            StoreError::Query { source, .. } => migrate_err(source),
            other => other,
        })?;
        sqlx::raw_sql(backend::PG_VERSION_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(migrate_err)?;
        let version = self.user_version(&mut *tx).await.map_err(migrate_err)?;
        let latest = self.migrations().last().map_or(0, |m| m.0);
        if version > latest {
            return Err(self.rejected(
                "open",
                Rejection::SchemaTooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                },
            ));
        }
        for &(v, sql) in self.migrations().iter().filter(|(v, _)| *v > version) {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migrate {
                    path: self.path_buf(),
                    version: v,
                    source,
                })?;
        }
        if version < latest {
            sqlx::raw_sql(&format!("UPDATE weir_schema SET version = {latest}"))
                .execute(&mut *tx)
                .await
                .map_err(migrate_err)?;
        }
        // The leader lease and the trigger inbox exist only on PostgreSQL (a SQLite store has
        // one process, always the leader); outside the numbered twins, created once.
        let ha: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_trigger WHERE tgname = 'jobs_fenced'")
                .fetch_one(&mut *tx)
                .await
                .map_err(migrate_err)?;
        if ha == 0 {
            sqlx::raw_sql(backend::PG_HA_SCHEMA)
                .execute(&mut *tx)
                .await
                .map_err(migrate_err)?;
        }
        tx.commit().await.map_err(migrate_err)
    }

    async fn user_version<'e, E>(&self, executor: E) -> Result<i64, sqlx::Error>
    where
        E: Executor<'e, Database = Any>,
    {
        let sql = match self.backend {
            Backend::Sqlite => "PRAGMA user_version",
            Backend::Postgres => "SELECT version FROM weir_schema",
        };
        sqlx::query_scalar::<_, i64>(sql).fetch_one(executor).await
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
    /// lock (which SQLite refuses with `SQLITE_BUSY` without waiting). On PostgreSQL the same
    /// one-writer-at-a-time rule is a transaction-scoped advisory lock taken first.
    async fn begin_immediate(
        &self,
        op: &'static str,
    ) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(self.query(op)),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await.map_err(self.query(op))?;
                sqlx::query(backend::PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query(op))?;
                Ok(tx)
            }
        }
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

/// The store of a unit test: in memory, or a fresh PostgreSQL database when the tests run with
/// `WEIR_TEST_STORE=postgres` (see `testing::postgres`).
#[cfg(test)]
impl Store {
    pub(crate) async fn open_for_test() -> Store {
        if crate::testing::postgres::store_tests_on_postgres() {
            let url = crate::testing::postgres::fresh_database().await;
            Store::open(Path::new(&url)).await.unwrap()
        } else {
            Store::open_in_memory().await.unwrap()
        }
    }
}

#[cfg(test)]
mod tests;
