//! A fresh PostgreSQL database per test, dropped afterwards.

use roomtape_shared::config::{DatabaseSchema, DatabaseSettings};
use tokio_postgres::NoTls;

pub struct TestDatabase {
    pub name: String,
    admin_url: String,
    pub settings: DatabaseSettings,
}

impl TestDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("roomtape_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_client(admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let mut config: tokio_postgres::Config = admin_url.parse().expect("admin url");
        config.dbname(&name);
        Self {
            name,
            admin_url: admin_url.to_owned(),
            settings: DatabaseSettings {
                config,
                pool_size: 8,
                schema: DatabaseSchema::default(),
            },
        }
    }

    /// `DATABASE_URL` for this database.
    pub fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    /// A room's status, `participant_count` and `max_participants`.
    pub async fn room(&self, name: &str) -> (String, i32, i32) {
        let row = self
            .client()
            .await
            .query_one(
                "SELECT status, participant_count, max_participants FROM rooms WHERE room_name = $1",
                &[&name],
            )
            .await
            .expect("room row");
        (row.get(0), row.get(1), row.get(2))
    }

    /// How many `recordings` and `assets` rows the egress has.
    pub async fn recording_rows(&self, egress_id: &str) -> i64 {
        let sql = "SELECT (SELECT count(*) FROM recordings WHERE egress_id = $1)
                        + (SELECT count(*) FROM assets WHERE egress_id = $1)";
        self.client()
            .await
            .query_one(sql, &[&egress_id])
            .await
            .expect("count")
            .get(0)
    }

    /// The one `bigint` a query returns (a count).
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .expect(sql)
            .get(0)
    }

    /// The egress's recording row as JSON, if there is one.
    pub async fn recording(&self, egress_id: &str) -> Option<serde_json::Value> {
        self.client()
            .await
            .query_opt(
                "SELECT to_jsonb(r) FROM recordings r WHERE egress_id = $1",
                &[&egress_id],
            )
            .await
            .expect("recording row")
            .map(|row| row.get(0))
    }

    /// The egress's asset rows as JSON, by key.
    pub async fn assets(&self, egress_id: &str) -> Vec<serde_json::Value> {
        self.client()
            .await
            .query(
                "SELECT to_jsonb(a) FROM assets a WHERE egress_id = $1 ORDER BY storage_key",
                &[&egress_id],
            )
            .await
            .expect("asset rows")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// A connection in the schema of `settings` (`DATABASE_SCHEMA`).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, _driver) = roomtape_shared::db::connect(&self.settings)
            .await
            .expect("connect to test database");
        client
    }
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to PostgreSQL: run deploy/local/services.sh");
    tokio::spawn(connection);
    client
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        crate::cleanup_blocking(async move {
            let admin = admin_client(&admin_url).await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}
