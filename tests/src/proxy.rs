//! A TCP proxy a test can cut and restore, to take a dependency "down" for one app only
//! while other tests keep using the real server; or hold, to stall what the server sends (a
//! broker that stops confirming) while the connection stays open; or stall, to stop reading
//! what the client sends (a broker blocking a publisher under a resource alarm).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    /// The `:port` of the target, as it appears in the URLs that name it.
    target_port: String,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    held: watch::Sender<bool>,
    stalled: watch::Sender<bool>,
}

impl TcpProxy {
    /// Forwards `127.0.0.1:<port>` to `target` (`host:port`) until dropped.
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        Self::serve(target, listener)
    }

    /// Like [`Self::start`], with the smallest receive buffers the kernel allows, so that once
    /// [stalled](Self::stall) the client's writes block after a few kilobytes rather than after
    /// the megabytes loopback buffers grow to.
    pub async fn start_with_small_buffers(target: String) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(1).expect("SO_RCVBUF");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind proxy");
        Self::serve(target, socket.listen(64).expect("listen"))
    }

    fn serve(target: String, listener: TcpListener) -> Self {
        let target_port = target[target.rfind(':').unwrap_or(target.len())..].to_owned();
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (held, _) = watch::channel(false);
        let (stalled, _) = watch::channel(false);
        let (accept_up, accept_cut, accept_held, accept_stalled) =
            (up.clone(), cut.clone(), held.clone(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropping the socket refuses the connection
                }
                let target = target.clone();
                let mut cut_rx = accept_cut.subscribe();
                let held_rx = accept_held.subscribe();
                let stalled_rx = accept_stalled.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        () = pump(client_read, server_write, stalled_rx) => {}
                        () = pump(server_read, client_write, held_rx) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            target_port,
            up,
            cut,
            held,
            stalled,
        }
    }

    /// `url` (an AMQP or PostgreSQL URL naming the target) pointed at the proxy instead.
    pub fn through(&self, url: &str) -> String {
        url.replace(&self.target_port, &format!(":{}", self.port))
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Stops passing on what the server sends (confirms, for a broker) until [`Self::release`];
    /// what the client sends still reaches the server.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Stops reading what clients send until [`Self::unstall`], as RabbitMQ stops reading a
    /// blocked publisher's socket: once the buffers are full, the client's writes wait.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn unstall(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copies `from` to `to`, waiting while `held` is true: before reading, so that nothing is
/// taken off `from` (its sender's buffers fill), and before writing what was read.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut held: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        if held.wait_for(|held| !held).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if held.wait_for(|held| !held).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// An app's broker and database connections, each through a proxy of its own: killing the app
/// and cutting them ends it as a dead process ends (its transaction rolled back by PostgreSQL,
/// its unacked deliveries requeued by RabbitMQ), while the servers keep serving everyone else.
pub struct ProxiedLinks {
    pub broker: TcpProxy,
    pub database: TcpProxy,
    amqp_url: String,
    database_url: String,
}

impl ProxiedLinks {
    pub async fn start(test: &crate::TestEnv) -> Self {
        let broker = TcpProxy::start("127.0.0.1:5672".into()).await;
        let database = TcpProxy::start("127.0.0.1:5432".into()).await;
        let amqp_url = broker.through(test.env().get("AMQP_URL").expect("AMQP_URL"));
        let database_url = database.through(&test.database.url());
        Self {
            broker,
            database,
            amqp_url,
            database_url,
        }
    }

    /// The test's environment with `overrides`, connecting through the proxies.
    pub fn env(
        &self,
        test: &crate::TestEnv,
        overrides: &[(&str, &str)],
    ) -> roomtape_shared::config::Env {
        let mut vars = overrides.to_vec();
        vars.extend([
            ("AMQP_URL", self.amqp_url.as_str()),
            ("DATABASE_URL", self.database_url.as_str()),
        ]);
        test.env_with(&vars)
    }

    pub fn cut(&self) {
        self.broker.cut();
        self.database.cut();
    }
}
