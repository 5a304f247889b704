//! The suite's own RabbitMQ node, PostgreSQL cluster and S3 server, on free ports under its
//! work directory, so its faults (restarts, stops, closed connections) never touch the
//! machine's shared servers. Each is stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// A port nothing listens on and not handed out before, below the ephemeral range (so no client
/// connection can be holding it when a server binds it later).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 8_000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "no free port left below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs `command`, failing with its output when it fails.
fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("{command:?} failed: {text}");
    }
    Ok(text)
}

/// Output files a server appends to.
fn log_file(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok((file.try_clone()?.into(), file.into()))
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A RabbitMQ node of its own (no plugins: it starts in seconds).
pub struct RabbitNode {
    pub name: String,
    pub port: u16,
    dir: PathBuf,
    server: Option<Child>,
}

const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";

impl RabbitNode {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("mnesia"))?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(dir.join("rabbitmq.conf"), "loopback_users = none\n")?;
        let mut node = Self {
            name: format!("roomtape-reliability-{}@localhost", std::process::id()),
            port: free_port(),
            dir: dir.to_owned(),
            server: None,
        };
        node.launch()?;
        Ok(node)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let (out, err) = log_file(&self.dir.join("server.log"))?;
        let dist_port = free_port();
        let server = Command::new(format!("{RABBIT_BIN}/rabbitmq-server"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", &self.dir)
            .stdout(out)
            .stderr(err)
            .spawn()
            .context(
                "cannot start rabbitmq-server (is RabbitMQ installed? deploy/local/services.sh)",
            )?;
        self.server = Some(server);
        // `await_startup` fails at once until the node has registered with epmd.
        let mut last = None;
        for _ in 0..60 {
            match self.ctl(&["await_startup", "--timeout", "90"]) {
                Ok(_) => return Ok(()),
                Err(error) => last = Some(error),
            }
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                bail!(
                    "rabbitmq-server exited with {status} (see {})",
                    self.dir.join("server.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("RabbitMQ did not start")))
    }

    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(format!("{RABBIT_BIN}/rabbitmqctl"))
            .args(["-n", &self.name])
            .args(args))
    }

    /// Stops the node cleanly and starts it again on the same ports and data.
    pub fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        self.ctl(&["stop"])?;
        if let Some(mut server) = self.server.take() {
            server.wait()?;
        }
        std::thread::sleep(down_for);
        self.launch()
    }

    /// The broker closes every client connection, as an operator or a failover would.
    pub fn close_all_connections(&self) -> anyhow::Result<()> {
        self.ctl(&["close_all_connections", "roomtape reliability suite"])
            .map(drop)
    }

    /// Raises a memory alarm (`on`: the high watermark at 1 byte), or lifts it (back to the
    /// default 0.4 of the machine's memory). RabbitMQ then blocks every publishing connection.
    pub fn memory_alarm(&self, on: bool) -> anyhow::Result<()> {
        let watermark: &[&str] = if on { &["absolute", "1"] } else { &["0.4"] };
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(watermark);
        self.ctl(&args).map(drop)
    }

    pub fn add_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        self.ctl(&["add_user", user, password])?;
        self.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"])
            .map(drop)
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        stop_child(&mut self.server);
    }
}

/// A PostgreSQL cluster of its own, run as the `postgres` user.
pub struct PostgresCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
}

impl PostgresCluster {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (deploy/local/services.sh installs it)")?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .context("no initdb under /usr/lib/postgresql")?;
        std::fs::create_dir_all(dir)?;
        run(Command::new("chown").args(["postgres:postgres"]).arg(dir))?;
        let cluster = Self {
            port: free_port(),
            bin,
            data: dir.join("data"),
            socket_dir: dir.to_owned(),
        };
        let initdb = cluster.bin.join("initdb");
        run(as_postgres(&initdb)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&cluster.data))?;
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    fn pg_ctl(&self, action: &[&str]) -> anyhow::Result<String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.socket_dir.display()
        );
        run(as_postgres(&self.bin.join("pg_ctl"))
            .args(action)
            .args(["-w", "-m", "fast", "-o", &options, "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(self.socket_dir.join("postgres.log")))
    }

    /// A fast shutdown (sessions cut, transactions rolled back) and a start.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["restart"]).map(drop)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop"]);
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

/// The local S3 server (s3s-fs with TCP_NODELAY, deploy/local/s3s-fs-nodelay) of its own, over a
/// folder (a bucket is a subfolder).
pub struct S3Server {
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    root: PathBuf,
    server: Option<Child>,
}

impl S3Server {
    pub fn start(root: &Path, bucket: &str, secret_key: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join(bucket))?;
        let mut server = Self {
            port: free_port(),
            access_key: "roomtape-reliability".into(),
            secret_key: secret_key.into(),
            root: root.to_owned(),
            server: None,
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let (out, err) = log_file(&self.root.with_extension("log"))?;
        let port = self.port.to_string();
        let server = Command::new("s3s-fs-nodelay")
            .args(["--host", "127.0.0.1", "--port", &port])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
                ".",
            ])
            .current_dir(&self.root)
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("cannot start s3s-fs-nodelay (deploy/local/services.sh installs it)")?;
        self.server = Some(server);
        wait_for_port(self.port)
    }

    pub fn stop(&mut self) {
        stop_child(&mut self.server);
    }

    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.launch()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to 30 s for something to listen on `port`.
pub fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listens on 127.0.0.1:{port} after 30 s")
}
