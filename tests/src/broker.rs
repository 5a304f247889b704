//! A fresh RabbitMQ vhost per test (through the management API), deleted afterwards, and
//! helpers to look at its queues.

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

pub struct TestVhost {
    pub name: String,
    api: String,
    /// `AMQP_URL` for this vhost.
    pub amqp_url: String,
}

impl TestVhost {
    pub async fn create(amqp_base: &str, api: &str) -> Self {
        let name = format!("roomtape-test-{}", uuid::Uuid::new_v4().simple());
        let http = reqwest::Client::new();
        http.put(format!("{api}/api/vhosts/{name}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect(
                "create vhost: is the RabbitMQ management API up? run deploy/local/services.sh",
            );
        http.put(format!("{api}/api/permissions/{name}/guest"))
            .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("grant vhost permissions");
        Self {
            amqp_url: format!("{amqp_base}/{name}"),
            name,
            api: api.to_owned(),
        }
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .expect("connect to test vhost")
    }

    /// A channel on a fresh connection, which lives as long as the channel does.
    pub async fn channel(&self) -> Channel {
        self.connect()
            .await
            .create_channel()
            .await
            .expect("channel")
    }

    /// Messages ready in `queue` (passive declare; the queue must exist).
    pub async fn ready_count(&self, queue: &str) -> u32 {
        let channel = self.channel().await;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let count = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .expect("passive declare")
            .message_count();
        let _ = channel.close(200, "done".into()).await;
        count
    }

    /// Takes every message off `queue` (acking them), in queue order.
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let channel = self.channel().await;
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            message.ack(BasicAckOptions::default()).await.expect("ack");
            messages.push(message);
        }
        let _ = channel.close(200, "drained".into()).await;
        messages
    }

    /// Takes one message off `queue`, acking it.
    pub async fn get(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        let channel = self.channel().await;
        let message = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get")?;
        message.ack(BasicAckOptions::default()).await.expect("ack");
        Some(message)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let url = format!("{}/api/vhosts/{}", self.api, self.name);
        crate::cleanup_blocking(async move {
            let _ = reqwest::Client::new().delete(url).send().await;
        });
    }
}

impl TestVhost {
    /// The names of the AMQP connections open to this vhost whose client named them
    /// `client_name…`, as the management API lists them (it may lag a few seconds behind).
    pub async fn connections(&self, client_name: &str) -> Vec<String> {
        let listed: Vec<serde_json::Value> =
            reqwest::get(format!("{}/api/vhosts/{}/connections", self.api, self.name))
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("list connections")
                .json()
                .await
                .expect("connections JSON");
        listed
            .iter()
            .filter(|c| {
                c["user_provided_name"]
                    .as_str()
                    .is_some_and(|name| name.starts_with(client_name))
            })
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Closes connection `name` from the broker's side, as an operator (or a broker restart
    /// of one node) would.
    pub async fn close_connection(&self, name: &str) {
        let mut url = reqwest::Url::parse(&self.api).expect("management URL");
        url.path_segments_mut()
            .expect("base")
            .pop_if_empty()
            .extend(["api", "connections", name]);
        reqwest::Client::new()
            .delete(url)
            .header("x-reason", "closed by a test")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("close connection");
    }

    /// Publishes `body` to `exchange` as the ingestor would (persistent, confirmed).
    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8], message_id: &str) {
        let message = (message_id.to_owned(), body.to_vec());
        self.publish_all(exchange, routing_key, &[message]).await;
    }

    /// Publishes each `(message_id, body)` on one confirmed channel.
    pub async fn publish_all(
        &self,
        exchange: &str,
        routing_key: &str,
        messages: &[(String, Vec<u8>)],
    ) {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let channel = self.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        for (message_id, body) in messages {
            let properties = lapin::BasicProperties::default()
                .with_message_id(message_id.as_str().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            let confirmation = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(confirmation.is_ack(), "broker confirmed");
        }
    }
}

impl TestVhost {
    /// Publishes a command to `roomtape.commands` with `reply_to` and waits for the reply.
    pub async fn command(
        &self,
        routing_key: &str,
        body: &serde_json::Value,
        message_id: &str,
    ) -> serde_json::Value {
        use futures_util::StreamExt;
        use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
        let channel = self.channel().await;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .expect("reply queue");
        let consume = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut replies = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                consume,
                FieldTable::default(),
            )
            .await
            .expect("consume replies");
        let correlation_id = format!("corr-{message_id}");
        let properties = lapin::BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_reply_to(queue.name().clone())
            .with_correlation_id(correlation_id.as_str().into());
        channel
            .basic_publish(
                "roomtape.commands".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                properties,
            )
            .await
            .expect("publish command");
        let reply = tokio::time::timeout(std::time::Duration::from_secs(30), replies.next())
            .await
            .expect("a reply in time")
            .expect("reply stream")
            .expect("reply");
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some(correlation_id.as_str())
        );
        serde_json::from_slice(&reply.data).expect("JSON reply")
    }
}
