//! The worker on a real broker with a handler of the test's own: messages waiting in the
//! prefetch are handed over as batches, and each message of a batch is settled by its own
//! result (one poison message is dead-lettered, the others acked); a connection cut while acks
//! are under way does not keep the worker from stopping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use roomtape_processor::error::HandleError;
use roomtape_processor::metrics::ProcessorMetrics;
use roomtape_processor::worker::{self, ConsumerSettings, Handled, Handler, Message, Outbox};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::events::parse;
use roomtape_shared::queue::topology::{self, DEAD_QUEUE, EVENTS_EXCHANGE, EVENTS_QUEUE};
use roomtape_shared::shutdown::Shutdown;
use roomtape_tests::proxy::TcpProxy;
use roomtape_tests::{eventually, TestEnv};

/// `handler` consuming its queue in a worker of its own (`concurrency` tasks at a time), until
/// stopped.
struct Consuming {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    registry: Registry,
}

impl Consuming {
    fn start<H: Handler>(
        handler: Arc<H>,
        amqp: AmqpSettings,
        prefetch: u16,
        concurrency: usize,
    ) -> Self {
        let settings = ConsumerSettings {
            amqp,
            prefetch,
            concurrency,
            batch_wait: Duration::ZERO,
        };
        let mut registry = roomtape_shared::metrics::registry();
        let metrics = ProcessorMetrics::register(&mut registry);
        let shutdown = Shutdown::new();
        let ready = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(worker::run(
            handler,
            settings,
            metrics,
            ready,
            shutdown.clone(),
        ));
        Self {
            shutdown,
            task,
            registry,
        }
    }

    /// Stops the worker (it settles what it holds) and hands back its metrics.
    async fn stop(self) -> Registry {
        self.shutdown.cancel();
        self.task.await.expect("worker stops");
        self.registry
    }
}

/// Remembers the size of every batch (the worker hands a lone message to `handle`) and how
/// many messages it handled; a body of `poison` fails as not an event.
#[derive(Default)]
struct Batches {
    sizes: Mutex<Vec<usize>>,
    handled: Mutex<usize>,
}

impl Handler for Batches {
    fn queue(&self) -> &'static str {
        EVENTS_QUEUE
    }

    fn batch_limit(&self) -> usize {
        8
    }

    async fn handle<O: Outbox>(&self, message: &Message, _: &O) -> Result<Handled, HandleError> {
        *self.handled.lock().expect("lock") += 1;
        match parse::parse(&message.body) {
            Ok(_) => Ok(Handled::new("room_started", "applied")),
            Err(error) => Err(error.into()),
        }
    }

    async fn handle_batch<O: Outbox>(
        &self,
        messages: &[Message],
        outbox: &O,
    ) -> Vec<Result<Handled, HandleError>> {
        self.sizes.lock().expect("lock").push(messages.len());
        let mut results = Vec::new();
        for message in messages {
            results.push(self.handle(message, outbox).await);
        }
        results
    }
}

#[tokio::test]
async fn waiting_messages_come_in_batches_and_each_is_settled_on_its_own() {
    let test = TestEnv::new().await;
    let amqp = AmqpSettings::from_env(&test.env()).expect("amqp settings");
    topology::declare(&test.vhost.channel().await, &amqp.retry_delays)
        .await
        .expect("topology");
    let mut messages: Vec<(String, Vec<u8>)> = (0..30)
        .map(|n| {
            let body = format!(r#"{{"event":"room_started","id":"EV_{n}"}}"#);
            (format!("EV_{n}"), body.into_bytes())
        })
        .collect();
    messages[17].1 = b"poison".to_vec();
    test.vhost
        .publish_all(EVENTS_EXCHANGE, "room.started", &messages)
        .await;

    let handler = Arc::new(Batches::default());
    let worker = Consuming::start(handler.clone(), amqp, 32, 1);
    eventually(Duration::from_secs(10), "every message settled", || async {
        let queued = test.vhost.ready_count(EVENTS_QUEUE).await;
        let dead = test.vhost.ready_count(DEAD_QUEUE).await;
        (queued == 0 && dead == 1).then_some(())
    })
    .await;
    worker.stop().await;

    let sizes = handler.sizes.lock().expect("lock").clone();
    assert_eq!(
        *handler.handled.lock().expect("lock"),
        30,
        "each message once"
    );
    assert!(sizes.iter().all(|&size| size <= 8), "{sizes:?}");
    assert!(sizes.iter().any(|&size| size > 1), "batched: {sizes:?}");
    let dead = test.vhost.get(DEAD_QUEUE).await.expect("the dead letter");
    assert_eq!(dead.delivery.data, b"poison");
}

/// Panics on a message's first attempt, handles it on the next; remembers the attempts seen.
#[derive(Default)]
struct PanicsOnce {
    attempts: Mutex<Vec<u32>>,
}

impl Handler for PanicsOnce {
    fn queue(&self) -> &'static str {
        EVENTS_QUEUE
    }

    async fn handle<O: Outbox>(&self, message: &Message, _: &O) -> Result<Handled, HandleError> {
        let attempt = message.attempt.number;
        self.attempts.lock().expect("lock").push(attempt);
        assert!(attempt > 1, "a bug in the handler");
        Ok(Handled::new("room_started", "applied"))
    }
}

