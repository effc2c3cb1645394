//! The two databases a store can live in: an embedded SQLite file (the default, one process)
//! or a PostgreSQL database (several `weir serve` processes, one leader).
//!
//! Every query is written once, with `$N` placeholders (SQLite accepts them too), through
//! sqlx's `Any` driver; the few statements that differ are chosen by [`Backend`].
//!
//! # PostgreSQL location and password
//!
//! `--state postgres://USER@HOST:PORT/DB` (or `WEIR_STATE`, or `store:` in the daemon config).
//! A password written into the URL is refused, so it can never reach a log, an error or the
//! process list: it comes from `PGPASSWORD`, from the file named by `WEIR_PG_PASSWORD_FILE`
//! (its first line), or from `~/.pgpass`. Other libpq variables (`PGSSLMODE`, ...) and URL
//! query parameters (`?sslmode=require`) work as usual.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Which database holds a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A subquery of the strings of the JSON array bound as `$n`: a list of any length as one
    /// parameter (`… WHERE id IN ({})`), unnested as each database does it.
    pub(super) fn json_strings(self, n: usize) -> String {
        match self {
            Backend::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Backend::Postgres => format!("SELECT jsonb_array_elements_text(${n}::jsonb)"),
        }
    }
}

/// A boolean stored as INTEGER 0/1 in both databases (SQLite has no boolean type; the
/// PostgreSQL twin keeps the same column type so a copy is value for value).
#[derive(Debug, Clone, Copy, sqlx::Type)]
#[sqlx(transparent)]
pub struct SqlBool(i64);

impl From<SqlBool> for bool {
    fn from(b: SqlBool) -> bool {
        b.0 != 0
    }
}

/// An optional small number (an HTTP status) stored as a nullable INTEGER.
#[derive(Debug, Clone, Copy, sqlx::Type)]
#[sqlx(transparent)]
pub struct SqlOptU16(Option<i64>);

impl TryFrom<SqlOptU16> for Option<u16> {
    type Error = std::num::TryFromIntError;

    fn try_from(n: SqlOptU16) -> Result<Option<u16>, Self::Error> {
        n.0.map(u16::try_from).transpose()
    }
}

/// Whether `--state` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_location(location: &Path) -> bool {
    let s = location.to_string_lossy();
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `location` as it may be shown: a URL loses any password (a file path is unchanged).
pub fn location_display(location: &Path) -> String {
    if !is_postgres_location(location) {
        return location.display().to_string();
    }
    match url::Url::parse(&location.to_string_lossy()) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("REDACTED"));
            }
            url.to_string()
        }
        Err(_) => "postgres://(unparsable URL)".to_string(),
    }
}

/// The URL sqlx connects with: the location plus the password from `WEIR_PG_PASSWORD_FILE`.
/// Held in memory only; never shown.
pub(super) fn postgres_url(location: &Path) -> Result<String, sqlx::Error> {
    let text = location.to_string_lossy();
    let mut url = url::Url::parse(&text).map_err(|e| {
        sqlx::Error::Configuration(format!("not a valid postgres:// URL: {e}").into())
    })?;
    if url.password().is_some() {
        return Err(sqlx::Error::Configuration(
            "the URL holds a password; give it in PGPASSWORD or in a file named by \
             WEIR_PG_PASSWORD_FILE instead, so it never appears in logs or the process list"
                .into(),
        ));
    }
    if let Some(file) = std::env::var_os("WEIR_PG_PASSWORD_FILE") {
        let read = std::fs::read_to_string(&file).map_err(|e| {
            sqlx::Error::Configuration(
                format!(
                    "cannot read WEIR_PG_PASSWORD_FILE {}: {e}",
                    Path::new(&file).display()
                )
                .into(),
            )
        })?;
        let password = read.lines().next().unwrap_or_default();
        url.set_password(Some(password))
            .map_err(|()| sqlx::Error::Configuration("the URL cannot hold a password".into()))?;
    }
    Ok(url.to_string())
}

fn install_drivers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(sqlx::any::install_default_drivers);
}

/// `sqlite://PATH?mode=rwc` with the characters the URL parser would misread escaped.
pub(super) fn sqlite_url(path: &Path) -> String {
    let escaped = path
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{escaped}?mode=rwc")
}

/// Every connection: foreign keys on, full fsync on commit, a wait for other writers, and a
/// page cache of 256 KiB instead of SQLite's 2 MiB. A pool keeps up to `MAX_CONNECTIONS` open
/// and each filled its cache with the whole store (4.4 MiB of an idle daemon's heap at 1,000
/// jobs; BENCHMARKS.md, issue 14, seventh pass); a page it no longer holds is read again from
/// the operating system's cache.
const SQLITE_SESSION: &str = "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
     PRAGMA fullfsync = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -256;";

