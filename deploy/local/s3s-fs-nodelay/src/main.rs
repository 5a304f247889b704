//! s3s-fs's server (`s3s-fs` 0.14.1's `main.rs`, Apache-2.0, same flags) with one change:
//! every accepted connection gets `TCP_NODELAY`, as production HTTP servers set it, so a GET's
//! body is not held back by Nagle's algorithm until the client's delayed ACK.

use std::path::PathBuf;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::host::MultiDomain;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tracing::info;

#[derive(Debug, Parser)]
#[command(version)]
struct Opt {
    /// Host name to listen on.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Port number to listen on.
    #[arg(long, default_value = "8014")]
    port: u16,
    /// Access key used for authentication (with --secret-key).
    #[arg(long, requires = "secret_key")]
    access_key: Option<String>,
    /// Secret key used for authentication (with --access-key).
    #[arg(long, requires = "access_key")]
    secret_key: Option<String>,
    /// Domain names used for virtual-hosted-style requests.
    #[arg(long)]
    domain: Vec<String>,
    /// Root directory of stored data.
    root: PathBuf,
}

#[tokio::main]
async fn main() -> s3s_fs::Result {
    let opt = Opt::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let mut builder = S3ServiceBuilder::new(FileSystem::new(opt.root)?);
    if let (Some(access_key), Some(secret_key)) = (opt.access_key, opt.secret_key) {
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        info!("authentication is enabled");
    }
    if !opt.domain.is_empty() {
        builder.set_host(MultiDomain::new(&opt.domain)?);
        info!("virtual-hosted-style requests are enabled");
    }
    let service = builder.build();

    let listener = TcpListener::bind((opt.host.as_str(), opt.port)).await?;
    info!("server is running at http://{}", listener.local_addr()?);
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(error) => {
                    tracing::error!("error accepting connection: {error}");
                    continue;
                }
            },
            _ = ctrl_c.as_mut() => break,
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::warn!("could not set TCP_NODELAY: {error}");
        }
        let connection = http.serve_connection(TokioIo::new(socket), service.clone());
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
    }
    info!("server is stopped");
    Ok(())
}