#[tokio::test]
async fn a_panicking_handler_gets_its_message_retried_not_stranded() {
    let test = TestEnv::new().await;
    let amqp = AmqpSettings::from_env(&test.env()).expect("amqp settings");
    topology::declare(&test.vhost.channel().await, &amqp.retry_delays)
        .await
        .expect("topology");
    let body = br#"{"event":"room_started","id":"EV_panic"}"#.to_vec();
    test.vhost
        .publish_all(
            EVENTS_EXCHANGE,
            "room.started",
            &[("EV_panic".into(), body)],
        )
        .await;

    let handler = Arc::new(PanicsOnce::default());
    let worker = Consuming::start(handler.clone(), amqp, 4, 1);
    // Retried through the first delay queue (the test settings' 100 ms), then handled.
    eventually(Duration::from_secs(10), "the retry handled", || async {
        (handler.attempts.lock().expect("lock").len() == 2).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the message acked", || async {
        let queued = test.vhost.ready_count(EVENTS_QUEUE).await;
        let dead = test.vhost.ready_count(DEAD_QUEUE).await;
        (queued == 0 && dead == 0).then_some(())
    })
    .await;
    let registry = worker.stop().await;
    assert_eq!(*handler.attempts.lock().expect("lock"), [1, 2]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.lines()
            .any(|line| line.contains("outcome=\"panic\"") && line.ends_with(" 1")),
        "the panic is counted:\n{text}"
    );
}

/// Handles each message after a pause of 0–2 ms, so that many acks are under way at any moment.
#[derive(Default)]
struct Staggered {
    handled: AtomicUsize,
}

impl Handler for Staggered {
    fn queue(&self) -> &'static str {
        EVENTS_QUEUE
    }

    async fn handle<O: Outbox>(&self, _: &Message, _: &O) -> Result<Handled, HandleError> {
        let n = self.handled.fetch_add(1, Ordering::SeqCst) as u64;
        tokio::time::sleep(Duration::from_micros((n % 50) * 40)).await;
        Ok(Handled::new("room_started", "applied"))
    }
}

#[tokio::test]
async fn the_worker_stops_after_its_connection_is_cut_while_many_acks_are_under_way() {
    let test = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672".into()).await;
    let proxied = proxy.through(&test.vhost.amqp_url);
    let amqp = AmqpSettings::from_env(&test.env_with(&[("AMQP_URL", &proxied)])).expect("amqp");
    topology::declare(&test.vhost.channel().await, &amqp.retry_delays)
        .await
        .expect("topology");
    // lapin 4.12 can leave an ack queued in the instant its connection fails pending forever
    // (seen once in the fault suite: the session waited for it, never reconnected and never
    // stopped; `settle::SETTLE_TIMEOUT` now bounds it). That instant is ~2 ms wide and this
    // test does not hit it reliably; it guards the rest: a few rounds, each cutting the
    // connection while ~200 acks are under way, after which the worker still stops.
    for round in 0..3 {
        let messages: Vec<(String, Vec<u8>)> = (0..200)
            .map(|n| {
                let id = format!("EV_{round}_{n}");
                let body = format!(r#"{{"event":"room_started","id":"{id}"}}"#);
                (id, body.into_bytes())
            })
            .collect();
        test.vhost
            .publish_all(EVENTS_EXCHANGE, "room.started", &messages)
            .await;
        let handler = Arc::new(Staggered::default());
        let worker = Consuming::start(handler.clone(), amqp.clone(), 200, 200);
        eventually(Duration::from_secs(10), "acks under way", || async {
            (handler.handled.load(Ordering::SeqCst) >= 20).then_some(())
        })
        .await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.restore();
        let stopped = tokio::time::timeout(Duration::from_secs(20), worker.stop()).await;
        assert!(
            stopped.is_ok(),
            "round {round}: the worker did not stop within 20 s: its session waits for an ack \
             that never completes"
        );
    }
}
