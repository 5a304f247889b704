//! The embedded schema: applies cleanly, is idempotent, and survives concurrent runners.

use roomtape_shared::db;
use roomtape_tests::TestEnv;

fn migration_files() -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/migrations");
    std::fs::read_dir(dir).expect("migrations dir").count()
}

const TABLES: [&str; 4] = ["recordings", "assets", "rooms", "webhook_events"];

#[tokio::test]
async fn migrations_create_the_contract_tables_and_are_idempotent() {
    let test = TestEnv::new().await;
    let first = db::migrate(&test.database.settings)
        .await
        .expect("first run");
    let second = db::migrate(&test.database.settings)
        .await
        .expect("second run");
    assert_eq!(
        first,
        migration_files(),
        "the first run applies every migration"
    );
    assert_eq!(second, 0, "a second run applies nothing");

    let client = test.database.client().await;
    for table in TABLES {
        let row = client
            .query_one(
                "SELECT to_regclass($1)::text",
                &[&format!("public.{table}")],
            )
            .await
            .expect("query");
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
}

#[tokio::test]
async fn two_processes_migrating_at_once_both_succeed() {
    let test = TestEnv::new().await;
    let settings = &test.database.settings;
    let (a, b) = tokio::join!(db::migrate(settings), db::migrate(settings));
    let applied = a.expect("first runner") + b.expect("second runner");
    assert_eq!(
        applied,
        migration_files(),
        "together they applied each migration once"
    );
    assert_eq!(db::migrate(settings).await.expect("third runner"), 0);
    let client = test.database.client().await;
    let history: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    assert_eq!(usize::try_from(history).expect("count"), applied);
}

#[tokio::test]
async fn status_cannot_take_values_outside_the_contract() {
    let test = TestEnv::new().await;
    db::migrate(&test.database.settings).await.expect("migrate");
    let client = test.database.client().await;
    let error = client
        .execute(
            "INSERT INTO recordings (egress_id, room_name, status) VALUES ('EG_x', 'r', 'done')",
            &[],
        )
        .await
        .expect_err("unknown status rejected");
    let code = error.as_db_error().map(|e| e.code().clone());
    assert_eq!(
        code,
        Some(tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{error:?}"
    );
}