/// How long an unused connection to a store file stays open. Each holds its page cache, its
/// parsed schema and its prepared statements (~0.5 MiB once a daemon has used it), and opening
/// one again costs about a millisecond; an idle daemon holds none (sqlx's default keeps them
/// ten minutes).
pub(super) const SQLITE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool on SQLite `url`. `close_unused_after`: how long an unused connection stays open;
/// `None` keeps one for good (an in-memory database lives as long as its connection).
pub(super) async fn sqlite_pool(
    url: &str,
    max: u32,
    close_unused_after: Option<Duration>,
) -> Result<AnyPool, sqlx::Error> {
    install_drivers();
    let options = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(super::BUSY_TIMEOUT * 3)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, SQLITE_SESSION).await?;
                Ok(())
            })
        });
    let options = match close_unused_after {
        Some(unused) => options.min_connections(0).idle_timeout(Some(unused)),
        None => options
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None),
    };
    options.connect(url).await
}

pub(super) async fn postgres_pool(
    url: &str,
    max: u32,
    fence: Arc<AtomicI64>,
) -> Result<AnyPool, sqlx::Error> {
    install_drivers();
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        // A store that cannot be reached fails a call quickly instead of hanging the daemon.
        .acquire_timeout(Duration::from_secs(5))
        // Each use of a connection claims the daemon's current epoch, so the fencing triggers
        // judge every write by who this daemon is now (see `Store::set_fence`).
        // (sqlx runs `after_connect` for a new connection, `before_acquire` for an idle one.)
        .after_connect({
            let fence = fence.clone();
            move |conn, _meta| {
                let epoch = fence.load(Ordering::SeqCst);
                Box::pin(async move { claim_epoch(conn, epoch).await })
            }
        })
        .before_acquire(move |conn, _meta| {
            let epoch = fence.load(Ordering::SeqCst);
            Box::pin(async move { claim_epoch(conn, epoch).await.map(|()| true) })
        })
        .connect(url)
        .await
}

async fn claim_epoch(conn: &mut sqlx::AnyConnection, epoch: i64) -> Result<(), sqlx::Error> {
    if epoch != super::lease::UNFENCED {
        let set = format!("SET weir.epoch = '{epoch}'");
        sqlx::Executor::execute(&mut *conn, set.as_str()).await?;
    }
    Ok(())
}

/// The schema version of a PostgreSQL store (SQLite keeps it in `PRAGMA user_version`).
pub(super) const PG_VERSION_TABLE: &str = "
CREATE TABLE IF NOT EXISTS weir_schema (
    one     BIGINT NOT NULL PRIMARY KEY DEFAULT 1 CHECK (one = 1),
    version BIGINT NOT NULL
);
INSERT INTO weir_schema (one, version) VALUES (1, 0) ON CONFLICT (one) DO NOTHING;";

/// Serialises multi-statement writes (and migrations) as SQLite's `BEGIN IMMEDIATE` does: a
/// transaction-scoped advisory lock (the key is "weir" in ASCII).
pub(super) const PG_WRITE_LOCK: &str = "SELECT 1 FROM pg_advisory_xact_lock(2003134834)";

/// PostgreSQL only: the leader lease and the trigger inbox followers fill for the leader.
pub(super) const PG_HA_SCHEMA: &str = include_str!("migrations/postgres/ha.sql");

/// Stores a unit-variant enum as the TEXT of its serde name (the same `snake_case` spelling
/// the SQLite schema's CHECK constraints list), through the `Any` driver.
macro_rules! text_enum {
    ($($t:ty),* $(,)?) => {$(
        impl sqlx::Type<sqlx::Any> for $t {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text = match serde_json::to_value(self)? {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                <String as sqlx::Encode<'q, sqlx::Any>>::encode(text, buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $t {
            fn decode(
                value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                Ok(serde_json::from_value(serde_json::Value::String(text))?)
            }
        }
    )*};
}

text_enum!(
    super::ApplyOutcome,
    super::SavepointKind,
    super::HistoryKind,
    super::JournalStatus,
    super::StepKind,
    super::audit::RecordKind,
    super::audit::ApplyEventKind,
    super::notify::DeliveryStatus,
    super::lifecycle::OperationKind,
    super::lifecycle::OperationOrigin,
    super::lifecycle::OperationOutcome,
);
