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

/// A Supabase project's own `public.assets` (other columns, a row) and `public.rooms`.
const SUPABASE_TABLES: &str = "
    CREATE TABLE public.assets (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        title text NOT NULL,
        livepeer_asset_id text,
        user_id uuid,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO public.assets (title, livepeer_asset_id) VALUES ('my first stream', 'lp-1');
    CREATE TABLE public.rooms (slug text PRIMARY KEY);";

/// Every column of every table in `schema`, and its rows as text: what must not change.
async fn tables_of(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let columns = client
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type
                 FROM information_schema.columns WHERE table_schema = $1
                 ORDER BY table_name, ordinal_position",
            &[&schema],
        )
        .await
        .expect("columns");
    let mut seen: Vec<String> = columns.iter().map(|row| row.get(0)).collect();
    let rows = client
        .query(
            "SELECT a::text FROM public.assets a UNION ALL SELECT r::text FROM public.rooms r",
            &[],
        )
        .await
        .expect("rows");
    seen.extend(rows.iter().map(|row| row.get::<_, String>(0)));
    seen
}

#[tokio::test]
async fn a_custom_schema_beside_supabases_own_assets_holds_everything_and_touches_nothing() {
    use clap::Parser;
    use roomtape_shared::clock::Clock;
    use roomtape_tests::api_client::Api;
    use roomtape_tests::apps::wait_ready;
    use roomtape_tests::fixtures::Egress;
    use roomtape_tests::livekit::{post_webhook, sign_webhook};
    use roomtape_tests::{eventually, spawn_ingestor, spawn_processor};
    use std::time::Duration;

    let test = TestEnv::new().await;
    let admin = test.database.client().await;
    admin
        .batch_execute(SUPABASE_TABLES)
        .await
        .expect("the project's tables");
    let before = tables_of(&admin, "public").await;

    let in_schema = [("DATABASE_SCHEMA", "roomtape")];
    let env = test.env_with(&in_schema);
    let ingestor = spawn_ingestor(&env, Clock::System);
    let processor = spawn_processor(&env).await; // migrates at start-up
    wait_ready(&ingestor).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_schema", "stream-123", &test.bucket.profile);
    test.bucket
        .put(&egress.key, &[7u8; 4096], "video/mp4")
        .await;
    for body in [egress.started("EV_1"), egress.ended("EV_2")] {
        let response =
            post_webhook(&ingestor, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
        assert_eq!(response.status(), 200);
    }
    eventually(Duration::from_secs(20), "the recording ready", || async {
        let row = admin
            .query_opt(
                "SELECT 1 FROM roomtape.recordings r JOIN roomtape.assets a USING (egress_id)
                     WHERE r.egress_id = 'EG_schema' AND r.status = 'ready'",
                &[],
            )
            .await
            .expect("query");
        row.map(|_| ())
    })
    .await;

    assert_eq!(
        tables_of(&admin, "public").await,
        before,
        "public as it was"
    );
    let history: i64 = admin
        .query_one("SELECT count(*) FROM roomtape.refinery_schema_history", &[])
        .await
        .expect("the history is in the schema")
        .get(0);
    assert_eq!(usize::try_from(history).expect("count"), migration_files());
    let functions: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'roomtape' AND p.proname LIKE 'room_%'",
            &[],
        )
        .await
        .expect("functions")
        .get(0);
    assert_eq!(functions, 2, "room_peak and room_present_count");

    let api = Api::start(&test, &in_schema).await;
    let (status, page) = api.get("/api/v1/recordings?room=stream-123").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["egress_id"], "EG_schema", "{page}");
    let (status, listed) = api.get("/api/v1/rooms/stream-123/recordings/").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["recording_id"], "EG_schema", "{listed}");

    let mut out = Vec::new();
    let cli = roomtape_cli::Cli::parse_from(["roomtape", "recordings", "list", "--json"]);
    let code = roomtape_cli::execute(cli, &env, &mut out, false).await;
    let out = String::from_utf8(out).expect("utf-8");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("EG_schema"), "{out}");
}
