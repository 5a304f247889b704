// The webhook receiver teams write by hand, as scripts/bench-ingestor.sh's yardstick for
// roomtape-ingestor (issue 35): Node's http server, the official livekit-server-sdk
// WebhookReceiver (the token and the body's sha256) and amqplib publishing to livekit.events on
// a confirm channel; the answer is 200 only once RabbitMQ confirmed the message, as the
// ingestor's is. It does what a careful hand-written receiver does and nothing more: no dedupe,
// no pool of channels, no overload limit.
//
// Usage: AMQP_URL=… LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=… node receiver.mjs
// Prints {"port": N} once it listens on 127.0.0.1 (a free port); SIGTERM stops it.
import http from "node:http";
import amqp from "amqplib";
import { WebhookReceiver } from "livekit-server-sdk";

const EXCHANGE = "livekit.events";

const { AMQP_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET } = process.env;
if (!AMQP_URL || !LIVEKIT_API_KEY || !LIVEKIT_API_SECRET) {
  console.error("receiver: AMQP_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are required");
  process.exit(2);
}

const receiver = new WebhookReceiver(LIVEKIT_API_KEY, LIVEKIT_API_SECRET);
const connection = await amqp.connect(AMQP_URL);
const channel = await connection.createConfirmChannel();
// The ingestor of the same vhost declared the topology; a receiver only checks it is there.
await channel.checkExchange(EXCHANGE);

// With its length, as Express's res.send answers (Node's own default is a chunked body).
function answer(response, status, text) {
  response.writeHead(status, {
    "content-type": "text/plain",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

async function handle(request, response, body) {
  let event;
  try {
    event = await receiver.receive(body, request.headers.authorization);
  } catch (error) {
    answer(response, 401, String(error.message));
    return;
  }
  const properties = {
    persistent: true,
    contentType: "application/json",
    messageId: event.id,
    timestamp: Math.floor(Date.now() / 1000),
  };
  channel.publish(EXCHANGE, event.event.replaceAll("_", "."), Buffer.from(body), properties, (error) =>
    error ? answer(response, 503, "not confirmed") : answer(response, 200, "ok"),
  );
}

const server = http.createServer((request, response) => {
  if (request.method !== "POST") {
    answer(response, 405, "POST only");
    return;
  }
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    handle(request, response, Buffer.concat(chunks).toString("utf8")).catch((error) =>
      answer(response, 500, String(error.message)),
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});

process.on("SIGTERM", async () => {
  server.close();
  await channel.close().catch(() => {});
  await connection.close().catch(() => {});
  process.exit(0);
});
