//! The ingestor as a load target: each message is signed on the fly and POSTed as LiveKit does.

use std::time::Duration;

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::event::Source;
use crate::load::Target;
use crate::sign::Signer;

/// Longer than the ingestor's own publish-confirm timeout (5 s), so its 503s arrive as such.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs webhooks to one URL over a keep-alive pool of up to `concurrency` connections.
#[derive(Debug)]
pub struct Ingestor<S> {
    client: reqwest::Client,
    url: reqwest::Url,
    signer: Signer,
    events: S,
}

impl<S: Source> Ingestor<S> {
    pub fn new(url: &str, concurrency: usize, signer: Signer, events: S) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        let url = url
            .parse()
            .with_context(|| format!("ingestor URL {url:?}"))?;
        Ok(Self {
            client,
            url,
            signer,
            events,
        })
    }
}

impl<S: Source> Target for Ingestor<S> {
    async fn send(&self, n: u64) -> anyhow::Result<()> {
        let body = self.events.message(n).body;
        let token = self.signer.sign(&body);
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/webhook+json")
            .header(AUTHORIZATION, token)
            .body(body)
            .send()
            .await
            // Without the URL, identical failures group together in the report.
            .map_err(|e| anyhow::Error::new(e.without_url()).context("request failed"))?;
        let status = response.status();
        // Read the answer to the end so the connection goes back to the pool.
        let _ = response.bytes().await;
        anyhow::ensure!(status.is_success(), "HTTP {status}");
        Ok(())
    }
}
