//! The ingestor as a load target: each message is signed on the fly and POSTed as LiveKit does.
//!
//! The HTTP/1.1 client is deliberately minimal, as wrk's is: one write per request, the answer
//! read into a reused buffer, keep-alive connections kept in a pool. The load generator shares
//! the machine's two cores with the ingestor and RabbitMQ, and reqwest spent about as much CPU
//! per request as the ingestor itself (`docs/benchmarks.md`), which the benchmark would then
//! have charged to the ingestor.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::event::Source;
use crate::load::Target;
use crate::sign::Signer;

/// Longer than the ingestor's own publish-confirm timeout (5 s), so its 503s arrive as such.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers are ~100 bytes of headers and a small JSON body.
const RESPONSE_BUFFER: usize = 1024;
const MAX_RESPONSE_HEADERS: usize = 32;

/// POSTs webhooks to one URL over keep-alive connections, one per request in flight.
#[derive(Debug)]
pub struct Ingestor<S> {
    address: SocketAddr,
    /// Request line and the headers every request shares, ending before `Authorization`.
    head: String,
    signer: Signer,
    events: S,
    idle: Mutex<Vec<Connection>>,
}

impl<S: Source> Ingestor<S> {
    pub fn new(url: &str, concurrency: usize, signer: Signer, events: S) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("ingestor URL {url:?}"))?;
        anyhow::ensure!(
            parsed.scheme() == "http",
            "ingestor URL {url:?}: only http:// is supported"
        );
        let host = parsed.host_str().context("ingestor URL has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let address = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let target = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        Ok(Self {
            address,
            head: format!(
                "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\
                 Content-Type: application/webhook+json\r\n"
            ),
            signer,
            events,
            idle: Mutex::new(Vec::with_capacity(concurrency)),
        })
    }

    fn request(&self, n: u64) -> Vec<u8> {
        let body = self.events.message(n).body;
        let token = self.signer.sign(&body);
        let mut request = Vec::with_capacity(self.head.len() + token.len() + body.len() + 64);
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(
            format!(
                "Authorization: {token}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(&body);
        request
    }

    fn pooled(&self) -> Option<Connection> {
        self.idle.lock().ok().and_then(|mut idle| idle.pop())
    }

    fn put_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
    }
}

impl<S: Source> Target for Ingestor<S> {
    async fn send(&self, n: u64) -> anyhow::Result<()> {
        let request = self.request(n);
        let exchange = async {
            // A pooled connection the ingestor closed while it sat idle (its keep-alive timeout)
            // fails before any answer arrives; the request goes again on a new connection, as
            // HTTP clients do with stale keep-alive connections.
            if let Some(mut connection) = self.pooled() {
                if let Ok(answer) = connection.exchange(&request).await {
                    return Ok((connection, answer));
                }
            }
            let mut connection = Connection::open(self.address).await?;
            let answer = connection.exchange(&request).await?;
            anyhow::Ok((connection, answer))
        };
        let (connection, answer) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
            .context("request failed")?;
        // A connection that failed or is closing is dropped; the next request opens another.
        if answer.keep_alive {
            self.put_back(connection);
        }
        anyhow::ensure!(
            (200..300).contains(&answer.status),
            "HTTP {}",
            answer.status
        );
        Ok(())
    }
}

/// One keep-alive connection and the buffer its answers are read into.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    keep_alive: bool,
}

impl Connection {
    async fn open(address: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(RESPONSE_BUFFER),
        })
    }

    /// Sends one request and reads its whole answer (head and `Content-Length` bytes of body).
    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            let read = self.stream.read_buf(&mut self.buffer).await?;
            anyhow::ensure!(read > 0, "the ingestor closed the connection");
            if let Some(answer) = complete_answer(&self.buffer)? {
                return Ok(answer);
            }
        }
    }
}

/// The answer in `buffer` once all of it has arrived; `None` while more is due.
fn complete_answer(buffer: &[u8]) -> anyhow::Result<Option<Answer>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(buffer)? else {
        return Ok(None);
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let body_len: usize = match header("content-length") {
        Some(value) => value.parse().context("bad Content-Length")?,
        None => anyhow::bail!("answer without Content-Length"),
    };
    if buffer.len() < head_len + body_len {
        return Ok(None);
    }
    Ok(Some(Answer {
        status: response.code.unwrap_or_default(),
        keep_alive: header("connection").as_deref() != Some("close"),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::net::TcpListener;

    use super::*;
    use crate::event::Events;

    /// A server that answers one request per connection with `status`, then closes it without
    /// saying so (as a keep-alive timeout does), and counts the connections it accepted.
    async fn one_answer_per_connection(status: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut request = vec![0; 8192];
                let _ = stream.read(&mut request).await;
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (address, accepted)
    }

    fn client(address: SocketAddr) -> Ingestor<Events> {
        let url = format!("http://{address}/webhooks/livekit");
        Ingestor::new(&url, 1, Signer::new("devkey", "secret"), Events::new("t")).expect("client")
    }

    #[tokio::test]
    async fn sends_again_on_a_new_connection_when_the_pooled_one_was_closed() {
        let (address, accepted) = one_answer_per_connection("200 OK").await;
        let ingestor = client(address);
        ingestor.send(1).await.expect("first request");
        ingestor
            .send(2)
            .await
            .expect("second request, after the server closed the first");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn counts_an_error_status_as_a_failure() {
        let (address, _) = one_answer_per_connection("503 Service Unavailable").await;
        let error = client(address).send(1).await.expect_err("503 is a failure");
        assert!(error.to_string().contains("HTTP 503"), "{error:#}");
    }

    #[test]
    fn waits_for_the_whole_body() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{}";
        assert!(complete_answer(answer).expect("parses").is_none());
        let answer =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
        let answer = complete_answer(answer).expect("parses").expect("complete");
        assert_eq!(answer.status, 503);
        assert!(!answer.keep_alive);
    }

    #[test]
    fn waits_for_the_whole_head() {
        assert!(complete_answer(b"HTTP/1.1 200 OK\r\ncontent-le")
            .expect("parses")
            .is_none());
    }
}
