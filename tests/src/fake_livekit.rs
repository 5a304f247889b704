//! A fake LiveKit Egress service for tests: it decodes the real protobuf requests, verifies the
//! real access token (HS256, `iss` = API key, `video.roomRecord`), keeps egresses in memory,
//! and can be told to fail.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use jwt_simple::prelude::{MACLike, VerificationOptions};
use prost::Message;
use roomtape_shared::auth::hs256_key;
use roomtape_shared::events::proto::{
    egress_info, EgressInfo, EgressStatus, FileInfo, ImagesInfo, ListEgressRequest,
    ListEgressResponse, ParticipantEgressRequest, Room, RoomCompositeEgressRequest,
    StopEgressRequest, TrackCompositeEgressRequest, TrackEgressRequest, WebhookEvent,
};
use serde::Deserialize;

use crate::test_server::TestServer;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub token: String,
}

/// A participant in a room of the fake, with the tracks it publishes.
#[derive(Debug, Clone)]
pub struct Participant {
    pub identity: String,
    pub track_ids: Vec<String>,
}

#[derive(Default)]
struct State {
    egresses: Vec<EgressInfo>,
    /// Who is in which room: participant and track egresses must name someone or something
    /// there.
    rooms: HashMap<String, Vec<Participant>>,
    calls: Vec<Call>,
    failures: VecDeque<&'static str>,
    /// How long the next calls take to answer (after they took effect).
    delays: VecDeque<std::time::Duration>,
    /// The Twirp errors the next starts answer with after LiveKit carried them out.
    lost_answers: VecDeque<&'static str>,
    /// Started egresses not listed until the test says so ([`FakeLiveKit::list_held`]).
    unlisted: Vec<EgressInfo>,
    /// How many of the next starts are carried out but answered 200 with a body that is not an
    /// `EgressInfo`.
    garbled_answers: usize,
    next_id: u32,
}

struct Keys {
    api_key: String,
    api_secret: String,
}

pub struct FakeLiveKit {
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: TestServer,
}

fn now_ns() -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    i64::try_from(nanos).expect("ns")
}

impl FakeLiveKit {
    pub fn start(api_key: &str, api_secret: &str) -> Self {
        Self::start_at(api_key, api_secret, "127.0.0.1:0")
    }

    /// The fake listening on `address` (a port a test kept free, to bring LiveKit "back").
    pub fn start_at(api_key: &str, api_secret: &str, address: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let keys = web::Data::new(Keys {
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
        });
        let data = web::Data::new(state.clone());
        let server = TestServer::start(address, move |cfg| {
            cfg.app_data(data.clone())
                .app_data(keys.clone())
                .route("/twirp/livekit.Egress/{method}", web::post().to(twirp));
        });
        Self {
            url: server.url(),
            state,
            _server: server,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("state"))
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.method == method)
                .cloned()
                .collect()
        })
    }

    /// The next `times` calls answer with the Twirp error `code`.
    pub fn fail_next(&self, code: &'static str, times: usize) {
        self.with(|s| s.failures.extend(std::iter::repeat_n(code, times)));
    }

    /// The next `times` calls take effect at once but are answered only after `delay`, as a
    /// LiveKit that stored the egress and is slow to say so.
    pub fn slow_next(&self, delay: std::time::Duration, times: usize) {
        self.with(|s| s.delays.extend(std::iter::repeat_n(delay, times)));
    }

    /// The next start is carried out, but answered with the Twirp error `code` (a 5xx after
    /// LiveKit stored the egress), and the egress shows in `ListEgress` only once the test
    /// calls [`Self::list_held`]: tests say when LiveKit catches up, no wall clock does.
    pub fn lose_next_answer(&self, code: &'static str) {
        self.with(|s| s.lost_answers.push_back(code));
    }

    /// The egresses whose start answer was lost show in `ListEgress` from now on.
    pub fn list_held(&self) {
        self.with(|s| {
            let held = std::mem::take(&mut s.unlisted);
            s.egresses.extend(held);
        });
    }

    /// The next start is carried out (and listed), but answered 200 with a body that does not
    /// decode.
    pub fn garble_next_answer(&self) {
        self.with(|s| s.garbled_answers += 1);
    }

    /// Every egress started so far, listed or not yet.
    pub fn started(&self) -> usize {
        self.with(|s| s.egresses.len() + s.unlisted.len())
    }

    /// `identity` joins `room`, publishing `track_ids`: participant and track egresses may
    /// name them from now on.
    pub fn join(&self, room: &str, identity: &str, track_ids: &[&str]) {
        self.with(|s| {
            s.rooms
                .entry(room.to_owned())
                .or_default()
                .push(Participant {
                    identity: identity.to_owned(),
                    track_ids: track_ids.iter().map(|t| (*t).to_owned()).collect(),
                })
        });
    }

    /// Adds an egress LiveKit knows about (as if started earlier).
    pub fn insert(&self, info: EgressInfo) {
        self.with(|s| s.egresses.push(info));
    }

    pub fn egress(&self, egress_id: &str) -> Option<EgressInfo> {
        self.with(|s| {
            s.egresses
                .iter()
                .find(|e| e.egress_id == egress_id)
                .cloned()
        })
    }

    /// `f` on the egress `egress_id`, which must be known.
    fn with_egress<T>(&self, egress_id: &str, f: impl FnOnce(&mut EgressInfo) -> T) -> T {
        self.with(|s| {
            let info = s
                .egresses
                .iter_mut()
                .find(|e| e.egress_id == egress_id)
                .expect("known egress");
            f(info)
        })
    }

    /// The egress finished and uploaded `key`, as LiveKit reports it.
    pub fn complete(&self, egress_id: &str, key: &str, size: i64) {
        self.with_egress(egress_id, |info| {
            info.status = EgressStatus::EgressComplete as i32;
            info.ended_at = now_ns();
            info.updated_at = now_ns();
            info.file_results = vec![FileInfo {
                filename: key.to_owned(),
                size,
                started_at: info.started_at,
                ended_at: info.ended_at,
                duration: info.ended_at - info.started_at,
                ..FileInfo::default()
            }];
        });
    }
}

