//! The harness integration tests share: each test gets its own PostgreSQL database, RabbitMQ
//! vhost and S3 bucket on the real local servers (started by `deploy/local/services.sh`), and
//! apps bound to port 0. Everything is removed when the test's handles drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

pub mod api_client;
pub mod apps;
pub mod broker;
pub mod cors_proxy;
pub mod database;
pub mod fake_livekit;
pub mod fixtures;
pub mod livekit;
pub mod logs;
pub mod media;
pub mod outbox;
pub mod proxy;
pub mod reliability;
pub mod s3;
pub mod services;
pub mod shapes;
pub mod test_server;
pub mod wait;
pub mod webhook_sink;

pub use apps::{spawn_ingestor, spawn_processor, TestApp};
pub use services::TestEnv;
pub use wait::eventually;

/// Logs to stdout when `TEST_LOG` is set; silent otherwise ([`logs::install`]).
pub fn init_test_logging() {
    logs::install();
}

/// Runs `cleanup` to completion on a runtime of its own, from `Drop` (which cannot await).
pub(crate) fn cleanup_blocking<F>(cleanup: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        runtime.block_on(cleanup);
    });
    let _ = worker.join();
}
