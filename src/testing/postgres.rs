//! A fresh PostgreSQL database per test, on the server `scripts/postgres.sh` started (its URL in
//! `WEIR_TEST_PG_URL`).

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

/// Selects the backend of the store unit tests: `WEIR_TEST_STORE=postgres` runs them on
/// PostgreSQL (scripts/test.sh runs them a second time so), anything else on SQLite.
pub fn store_tests_on_postgres() -> bool {
    std::env::var("WEIR_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The admin URL of the test server; panics (the test fails, never skips) without it.
pub fn server_url() -> String {
    std::env::var("WEIR_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("WEIR_TEST_PG_URL is not set: start PostgreSQL with scripts/postgres.sh")
    })
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn fresh_database() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let admin = server_url();
    let name = format!(
        "weir_t_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {admin}: {e}"));
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).expect("WEIR_TEST_PG_URL is a URL");
    url.set_path(&name);
    url.to_string()
}