impl FakeLiveKit {
    /// [`Self::complete`], and the egress's image output wrote `images` JPEGs, reported as
    /// LiveKit's egress reports them (a count, no prefix: where they are is in the request).
    pub fn complete_with_images(&self, egress_id: &str, key: &str, size: i64, images: i64) {
        self.complete(egress_id, key, size);
        self.with_egress(egress_id, |info| {
            info.image_results = vec![ImagesInfo {
                image_count: images,
                started_at: info.started_at,
                ended_at: info.ended_at,
                ..ImagesInfo::default()
            }];
        });
    }

    /// The `egress_ended` webhook LiveKit sends for the egress as it is now (protojson, as
    /// LiveKit writes it).
    pub fn ended_event(&self, egress_id: &str, event_id: &str) -> String {
        let info = self.egress(egress_id).expect("known egress");
        let event = WebhookEvent {
            event: "egress_ended".into(),
            room: Some(Room {
                sid: info.room_id.clone(),
                name: info.room_name.clone(),
                ..Room::default()
            }),
            egress_info: Some(info),
            id: event_id.into(),
            created_at: now_ns() / 1_000_000_000,
            ..WebhookEvent::default()
        };
        serde_json::to_string(&event).expect("protojson")
    }
}

#[derive(Deserialize)]
struct Grants {
    video: Option<VideoGrant>,
}

#[derive(Deserialize)]
struct VideoGrant {
    #[serde(rename = "roomRecord", default)]
    room_record: bool,
}

fn twirp_error(code: &str, msg: &str) -> HttpResponse {
    let status = match code {
        "not_found" | "bad_route" => 404,
        "failed_precondition" => 412,
        "unauthenticated" => 401,
        "permission_denied" => 403,
        "invalid_argument" => 400,
        "unavailable" => 503,
        _ => 500,
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(serde_json::json!({"code": code, "msg": msg}))
}

fn protobuf(message: &impl Message) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/protobuf")
        .body(message.encode_to_vec())
}

