//! One shutdown signal for the whole process, passed to every long-running task.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Resolves on SIGTERM (what orchestrators send) or Ctrl-C.
pub async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut sigterm) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A token cancelled when the process is asked to stop.
pub fn on_terminate_signal() -> Shutdown {
    let token = Shutdown::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        terminate_signal().await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}
