//! The RabbitMQ topology: declared idempotently, and a confirmed publish is consumed and acked.

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use roomtape_shared::queue::topology::{self, DEAD_QUEUE, EVENTS_EXCHANGE, EVENTS_QUEUE};
use roomtape_tests::TestEnv;
use std::time::Duration;

const DELAYS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(200)];

#[tokio::test]
async fn topology_declares_twice_from_two_connections() {
    let test = TestEnv::new().await;
    topology::declare(&test.vhost.channel().await, &DELAYS)
        .await
        .expect("first declare");
    topology::declare(&test.vhost.channel().await, &DELAYS)
        .await
        .expect("second declare");
    for queue in [
        EVENTS_QUEUE,
        DEAD_QUEUE,
        "roomtape.commands",
        "roomtape.events.retry.100ms",
    ] {
        assert_eq!(
            test.vhost.ready_count(queue).await,
            0,
            "{queue} exists and is empty"
        );
    }
}

#[tokio::test]
async fn a_confirmed_publish_is_consumed_and_acked() {
    let test = TestEnv::new().await;
    let channel = test.vhost.channel().await;
    topology::declare(&channel, &DELAYS).await.expect("declare");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");

    let confirmation = channel
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            "egress.ended".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            br#"{"event":"egress_ended"}"#,
            BasicProperties::default()
                .with_message_id("EV_1".into())
                .with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirmation.is_ack());
    assert!(
        confirmation.take_message().is_none(),
        "routed to roomtape.events"
    );

    let consumer_channel = test.vhost.channel().await;
    let mut consumer = consumer_channel
        .basic_consume(
            EVENTS_QUEUE.into(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery in time")
        .expect("stream open")
        .expect("delivery");
    assert_eq!(delivery.data, br#"{"event":"egress_ended"}"#);
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("EV_1")
    );
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    // Closing the channel would return an unacked message to the queue.
    consumer_channel
        .close(200, "done".into())
        .await
        .expect("close");
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await,
        0,
        "the ack removed the message"
    );
}