async fn twirp(
    method: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
    keys: web::Data<Keys>,
) -> HttpResponse {
    let delay = state.lock().expect("state").delays.pop_front();
    let response = answer(method, request, body, state, keys);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

fn answer(
    method: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
    keys: web::Data<Keys>,
) -> HttpResponse {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let options = VerificationOptions {
        allowed_issuers: Some(std::collections::HashSet::from([keys.api_key.clone()])),
        ..VerificationOptions::default()
    };
    let grants =
        hs256_key(keys.api_secret.as_bytes()).verify_token::<Grants>(&token, Some(options));
    match grants {
        Ok(claims) if claims.custom.video.as_ref().is_some_and(|v| v.room_record) => {}
        Ok(_) => return twirp_error("permission_denied", "roomRecord grant required"),
        Err(error) => return twirp_error("unauthenticated", &error.to_string()),
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type != "application/protobuf" {
        return twirp_error("bad_route", "content type must be application/protobuf");
    }
    let mut state = state.lock().expect("state");
    state.calls.push(Call {
        method: method.clone(),
        content_type,
        body: body.to_vec(),
        token,
    });
    if let Some(code) = state.failures.pop_front() {
        return twirp_error(code, "told to fail");
    }
    match method.as_str() {
        "StartRoomCompositeEgress"
        | "StartParticipantEgress"
        | "StartTrackCompositeEgress"
        | "StartTrackEgress" => {
            let (request, failure) = match start_request(&method, body, &state.rooms) {
                Ok(started) => started,
                Err(refusal) => return twirp_error(refusal.code, &refusal.msg),
            };
            state.next_id += 1;
            let info = EgressInfo {
                egress_id: format!("EG_fake{}", state.next_id),
                room_id: "RM_fake".into(),
                room_name: request_room(&request).to_owned(),
                status: EgressStatus::EgressStarting as i32,
                started_at: now_ns(),
                updated_at: now_ns(),
                request: Some(request),
                ..EgressInfo::default()
            };
            if state.garbled_answers > 0 {
                state.garbled_answers -= 1;
                state.egresses.push(info);
                // Field 1 with wire type 7, which protobuf does not have.
                return HttpResponse::Ok()
                    .content_type("application/protobuf")
                    .body(&b"\x0f\xff\xff"[..]);
            }
            let answer = protobuf(&info);
            let stored = match failure {
                // The egress fails once it has looked for what it was to record: as LiveKit's
                // `EgressInfo.SetFailed` (livekit/protocol livekit/livekit_egress.go).
                Some(error) => EgressInfo {
                    status: EgressStatus::EgressFailed as i32,
                    error,
                    error_code: 404,
                    details: "Failure".into(),
                    ended_at: now_ns(),
                    updated_at: now_ns(),
                    ..info
                },
                None => info,
            };
            match state.lost_answers.pop_front() {
                Some(code) => {
                    state.unlisted.push(stored);
                    twirp_error(code, "the egress started, but this answer says otherwise")
                }
                None => {
                    state.egresses.push(stored);
                    answer
                }
            }
        }
        "StopEgress" => {
            let Ok(request) = StopEgressRequest::decode(body) else {
                return twirp_error("malformed", "not a StopEgressRequest");
            };
            let Some(info) = state
                .egresses
                .iter_mut()
                .find(|e| e.egress_id == request.egress_id)
            else {
                return twirp_error("not_found", "egress not found");
            };
            if info.status > EgressStatus::EgressEnding as i32 {
                return twirp_error("failed_precondition", "egress already ended");
            }
            info.status = EgressStatus::EgressEnding as i32;
            info.updated_at = now_ns();
            protobuf(&info.clone())
        }
        "ListEgress" => {
            let Ok(request) = ListEgressRequest::decode(body) else {
                return twirp_error("malformed", "not a ListEgressRequest");
            };
            // Like LiveKit: asking for one egress it does not know is an error, not an empty list.
            let known = state
                .egresses
                .iter()
                .any(|e| e.egress_id == request.egress_id);
            if !request.egress_id.is_empty() && !known {
                return twirp_error("not_found", "egress not found");
            }
            let items = state
                .egresses
                .iter()
                .filter(|e| request.room_name.is_empty() || e.room_name == request.room_name)
                .filter(|e| request.egress_id.is_empty() || e.egress_id == request.egress_id)
                .filter(|e| !request.active || e.status <= EgressStatus::EgressEnding as i32)
                .cloned()
                .collect();
            protobuf(&ListEgressResponse {
                items,
                next_page_token: None,
            })
        }
        _ => twirp_error("bad_route", "no such method"),
    }
}

/// The room a start request names.
fn request_room(request: &egress_info::Request) -> &str {
    match request {
        egress_info::Request::RoomComposite(r) => &r.room_name,
        egress_info::Request::Participant(r) => &r.room_name,
        egress_info::Request::TrackComposite(r) => &r.room_name,
        egress_info::Request::Track(r) => &r.room_name,
        _ => "",
    }
}

/// A start's request decoded as the real protobuf, checked as LiveKit checks it: the Twirp
/// error it would answer otherwise, or, for a participant or track not in the room, the error
/// the egress fails with after it started (LiveKit answers `EGRESS_STARTING` first).
fn start_request(
    method: &str,
    body: web::Bytes,
    rooms: &HashMap<String, Vec<Participant>>,
) -> Result<(egress_info::Request, Option<String>), Refusal> {
    let malformed = |what: &str| Refusal {
        code: "malformed",
        msg: format!("not a {what}"),
    };
    let request = match method {
        "StartRoomCompositeEgress" => egress_info::Request::RoomComposite(
            RoomCompositeEgressRequest::decode(body)
                .map_err(|_| malformed("RoomCompositeEgressRequest"))?,
        ),
        "StartParticipantEgress" => egress_info::Request::Participant(
            ParticipantEgressRequest::decode(body)
                .map_err(|_| malformed("ParticipantEgressRequest"))?,
        ),
        "StartTrackCompositeEgress" => egress_info::Request::TrackComposite(
            TrackCompositeEgressRequest::decode(body)
                .map_err(|_| malformed("TrackCompositeEgressRequest"))?,
        ),
        _ => egress_info::Request::Track(
            TrackEgressRequest::decode(body).map_err(|_| malformed("TrackEgressRequest"))?,
        ),
    };
    let room_name = request_room(&request);
    if room_name.is_empty() {
        return Err(Refusal {
            code: "invalid_argument",
            msg: "room name required".into(),
        });
    }
    let failure = match &request {
        // LiveKit refuses images of a recording without video.
        egress_info::Request::RoomComposite(r) if r.audio_only && !r.image_outputs.is_empty() => {
            return Err(missing_field("audio_only images"));
        }
        // This fake knows no rooms of room composites: any name is a room.
        egress_info::Request::RoomComposite(_) => None,
        egress_info::Request::Participant(r) => {
            let room = existing_room(rooms, room_name)?;
            if r.identity.is_empty() {
                return Err(missing_field("identity"));
            }
            let present = room.iter().any(|p| p.identity == r.identity);
            // livekit/egress pkg/pipeline/source/sdk.go getParticipant → ErrParticipantNotFound
            // (pkg/errors/errors.go), after waiting 30 s for the participant.
            (!present).then(|| format!("participant {} not found", r.identity))
        }
        egress_info::Request::TrackComposite(r) => {
            let room = existing_room(rooms, room_name)?;
            if r.audio_track_id.is_empty() && r.video_track_id.is_empty() {
                return Err(missing_field("audio_track_id or video_track_id"));
            }
            missing_track(room, &[&r.audio_track_id, &r.video_track_id])
        }
        egress_info::Request::Track(r) => {
            let room = existing_room(rooms, room_name)?;
            if r.track_id.is_empty() {
                return Err(missing_field("track_id"));
            }
            missing_track(room, &[&r.track_id])
        }
        // Only the four starts above reach here.
        _ => None,
    };
    Ok((request, failure))
}

/// livekit/egress pkg/errors/errors.go `ErrInvalidInput`, returned by `PipelineConfig.Update`
/// (pkg/config/pipeline.go) before the start is answered: Twirp `invalid_argument`.
fn missing_field(field: &str) -> Refusal {
    Refusal {
        code: "invalid_argument",
        msg: format!("request has missing or invalid field: {field}"),
    }
}

/// The Twirp error a start is answered with instead of an egress.
struct Refusal {
    code: &'static str,
    msg: String,
}

/// The room's participants; a room nobody joined does not exist. livekit/livekit
/// pkg/service/egress.go `egressLauncher.StartEgress` loads the room and answers
/// `ErrRoomNotFound` (pkg/service/errors.go): Twirp `not_found`.
fn existing_room<'a>(
    rooms: &'a HashMap<String, Vec<Participant>>,
    name: &str,
) -> Result<&'a [Participant], Refusal> {
    rooms.get(name).map(Vec::as_slice).ok_or_else(|| Refusal {
        code: "not_found",
        msg: "requested room does not exist".into(),
    })
}

/// livekit/egress pkg/pipeline/source/sdk.go `subscribeToTracks` → `ErrTrackNotFound`
/// (pkg/errors/errors.go), after waiting 30 s for the track: the first id nobody publishes.
fn missing_track(room: &[Participant], track_ids: &[&String]) -> Option<String> {
    track_ids
        .iter()
        .filter(|id| !id.is_empty())
        .find(|id| !room.iter().any(|p| p.track_ids.contains(id)))
        .map(|id| format!("track {id} not found"))
}
