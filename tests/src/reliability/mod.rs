//! The fault-and-load suite (`scripts/reliability.sh`, `roomtape-reliability`): steady signed
//! traffic through the ingestor and two processors while, phase by phase, one thing breaks;
//! then the ingestor under bad input and overload; then every count checked against what was
//! sent. Everything it breaks is its own: a RabbitMQ node, a PostgreSQL cluster, an S3 server
//! and roomtape's binaries, all started here on free ports, all on loopback.

pub mod abuse;
pub mod load;
pub mod nodes;
pub mod processes;
pub mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use roomtape_shared::auth::WebhookSigner;
use roomtape_shared::config::{AmqpSettings, Env, StorageProfile, StorageProfiles};
use roomtape_shared::queue::commands::CommandClient;
use roomtape_shared::queue::topology::{COMMANDS_QUEUE, DEAD_QUEUE, EVENTS_EXCHANGE, EVENTS_QUEUE};

use crate::fake_livekit::FakeLiveKit;
use crate::proxy::TcpProxy;
use load::{Traffic, Webhooks};
use nodes::{PostgresCluster, RabbitNode, S3Server};
use processes::Process;
use report::{Check, Report};

/// How much the suite sends.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// How long each phase's traffic flows.
    pub phase_spread: Duration,
    pub recordings_per_phase: usize,
    pub rooms_per_phase: usize,
    pub viewers_per_room: usize,
    pub start_commands: usize,
    pub bad_requests_per_kind: usize,
    pub overload_requests: usize,
    pub overload_concurrency: usize,
    /// How long RabbitMQ's memory alarm lasts in the alarm phase.
    pub alarm_for: Duration,
}

impl Size {
    /// The version inside the test command: a few hundred events, every fault.
    pub const SHORT: Self = Self {
        phase_spread: Duration::from_secs(3),
        recordings_per_phase: 15,
        rooms_per_phase: 2,
        viewers_per_room: 5,
        start_commands: 3,
        bad_requests_per_kind: 5,
        overload_requests: 200,
        overload_concurrency: 64,
        alarm_for: Duration::from_secs(3),
    };
    pub const FULL: Self = Self {
        phase_spread: Duration::from_secs(20),
        recordings_per_phase: 400,
        rooms_per_phase: 10,
        viewers_per_room: 50,
        start_commands: 20,
        bad_requests_per_kind: 100,
        overload_requests: 2_000,
        overload_concurrency: 256,
        alarm_for: Duration::from_secs(15),
    };
}

/// What breaks in each phase, while that phase's traffic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    RabbitRestart,
    ConnectionsClosed,
    PostgresRestart,
    ProcessorKilled,
    S3Outage,
    LiveKitSlow,
    SigtermUnderLoad,
    MemoryAlarm,
}

const PHASES: [(&str, Fault, &str); 9] = [
    ("steady", Fault::None, "nothing"),
    (
        "rabbit",
        Fault::RabbitRestart,
        "RabbitMQ node stopped and started (2 s down)",
    ),
    (
        "closed",
        Fault::ConnectionsClosed,
        "the broker closes every connection",
    ),
    (
        "postgres",
        Fault::PostgresRestart,
        "PostgreSQL restarted (fast shutdown)",
    ),
    (
        "sigkill",
        Fault::ProcessorKilled,
        "processor A SIGKILLed mid-batch, started again",
    ),
    (
        "s3",
        Fault::S3Outage,
        "S3 server stopped until every recording ending meanwhile was given up",
    ),
    (
        "livekit",
        Fault::LiveKitSlow,
        "LiveKit answers every call 2 s late; start commands sent",
    ),
    (
        "sigterm",
        Fault::SigtermUnderLoad,
        "SIGTERM to the ingestor, then processor B; both restarted",
    ),
    (
        "alarm",
        Fault::MemoryAlarm,
        "RabbitMQ memory alarm: every publisher blocked, then unblocked",
    ),
];

/// The retry schedule: short, so that the S3 outage outlasts it.
const RETRY_DELAYS: &str = "200ms,500ms,1s";
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
const BUCKET: &str = "recordings";

