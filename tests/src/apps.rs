//! The real apps, built from a test's environment, on port 0.

use roomtape_api::config::ApiSettings;
use roomtape_api::startup::Application as Api;
use roomtape_ingestor::config::IngestorSettings;
use roomtape_ingestor::startup::Application as Ingestor;
use roomtape_processor::config::ProcessorSettings;
use roomtape_processor::reconcile::Reconciler;
use roomtape_processor::startup::Application as Processor;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::Env;
use roomtape_shared::shutdown::Shutdown;
use tokio::task::JoinHandle;

/// A running app; stopped (gracefully) when dropped or by [`TestApp::stop`].
pub struct TestApp {
    pub address: String,
    shutdown: Shutdown,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Asks the app to stop and waits until it has.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.expect("app task"),
            None => Ok(()),
        }
    }
}

impl TestApp {
    /// Ends the app at once, as a crash would: its task is aborted mid-work, nothing finishes.
    pub fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn running(port: u16, run: impl FnOnce(Shutdown) -> JoinHandle<std::io::Result<()>>) -> TestApp {
    let shutdown = Shutdown::new();
    let task = run(shutdown.clone());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        shutdown,
        task: Some(task),
    }
}

pub fn spawn_ingestor(env: &Env, clock: Clock) -> TestApp {
    let settings = IngestorSettings::from_env(env).expect("ingestor settings");
    let app = Ingestor::build(settings, clock).expect("build ingestor");
    running(app.port(), |shutdown| {
        tokio::spawn(app.run_until_stopped(shutdown))
    })
}

pub async fn spawn_processor(env: &Env) -> TestApp {
    spawn_processor_with_clock(env, Clock::System).await
}

/// A processor whose wall clock (command deadlines, reconciliation) reads `clock`.
pub async fn spawn_processor_with_clock(env: &Env, clock: Clock) -> TestApp {
    let settings = ProcessorSettings::from_env(env).expect("processor settings");
    let app = Processor::build(settings, clock)
        .await
        .expect("build processor");
    running(app.port(), |shutdown| {
        tokio::spawn(app.run_until_stopped(shutdown))
    })
}

/// A reconciler for `env` (after migrating its database) whose clock reads `now_unix`, that
/// looks up recordings unchanged for `after`: one [`Reconciler::round`] at a time, by hand.
pub async fn reconciler_at(env: &Env, now_unix: u64, after: std::time::Duration) -> Reconciler {
    let settings = ProcessorSettings::from_env(env).expect("processor settings");
    roomtape_shared::db::migrate(&settings.database)
        .await
        .expect("migrate");
    Reconciler {
        pool: roomtape_shared::db::pool(&settings.database).expect("pool"),
        egress: roomtape_shared::livekit::EgressClient::new(settings.livekit)
            .expect("LiveKit client"),
        amqp: settings.amqp,
        every: std::time::Duration::from_secs(60),
        after,
        clock: Clock::FixedUnix(now_unix),
    }
}

/// `roomtape-api` on a free port (whatever `API_BIND` says).
pub fn spawn_api(env: &Env) -> TestApp {
    spawn_api_with_clock(env, Clock::System)
}

/// `roomtape-api` whose LiveKit tokens are checked against `clock`.
pub fn spawn_api_with_clock(env: &Env, clock: Clock) -> TestApp {
    let mut settings = ApiSettings::from_env(env).expect("api settings");
    settings.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let app = Api::build(settings, clock).expect("build api");
    running(app.port(), |shutdown| {
        tokio::spawn(app.run_until_stopped(shutdown))
    })
}

/// Waits until `GET /readyz` answers 200.
pub async fn wait_ready(app: &TestApp) {
    let http = reqwest::Client::new();
    let url = app.url("/readyz");
    crate::eventually(
        std::time::Duration::from_secs(15),
        "the app to become ready",
        || {
            let request = http.get(&url).send();
            async move {
                request
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(drop)
            }
        },
    )
    .await;
}

/// The processor's event handler on this test's database and bucket, to step directly.
pub async fn event_processor(env: &Env) -> roomtape_processor::events::EventProcessor {
    use roomtape_processor::egress::EgressLifecycle;
    use roomtape_processor::events::EventProcessor;
    use roomtape_processor::metrics::ProcessorMetrics;
    use roomtape_processor::thumbnail::Thumbnails;
    use roomtape_shared::storage::ObjectStore;
    let settings = ProcessorSettings::from_env(env).expect("processor settings");
    roomtape_shared::db::migrate(&settings.database)
        .await
        .expect("migrate");
    let pool = roomtape_shared::db::pool(&settings.database).expect("pool");
    let metrics = ProcessorMetrics::register(&mut roomtape_shared::metrics::registry());
    let objects = ObjectStore::new(&settings.storage);
    let thumbnails = Thumbnails::new(objects.clone(), settings.thumbnails);
    let lifecycle =
        EgressLifecycle::new(pool.clone(), objects, metrics, settings.probe, thumbnails);
    EventProcessor::new(pool, lifecycle, settings.auto_record, settings.concurrency)
}

/// The processor's command handler on this test's database, calling the LiveKit at
/// `LIVEKIT_URL`, with `clock` telling it the time, to step directly.
pub async fn command_processor(
    env: &Env,
    clock: Clock,
) -> roomtape_processor::commands::CommandProcessor {
    use roomtape_processor::commands::CommandProcessor;
    use roomtape_processor::thumbnail::Thumbnails;
    use roomtape_shared::livekit::EgressClient;
    use roomtape_shared::storage::ObjectStore;
    let settings = ProcessorSettings::from_env(env).expect("processor settings");
    roomtape_shared::db::migrate(&settings.database)
        .await
        .expect("migrate");
    let pool = roomtape_shared::db::pool(&settings.database).expect("pool");
    let thumbnails = Thumbnails::new(ObjectStore::new(&settings.storage), settings.thumbnails);
    CommandProcessor::new(
        pool,
        EgressClient::new(settings.livekit).expect("LiveKit client"),
        settings.storage,
        settings.filepath_template,
        settings.reply_queues,
        settings.command_start_deadline,
        clock,
    )
    .with_thumbnails(thumbnails)
}

/// `app`'s `/metrics` page, as Prometheus would scrape it.
pub async fn metrics_text(app: &TestApp) -> String {
    reqwest::get(app.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The sum of a counter's series in `app`'s `/metrics` whose line contains every one of `labels`.
pub async fn counter_sum(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    metrics_text(app)
        .await
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
