//! The HTTP server every roomtape binary runs (the ingestor's webhooks, the API, the
//! processor's ops port), built and stopped one way.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_http::{Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server};
use actix_web::HttpServer;

/// How many connections may wait to be accepted: actix-web's own default. `std`'s listener
/// asks for 128, so a burst of more new connections than that (a join storm at 256 connections)
/// has SYNs dropped and retried a second later.
const LISTEN_BACKLOG: i32 = 2048;

/// A listening socket on `address` (port 0 picks a free one) with [`LISTEN_BACKLOG`].
fn listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// How one server runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Where to listen; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Worker threads; `None` is actix-web's default, one per CPU.
    pub workers: Option<usize>,
    /// How long in-flight requests get to finish once the server is told to stop.
    pub shutdown_grace: Duration,
}

/// A bound, not yet running server. It handles no signals of its own: the process's one
/// shutdown decides when it stops ([`HttpService::serve_until`]).
pub struct HttpService {
    port: u16,
    server: Server,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl HttpService {
    /// Binds `options.bind` and starts the workers, each with its own `app` (actix-web runs the
    /// factory once per worker thread).
    pub fn bind<F, I, S, B>(options: ServerOptions, app: F) -> std::io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: std::fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let listener = listener(options.bind)?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(app);
        if let Some(workers) = options.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)?
            // Answers are small: send each at once rather than wait to coalesce (Nagle).
            .tcp_nodelay(true)
            .disable_signals()
            .shutdown_timeout(options.shutdown_grace.as_secs())
            .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `stop` resolves, then stops taking connections and lets in-flight requests
    /// finish within the grace period.
    pub async fn serve_until(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        stop.await;
        tracing::info!(port = self.port, "draining in-flight requests");
        handle.stop(true).await;
        server.await.map_err(std::io::Error::other)?
    }
}
