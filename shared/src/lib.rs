//! Everything the roomtape binaries share. Always there: configuration, the LiveKit event
//! model, the §4 command messages ([`commands`]), RabbitMQ ([`queue`]: connect, topology, confirmed publish, headers, reconnect),
//! telemetry, metrics, shutdown, the clock, recording [`kind`]s, [`hls`] playlists, [`ffmpeg`] (a video frame), [`redact`] (credentials out of what LiveKit reported). Behind features, so each binary links only what it
//! uses (the CLI links no HTTP server):
//!
//! | feature   | module      | what                                                       |
//! |-----------|-------------|------------------------------------------------------------|
//! | `db`      | [`db`], [`usage`] | PostgreSQL: pool, migrations, `recordings`, `assets`, outbox; usage sums |
//! | `storage` | [`storage`] | S3 buckets: HEAD, public URL, presigned GET, DELETE         |
//! | `library` | [`library`] | recordings for operators and the API: list, show, link, delete |
//! | `auth`    | [`auth`], [`token`] | HS256 keys, webhook signing, LiveKit token verification |
//! | `livekit` | [`livekit`] | LiveKit's Egress API (Twirp) and its tokens                 |
//! | `http`    | [`http`]    | `/healthz`, `/readyz`, `/metrics` on actix-web              |
//! | `notify`  | [`notify`]  | Standard Webhooks: sign and POST a notification             |

#[cfg(feature = "auth")]
pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod error_chain;
pub mod events;
pub mod ffmpeg;
pub mod hls;
#[cfg(feature = "http")]
pub mod http;
pub mod kind;
#[cfg(feature = "library")]
pub mod library;
#[cfg(feature = "livekit")]
pub mod livekit;
pub mod metrics;
#[cfg(feature = "notify")]
pub mod notify;
pub mod queue;
pub mod redact;
pub mod shutdown;
#[cfg(feature = "storage")]
pub mod storage;
pub mod telemetry;
#[cfg(feature = "auth")]
pub mod token;
#[cfg(feature = "db")]
pub mod usage;

pub use error_chain::Chain;