/// Everything the suite started, and the secrets the logs must not show.
struct Stack {
    rabbit: RabbitNode,
    postgres: PostgresCluster,
    s3: S3Server,
    livekit: FakeLiveKit,
    env: Vec<(String, String)>,
    ingestor: Process,
    processors: [Process; 2],
    profile: StorageProfile,
    api_key: String,
    secrets: Vec<String>,
    dir: PathBuf,
    bin_dir: PathBuf,
    /// Logs of processes that came and went (the overloaded ingestor).
    extra_logs: Vec<PathBuf>,
}

fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn progress(what: &str) {
    eprintln!("reliability: {what}");
}

impl Stack {
    async fn start(dir: PathBuf, bin_dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        // PostgreSQL runs as `postgres` and must reach its data under it.
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&dir)
            .status()?;
        progress("starting RabbitMQ, PostgreSQL and S3 of our own");
        let rabbit = RabbitNode::start(&dir.join("rabbitmq"))?;
        let amqp_password = secret();
        rabbit.add_user("roomtape", &amqp_password)?;
        let postgres = PostgresCluster::start(&dir.join("postgres"))?;
        create_database(&postgres.url("postgres"), "roomtape").await?;
        let s3_secret = secret();
        let s3 = S3Server::start(&dir.join("s3"), BUCKET, &s3_secret)?;
        let (api_key, api_secret) = ("APIreliability".to_owned(), secret());
        let livekit = FakeLiveKit::start(&api_key, &api_secret);
        let env: Vec<(String, String)> = [
            (
                "AMQP_URL",
                format!(
                    "amqp://roomtape:{amqp_password}@127.0.0.1:{}/%2f",
                    rabbit.port
                ),
            ),
            ("DATABASE_URL", postgres.url("roomtape")),
            ("LIVEKIT_URL", livekit.url.clone()),
            ("LIVEKIT_API_KEY", api_key.clone()),
            ("LIVEKIT_API_SECRET", api_secret.clone()),
            ("S3_ENDPOINT", s3.endpoint()),
            ("S3_BUCKET", BUCKET.into()),
            ("S3_REGION", "us-east-1".into()),
            ("S3_ACCESS_KEY_ID", s3.access_key.clone()),
            ("S3_SECRET_ACCESS_KEY", s3_secret.clone()),
            ("S3_FORCE_PATH_STYLE", "true".into()),
            ("RETRY_DELAYS", RETRY_DELAYS.into()),
            ("INGESTOR_BODY_TIMEOUT", "1s".into()),
            // Egresses known only from webhooks are not LiveKit's (the fake's) to confirm.
            ("RECONCILE_AFTER", "1h".into()),
            // The egresses' files are placeholder bytes (`upload`): a HEAD is what is checked.
            ("RECORDING_PROBE", "off".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let profile = StorageProfiles::from_env(&Env::from_pairs(env.clone()))?
            .default_profile()
            .clone();
        let process = |name: &str, binary: &str, bind: &str| {
            Process::new(name, bin_dir, binary, bind, &env, &dir)
        };
        let mut stack = Self {
            ingestor: process("ingestor", "roomtape-ingestor", "INGESTOR_BIND"),
            processors: [
                process("processor-a", "roomtape-processor", "PROCESSOR_BIND"),
                process("processor-b", "roomtape-processor", "PROCESSOR_BIND"),
            ],
            rabbit,
            postgres,
            s3,
            livekit,
            profile,
            secrets: vec![api_secret, s3_secret, amqp_password],
            api_key,
            env: env.clone(),
            dir,
            bin_dir: bin_dir.to_owned(),
            extra_logs: Vec::new(),
        };
        progress("starting the ingestor and two processors");
        // The first processor migrates the schema alone.
        stack.processors[0].start().await?;
        stack.processors[1].start().await?;
        stack.ingestor.start().await?;
        Ok(stack)
    }

    fn env(&self) -> Env {
        Env::from_pairs(self.env.clone())
    }

    fn api_secret(&self) -> &str {
        &self.secrets[0]
    }

    async fn database(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.postgres.url("roomtape"), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(self.database().await?.query_one(sql, &[]).await?.get(0))
    }

    /// Messages ready in `queue` of our node.
    async fn ready(&self, queue: &str) -> anyhow::Result<u32> {
        let url = &self.env().get("AMQP_URL").context("AMQP_URL")?.to_owned();
        let connection =
            lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await?;
        let _ = connection.close(200, "counted".into()).await;
        Ok(queue.message_count())
    }

    /// Puts every recording file of `traffic` in the bucket, as the egresses would have.
    async fn upload(&self, traffic: &Traffic) -> anyhow::Result<()> {
        use futures_util::{stream, StreamExt, TryStreamExt};
        let client = roomtape_shared::storage::client(&self.profile);
        stream::iter(traffic.egresses(&self.profile))
            .map(|egress| {
                let request = client
                    .put_object()
                    .bucket(BUCKET)
                    .key(&egress.key)
                    .content_type("video/mp4")
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(
                        b"mp4 bytes",
                    ));
                async move { request.send().await.map(drop) }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .context("uploading the recordings' files")?;
        Ok(())
    }

    /// Breaks what `fault` names, while the phase's traffic flows (on other threads): a third
    /// into it, or for the S3 outage from its start, so that every recording of the phase ends
    /// while the bucket is away.
    async fn inject(&mut self, fault: Fault, size: &Size) -> anyhow::Result<String> {
        if fault != Fault::S3Outage {
            tokio::time::sleep(size.phase_spread / 3).await;
        }
        let started = Instant::now();
        let note = match fault {
            Fault::None => String::new(),
            Fault::RabbitRestart => {
                tokio::task::block_in_place(|| self.rabbit.restart(Duration::from_secs(2)))?;
                String::new()
            }
            Fault::ConnectionsClosed => {
                tokio::task::block_in_place(|| self.rabbit.close_all_connections())?;
                String::new()
            }
            Fault::PostgresRestart => {
                tokio::task::block_in_place(|| self.postgres.restart())?;
                String::new()
            }
            Fault::ProcessorKilled => {
                self.processors[0].kill();
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.processors[0].start().await?;
                String::new()
            }
            Fault::S3Outage => {
                self.s3.stop();
                let given_up = self.dead_letters(size.recordings_per_phase).await?;
                tokio::task::block_in_place(|| self.s3.start_again())?;
                format!("{given_up} recordings given up while it was away; ")
            }
            Fault::LiveKitSlow => self.slow_starts(size.start_commands).await?,
            Fault::MemoryAlarm => self.memory_alarm(size.alarm_for).await?,
            Fault::SigtermUnderLoad => {
                self.ingestor.terminate().await?;
                self.ingestor.start().await?;
                self.processors[1].terminate().await?;
                self.processors[1].start().await?;
                String::new()
            }
        };
        Ok(format!(
            "{note}recovered in {:.1} s",
            started.elapsed().as_secs_f64()
        ))
    }

    /// A memory alarm for `lasting`: the ingestor must notice it within a second or two and
    /// answer 503 at once (not after its confirm timeout); the traffic, sent again like LiveKit,
    /// goes through once it lifts, which the end checks count.
    async fn memory_alarm(&self, lasting: Duration) -> anyhow::Result<String> {
        tokio::task::block_in_place(|| self.rabbit.memory_alarm(true))?;
        let raised = Instant::now();
        let seen = loop {
            if metric(&self.ingestor, "roomtape_broker_blocked").await? == 1.0 {
                break Some(raised.elapsed());
            }
            if raised.elapsed() > Duration::from_secs(10) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let probe = Webhooks::new(&self.ingestor.url(""), &self.api_key, self.api_secret());
        let asked = Instant::now();
        let answer = probe.answer_once("EV_alarm_probe").await;
        let answered_in = asked.elapsed();
        tokio::time::sleep(lasting.saturating_sub(raised.elapsed())).await;
        tokio::task::block_in_place(|| self.rabbit.memory_alarm(false))?;
        let seen = seen.context("the ingestor did not report the alarm within 10 s")?;
        anyhow::ensure!(
            answer == "503 broker_blocked" && answered_in < Duration::from_secs(1),
            "during the alarm a webhook got {answer} after {answered_in:?}, not 503 broker_blocked at once"
        );
        Ok(format!(
            "ingestor saw the alarm in {:.1} s, answered {answer} in {} ms; ",
            seen.as_secs_f64(),
            answered_in.as_millis()
        ))
    }

    /// Waits (up to a minute) until `expected` messages are in the dead-letter queue.
    async fn dead_letters(&self, expected: usize) -> anyhow::Result<u32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dead = self.ready(DEAD_QUEUE).await?;
            if dead as usize >= expected || Instant::now() > deadline {
                return Ok(dead);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Start commands while LiveKit answers every call late: each answered once, one egress
    /// each.
    async fn slow_starts(&self, commands: usize) -> anyhow::Result<String> {
        self.livekit.slow_next(Duration::from_secs(2), 10_000);
        let client =
            CommandClient::new(AmqpSettings::from_env(&self.env())?, "roomtape-reliability");
        let replies = futures_util::future::join_all((0..commands).map(|n| {
            let body = serde_json::json!({"room_name": format!("commanded{n}")}).to_string();
            let client = &client;
            async move {
                let id = format!("reliability-start-{n}");
                client
                    .send(
                        "recording.start",
                        body.as_bytes(),
                        &id,
                        Duration::from_secs(60),
                    )
                    .await
            }
        }))
        .await;
        client.close().await;
        self.livekit.slow_next(Duration::ZERO, 0);
        let ok = replies
            .iter()
            .filter(|r| matches!(r, Ok(reply) if reply["ok"] == true))
            .count();
        Ok(format!("{ok}/{commands} starts answered ok; "))
    }
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(())
}

/// Runs the suite; `Ok(true)` when every check passed. The report is printed and written to
/// `work_dir/summary.md`.
pub async fn run(size: Size, bin_dir: PathBuf, work_dir: PathBuf) -> anyhow::Result<bool> {
    let suite_started = Instant::now();
    let mut stack = Stack::start(work_dir.clone(), &bin_dir).await?;
    let mut report = Report::default();
    let webhooks = Arc::new(Webhooks::new(
        &stack.ingestor.url(""),
        &stack.api_key,
        stack.api_secret(),
    ));
    let mut sent = 0;
    let mut traffics = Vec::new();
    for (phase, fault, what) in PHASES {
        let traffic = Traffic {
            phase: phase.to_owned(),
            spread: size.phase_spread,
            recordings: size.recordings_per_phase,
            rooms: size.rooms_per_phase,
            viewers_per_room: size.viewers_per_room,
        };
        stack.upload(&traffic).await?;
        progress(&format!("phase {phase}: {what}"));
        let load = tokio::spawn({
            let (webhooks, traffic, profile) =
                (webhooks.clone(), traffic.clone(), stack.profile.clone());
            async move { webhooks.send(&traffic, &profile).await }
        });
        let started = Instant::now();
        let recovery = stack.inject(fault, &size).await?;
        load.await?;
        let events = traffic.recordings * 3 + traffic.rooms * (2 + 2 * traffic.viewers_per_room);
        sent += events;
        report.phase(
            phase,
            what,
            events,
            &webhooks.refused_in(phase),
            &recovery,
            started.elapsed(),
        );
        traffics.push(traffic);
    }

    progress("waiting for every accepted event to be applied");
    settle(&stack, &webhooks).await;
    let dead_after_outage = stack.ready(DEAD_QUEUE).await?;
    progress(&format!(
        "replaying {dead_after_outage} dead letters (the S3 outage's)"
    ));
    let replayed = replay_dead_letters(&stack).await?;
    settle(&stack, &webhooks).await;

    abuse_checks(&mut stack, &size, &webhooks, &mut report).await?;
    settle(&stack, &webhooks).await;

    progress("poisoning 3 messages on purpose");
    let poisoned = poison(&stack, 3).await?;
    final_checks(&stack, &size, &traffics, &webhooks, poisoned, &mut report).await?;
    report.note(format!(
        "{sent} lifecycle webhooks sent; after the S3 outage {dead_after_outage} event(s) were \
         dead-lettered and `roomtape dlq replay` said: {}",
        replayed.trim()
    ));
    secrets_check(&stack, &mut report)?;
    report.note(format!(
        "the suite took {:.0} s",
        suite_started.elapsed().as_secs_f64()
    ));
    let text = report.render();
    println!("{text}");
    std::fs::write(work_dir.join("summary.md"), &text)?;
    Ok(report.passed())
}

/// Waits (up to 3 min) until every accepted id is in `webhook_events` or dead-lettered, and the
/// events queue is empty.
async fn settle(stack: &Stack, webhooks: &Webhooks) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let applied = stack
            .count("SELECT count(*) FROM webhook_events")
            .await
            .unwrap_or(0);
        let dead = stack.ready(DEAD_QUEUE).await.unwrap_or(0);
        let queued = stack.ready(EVENTS_QUEUE).await.unwrap_or(1);
        if applied as usize + dead as usize >= webhooks.accepted().len() && queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn replay_dead_letters(stack: &Stack) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let cli = roomtape_cli::Cli::parse_from(["roomtape", "dlq", "replay"]);
    roomtape_cli::execute(cli, &stack.env(), &mut out, false).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn poison(stack: &Stack, count: usize) -> anyhow::Result<u32> {
    let url = stack.env().get("AMQP_URL").context("AMQP_URL")?.to_owned();
    let connection =
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    for n in 0..count {
        let properties =
            lapin::BasicProperties::default().with_message_id(format!("EV_poison{n}").into());
        channel
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                "room.started".into(),
                lapin::options::BasicPublishOptions::default(),
                b"not a LiveKit event",
                properties,
            )
            .await?
            .await?;
    }
    let _ = connection.close(200, "poisoned".into()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && stack.ready(DEAD_QUEUE).await? < count as u32 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(count as u32)
}

/// Bad requests at volume against the running ingestor, then an ingestor of its own whose
/// broker stops confirming.
async fn abuse_checks(
    stack: &mut Stack,
    size: &Size,
    webhooks: &Webhooks,
    report: &mut Report,
) -> anyhow::Result<()> {
    progress("bad requests at volume");
    let publishes_before = publishes(&stack.ingestor).await?;
    let answers = abuse::bad_requests(
        stack.ingestor.port,
        &stack.api_key,
        stack.api_secret(),
        size.bad_requests_per_kind,
        BODY_TIMEOUT,
    )
    .await;
    let publishes_after = publishes(&stack.ingestor).await?;
    for (kind, (expected, got)) in &answers {
        let all = got.values().sum::<u64>();
        let right = got.get(*expected).copied().unwrap_or_default();
        let found: Vec<String> = got.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        report.check(Check::new(
            &format!("bad input: {kind}"),
            format!("{all} × {expected}"),
            found.join(" "),
            right == all,
        ));
    }
    report.check(Check::new(
        "bad input: nothing published",
        "0 publishes".into(),
        format!("{} publishes", publishes_after - publishes_before),
        publishes_after == publishes_before,
    ));

    unauthenticated_flood(stack, report).await?;

    progress("overload while the broker holds its confirms");
    let amqp = stack.env().get("AMQP_URL").context("AMQP_URL")?.to_owned();
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", stack.rabbit.port)).await;
    let through_proxy = amqp.replace(
        &format!(":{}/", stack.rabbit.port),
        &format!(":{}/", proxy.port),
    );
    let mut env = stack.env.clone();
    env.retain(|(k, _)| k != "AMQP_URL");
    env.extend([
        ("AMQP_URL".to_owned(), through_proxy),
        ("INGESTOR_MAX_IN_FLIGHT".to_owned(), "16".to_owned()),
    ]);
    let mut overloaded = Process::new(
        "ingestor-overload",
        &stack.bin_dir,
        "roomtape-ingestor",
        "INGESTOR_BIND",
        &env,
        &stack.dir,
    );
    overloaded.start().await?;
    proxy.hold();
    let signer = WebhookSigner::new(&stack.api_key, stack.api_secret());
    let url = overloaded.url("/webhooks/livekit");
    let overload = abuse::burst(
        &url,
        &signer,
        size.overload_requests,
        size.overload_concurrency,
    )
    .await;
    proxy.release();
    let answers: Vec<String> = overload
        .answers
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect();
    let confirm_timeout = roomtape_shared::queue::CONFIRM_TIMEOUT;
    report.check(Check::new(
        "overload: no 2xx without a confirm",
        "0".into(),
        format!(
            "{} ({})",
            overload.accepted_unconfirmed.len(),
            answers.join(" ")
        ),
        overload.accepted_unconfirmed.is_empty(),
    ));
    report.check(Check::new(
        "overload: every request answered, none hangs",
        format!(
            "slowest ≤ confirm timeout {}s + 2 s",
            confirm_timeout.as_secs()
        ),
        format!("slowest {:.1} s", overload.slowest.as_secs_f64()),
        overload.slowest <= confirm_timeout + Duration::from_secs(2)
            && !overload.answers.contains_key("no answer"),
    ));
    // Once the broker confirms again, it serves: these must be applied like any other.
    let recovered = Webhooks::new(&overloaded.url(""), &stack.api_key, stack.api_secret());
    let traffic = Traffic {
        phase: "after-overload".into(),
        spread: Duration::ZERO,
        recordings: 0,
        rooms: 1,
        viewers_per_room: size.viewers_per_room,
    };
    recovered.send(&traffic, &stack.profile).await;
    webhooks.adopt(&recovered);
    let rss = overloaded.peak_rss_mib().unwrap_or(f64::NAN);
    report.check(Check::new(
        "overload: ingestor memory",
        "≤ 64 MiB".into(),
        format!("peak RSS {rss:.0} MiB"),
        rss <= 64.0,
    ));
    overloaded.terminate().await?;
    stack.extra_logs.push(overloaded.log().to_owned());
    Ok(())
}

/// Refusals anyone can cause: each counted, each answered its status, nothing published, and
/// the log kept short: per kind (401, 415) the first line and at most one more per 10 s.
async fn unauthenticated_flood(stack: &Stack, report: &mut Report) -> anyhow::Result<()> {
    const REQUESTS: usize = 1_000;
    progress("1,000 unauthenticated requests");
    let log_before = std::fs::metadata(stack.ingestor.log())?.len();
    let publishes_before = publishes(&stack.ingestor).await?;
    let started = Instant::now();
    let url = stack.ingestor.url("/webhooks/livekit");
    let answers = abuse::unauthenticated(&url, &stack.api_key, REQUESTS).await;
    let took = started.elapsed();
    let published = publishes(&stack.ingestor).await? - publishes_before;
    let found: Vec<String> = answers.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    let half = (REQUESTS / 2) as u64;
    let right = answers.get("401") == Some(&half) && answers.get("415") == Some(&half);
    report.check(Check::new(
        "unauthenticated: answered, nothing published",
        format!("401×{half} 415×{half}, 0 publishes"),
        format!("{}, {published} publishes", found.join(" ")),
        right && published == 0.0,
    ));
    let lines = lines_since(stack.ingestor.log(), log_before, "webhook rejected")?;
    let bound = 2 * (1 + took.as_secs() / 10);
    report.check(Check::new(
        "unauthenticated: log lines",
        format!("≤ {bound} (2 kinds × one per 10 s) for {REQUESTS}"),
        format!("{lines} in {:.1} s", took.as_secs_f64()),
        lines <= bound,
    ));
    Ok(())
}

/// Lines of `log` past byte `from` that contain `text`.
fn lines_since(log: &std::path::Path, from: u64, text: &str) -> anyhow::Result<u64> {
    use std::io::{BufRead, Seek};
    let mut file = std::fs::File::open(log)?;
    file.seek(std::io::SeekFrom::Start(from))?;
    let mut count = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        if String::from_utf8_lossy(&line?).contains(text) {
            count += 1;
        }
    }
    Ok(count)
}

/// The ingestor's confirmed publishes so far.
async fn publishes(ingestor: &Process) -> anyhow::Result<f64> {
    metric(ingestor, "roomtape_publish_channel_publishes_total").await
}

/// The sum of `name`'s series on `process`'s `/metrics`.
async fn metric(process: &Process, name: &str) -> anyhow::Result<f64> {
    let page = reqwest::get(process.url("/metrics")).await?.text().await?;
    Ok(page
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Every count against what was sent.
async fn final_checks(
    stack: &Stack,
    size: &Size,
    traffics: &[Traffic],
    webhooks: &Webhooks,
    poisoned: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    let db = stack.database().await?;
    let applied: std::collections::HashSet<String> = db
        .query("SELECT event_id FROM webhook_events", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let accepted = webhooks.accepted();
    let missing: Vec<&String> = accepted.difference(&applied).take(5).collect();
    report.check(Check::new(
        "every event answered 2xx is in webhook_events",
        format!("{}", accepted.len()),
        format!(
            "{} (missing e.g. {missing:?})",
            accepted.len() - accepted.difference(&applied).count()
        ),
        missing.is_empty(),
    ));
    let abandoned = webhooks
        .abandoned
        .lock()
        .map(|a| a.len())
        .unwrap_or(usize::MAX);
    report.check(Check::new(
        "every webhook accepted in the end (sent again like LiveKit)",
        "0 abandoned".into(),
        format!("{abandoned} abandoned"),
        abandoned == 0,
    ));
    let recordings: usize = traffics.iter().map(|t| t.recordings).sum();
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'ready'), count(*),
                    (SELECT count(*) FROM assets WHERE egress_id NOT LIKE 'EG\\_fake%'),
                    (SELECT count(DISTINCT egress_id) FROM assets WHERE egress_id NOT LIKE 'EG\\_fake%')
                 FROM recordings WHERE egress_id NOT LIKE 'EG\\_fake%'",
            &[],
        )
        .await?;
    let (ready, rows, assets, with_assets): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let expected = recordings as i64;
    report.check(Check::new(
        "every recording ready, one row, one asset",
        format!("{expected} ready / {expected} rows / {expected} assets"),
        format!("{ready} ready / {rows} rows / {assets} assets of {with_assets} recordings"),
        ready == expected && rows == expected && assets == expected && with_assets == expected,
    ));
    notification_check(&db, expected, report).await?;
    let halls = traffics.iter().map(|t| t.rooms).sum::<usize>() + 1;
    let viewers = size.viewers_per_room as i32;
    let finished: i64 = db
        .query_one(
            "SELECT count(*) FROM rooms WHERE room_name LIKE '%-hall%' AND status = 'finished'
                 AND participant_count = 0 AND max_participants = $1",
            &[&viewers],
        )
        .await?
        .get(0);
    let sample: Option<serde_json::Value> = db
        .query_opt(
            "SELECT to_jsonb(r) FROM rooms r WHERE room_name LIKE '%-hall%'
                 AND NOT (status = 'finished' AND participant_count = 0 AND max_participants = $1)
                 LIMIT 1",
            &[&viewers],
        )
        .await?
        .map(|row| row.get(0));
    report.check(Check::new(
        "every room finished, 0 viewers, its true peak",
        format!("{halls} rooms, peak {viewers}"),
        match sample {
            None => format!("{finished} rooms"),
            Some(room) => format!("{finished} rooms; e.g. not: {room}"),
        },
        finished == halls as i64,
    ));
    let answered: i64 = db
        .query_one(
            "SELECT count(*) FROM recording_commands WHERE state = 'done' AND reply->>'ok' = 'true'",
            &[],
        )
        .await?
        .get(0);
    let starts = stack.livekit.calls("StartRoomCompositeEgress").len();
    let commands = size.start_commands;
    report.check(Check::new(
        "slow LiveKit: each start answered ok once, one egress each",
        format!("{commands} ok, {commands} StartRoomCompositeEgress, {commands} egresses"),
        format!(
            "{answered} ok, {starts} calls, {} egresses",
            stack.livekit.started()
        ),
        answered == commands as i64 && starts == commands && stack.livekit.started() == commands,
    ));
    let (events, commands_left, dead) = (
        stack.ready(EVENTS_QUEUE).await?,
        stack.ready(COMMANDS_QUEUE).await?,
        stack.ready(DEAD_QUEUE).await?,
    );
    report.check(Check::new(
        "queues drained; the dead-letter queue holds only the poison",
        format!("0 / 0 / {poisoned}"),
        format!("{events} / {commands_left} / {dead}"),
        events == 0 && commands_left == 0 && dead == poisoned,
    ));
    Ok(())
}

/// One `recording.ready` written per ready recording, whatever was repeated, replayed or killed
/// on the way, and every one relayed (the relay gets a few seconds to finish its last batch).
async fn notification_check(
    db: &tokio_postgres::Client,
    expected: i64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let count = || async {
        let row = db
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE o.relayed_at IS NULL)
                     FROM notification_outbox o JOIN recordings r
                         ON o.notification_id = 'recording.ready:' || r.egress_id
                     WHERE r.status = 'ready' AND r.egress_id NOT LIKE 'EG\\_fake%'",
                &[],
            )
            .await?;
        anyhow::Ok((row.get::<_, i64>(0), row.get::<_, i64>(1)))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut counts = count().await?;
    while counts.1 > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        counts = count().await?;
    }
    let (told, waiting) = counts;
    report.check(Check::new(
        "one recording.ready per ready recording, all relayed",
        format!("{expected} / 0 waiting"),
        format!("{told} / {waiting} waiting"),
        told == expected && waiting == 0,
    ));
    Ok(())
}

/// Whether `line` holds a JWT: a base64url JSON header (`eyJ…`), a dot, and a base64url JSON
/// payload (`eyJ…`). Only `eyJ` alone would also match random ids such as RabbitMQ's consumer
/// tags (`amq.ctag-1TBrotZeyJQL07…`).
fn shows_a_jwt(line: &str) -> bool {
    line.match_indices("eyJ").any(|(at, _)| {
        let rest = &line[at..];
        let header = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        rest[header..].starts_with(".eyJ")
    })
}

/// No log line, at `trace`, shows a secret or a token.
fn secrets_check(stack: &Stack, report: &mut Report) -> anyhow::Result<()> {
    let mut logs: Vec<&std::path::Path> = vec![stack.ingestor.log()];
    logs.extend(stack.processors.iter().map(Process::log));
    logs.extend(stack.extra_logs.iter().map(PathBuf::as_path));
    let mut hits = Vec::new();
    let mut bytes = 0;
    for log in logs {
        use std::io::BufRead;
        let file = std::fs::File::open(log).with_context(|| format!("{}", log.display()))?;
        let mut leaking = 0;
        // Lines, not one string: trace logs of a full run are gigabytes.
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line?;
            bytes += line.len() + 1;
            let line = String::from_utf8_lossy(&line);
            if shows_a_jwt(&line) || stack.secrets.iter().any(|s| line.contains(s.as_str())) {
                leaking += 1;
            }
        }
        if leaking > 0 {
            hits.push(format!("{}: {leaking} lines", log.display()));
        }
    }
    report.check(Check::new(
        "logs at trace show no secret or token",
        "0 lines".into(),
        match hits.is_empty() {
            true => format!("0 lines in {:.0} MiB of logs", bytes as f64 / 1_048_576.0),
            false => hits.join("; "),
        },
        hits.is_empty(),
    ));
    Ok(())
}

#[cfg(test)]
mod jwt_tests {
    use super::shows_a_jwt;

    #[test]
    fn a_token_is_found_anywhere_in_a_line_and_a_random_id_with_eyj_is_not_one() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJrZXkifQ.c2lnbmF0dXJl";
        assert!(shows_a_jwt(token));
        assert!(shows_a_jwt(&format!(
            "authorization=Bearer {token} path=/x"
        )));
        assert!(shows_a_jwt("header only: eyJhbGciOiJIUzI1NiJ9.eyJ"));
        assert!(!shows_a_jwt("consumer_tag=amq.ctag-1TBrotZeyJQL07AT6kozrQ"));
        assert!(!shows_a_jwt("eyJhbGciOiJIUzI1NiJ9 and later .eyJ"));
    }
}
