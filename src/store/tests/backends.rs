//! PostgreSQL beside SQLite: twin migrations, URLs without passwords, `weir store copy`.

use super::*;

// ---- PostgreSQL twins -------------------------------------------------------------------------

/// Every SQLite migration has a PostgreSQL twin with the same number (add both together).
#[test]
fn every_sqlite_migration_has_a_postgres_twin() {
    let sqlite: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    let postgres: Vec<i64> = PG_MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(
        sqlite, postgres,
        "src/store/migrations/NNNN_*.sql and src/store/migrations/postgres/NNNN_*.sql must \
         come in pairs"
    );
}

#[test]
fn a_postgres_url_is_shown_without_its_password() {
    let shown = location_display(Path::new("postgres://weir:hunter2@db:5432/weir"));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("db:5432/weir"), "{shown}");
    assert!(is_postgres_location(Path::new("postgresql://db/weir")));
    assert!(!is_postgres_location(Path::new("/var/lib/weir/state.db")));
}

#[tokio::test]
async fn a_password_in_the_url_is_refused_without_being_echoed() {
    let err = Store::open(Path::new("postgres://weir:hunter2@127.0.0.1:1/weir"))
        .await
        .unwrap_err();
    let text = format!("{err:#} {:?}", std::error::Error::source(&err));
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("PGPASSWORD"), "{text}");
}

// ---- store copy -------------------------------------------------------------------------------

/// A table added by a migration must be copied by `weir store copy` (or listed as holding no
/// records).
#[tokio::test]
async fn store_copy_knows_every_table_of_the_schema() {
    let store = Store::open_in_memory().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    for table in tables {
        assert!(
            copy::TABLES.iter().any(|t| t.0 == table) || copy::NOT_COPIED.contains(&table.as_str()),
            "table {table} is not in store::copy::TABLES"
        );
    }
}

#[tokio::test]
async fn copy_preserves_every_record_and_refuses_a_non_empty_target() {
    let source = seeded().await;
    source.upsert_job(&job_record("a", 1)).await.unwrap();
    let target = Store::open_for_test().await;
    let report = source.copy_into(&target).await.unwrap();
    assert!(report.rows() > 0);
    assert_eq!(
        source.history(None, 100).await.unwrap(),
        target.history(None, 100).await.unwrap()
    );
    assert_eq!(source.jobs().await.unwrap(), target.jobs().await.unwrap());
    for apply in ["a1", "a2"] {
        assert_eq!(
            source.journal(apply).await.unwrap(),
            target.journal(apply).await.unwrap(),
            "{apply}"
        );
    }
    let again = source.copy_into(&target).await.unwrap_err();
    assert!(
        matches!(again.rejection(), Some(Rejection::Copy(_))),
        "{again:#}"
    );
}

// ---- SQLite connections -----------------------------------------------------------------------

/// A store file's pool closes connections nobody used for a while (each holds caches an idle
/// daemon does not need), and opens them again when asked.
#[tokio::test]
async fn a_store_file_closes_the_connections_it_does_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = backend::sqlite_url(&dir.path().join("state.db"));
    let unused = Duration::from_millis(200);
    let pool = backend::sqlite_pool(&url, 4, Some(unused)).await.unwrap();
    // Three at once: the pool opens three connections.
    let held = futures::future::join_all((0..3).map(|_| pool.acquire())).await;
    let held: Vec<_> = held.into_iter().map(Result::unwrap).collect();
    assert_eq!(pool.size(), 3);
    drop(held);
    let closed = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.size() > 0 {
        assert!(
            tokio::time::Instant::now() < closed,
            "{} still open",
            pool.size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    // The store itself: unused connections close after `SQLITE_IDLE_TIMEOUT`.
    let store = Store::open(&dir.path().join("store.db")).await.unwrap();
    assert_eq!(
        store.pool.options().get_idle_timeout(),
        Some(backend::SQLITE_IDLE_TIMEOUT)
    );
    assert_eq!(store.pool.options().get_min_connections(), 0);
}
