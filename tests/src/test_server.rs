//! The HTTP server under the tests' doubles (the fake LiveKit, an app's webhook endpoint, a
//! bucket's CORS rule): one worker on a loopback port, no signal handling of its own, stopped
//! when dropped.

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub struct TestServer {
    pub port: u16,
    handle: ServerHandle,
}

impl TestServer {
    /// Serves what `configure` routes on `address` (`127.0.0.1:0` for any free port).
    pub fn start(
        address: &str,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> Self {
        let listener = std::net::TcpListener::bind(address).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || App::new().configure(configure.clone()))
            .workers(1)
            .listen(listener)
            .expect("listen")
            .disable_signals()
            .shutdown_timeout(0)
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { port, handle }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Asked, not awaited: the server runs on the test's runtime, which is busy dropping.
        drop(self.handle.stop(false));
    }
}
