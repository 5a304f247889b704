//! What a token may do: the one table of rules (CONTRACTS §7). A static `API_TOKENS` token has
//! its scope; a LiveKit access token has its `video` grant, read as LiveKit defines it:
//!
//! | grant                | may                                                         |
//! |----------------------|-------------------------------------------------------------|
//! | `roomRecord`         | start, stop and read recordings (only `room`'s when set)    |
//! | `roomAdmin` + `room` | read and delete that room's recordings                      |
//! | `roomJoin` + `room`  | read that room's `ready` recordings (`API_LIVEKIT_JOIN_READS`) |
//! | `roomList`           | the rooms list                                              |
//!
//! Anything else is [`Denied`], naming the grant that would allow it. Pure: no I/O, so the
//! table is tested as a table.

use roomtape_shared::db::recordings::Status;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::config::Scope;

/// The `video` claim of a LiveKit access token (livekit/protocol `auth.VideoGrant`), the fields
/// roomtape reads; LiveKit omits false and empty ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    #[serde(default)]
    pub room_record: bool,
    #[serde(default)]
    pub room_admin: bool,
    #[serde(default)]
    pub room_join: bool,
    #[serde(default)]
    pub room_list: bool,
    /// The room the grant is for; LiveKit's empty string is no room.
    #[serde(default, deserialize_with = "non_empty")]
    pub room: Option<String>,
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let room = Option::<String>::deserialize(deserializer)?;
    Ok(room.filter(|r| !r.is_empty()))
}

/// What a token was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissions {
    Static(Scope),
    LiveKit {
        grant: VideoGrant,
        /// `API_LIVEKIT_JOIN_READS`.
        join_reads: bool,
    },
}

/// What a request does, and to which room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    Start(&'a str),
    Stop(&'a str),
    /// Read a recording (details, download) of this room and status.
    Read(&'a str, Status),
    /// List a room's recordings.
    ListRoom(&'a str),
    Delete(&'a str),
    ListRooms,
}

/// One thing a token may do, as `GET /api/v1/me` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Read,
    Start,
    Stop,
    Delete,
    Rooms,
    /// Usage and retention (`GET /api/v1/usage`).
    Usage,
}

/// The recordings a token may read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Readable {
    /// Only this room's; `None`: every room's.
    room: Option<String>,
    /// Only `ready` ones.
    ready_only: bool,
}

/// What a list of recordings is narrowed to, in SQL, so that pages stay full and a list holds
/// only what the token may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub room: Option<String>,
    pub status: Option<Status>,
}

/// Why a token may not do something: answered 403 `forbidden`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// A static token of scope `read` where writing is needed.
    #[error("this token may only read")]
    ReadOnly,
    /// A LiveKit token on a route that takes `API_TOKENS` tokens only.
    #[error("this route takes API_TOKENS tokens only, not LiveKit access tokens")]
    StaticOnly,
    /// A LiveKit token without the grant needed.
    #[error("{action} needs a LiveKit token with the video grant {needed}")]
    Grant { action: String, needed: String },
}

fn grant(action: impl Into<String>, needed: impl Into<String>) -> Denied {
    Denied::Grant {
        action: action.into(),
        needed: needed.into(),
    }
}

impl VideoGrant {
    /// Whether the grant's `room` covers `room`: it is that room, or (`any_room`) none is set.
    fn covers(&self, room: &str, any_room: bool) -> bool {
        match &self.room {
            Some(granted) => granted == room,
            None => any_room,
        }
    }

    fn records(&self, room: &str) -> bool {
        self.room_record && self.covers(room, true)
    }

    fn administers(&self, room: &str) -> bool {
        self.room_admin && self.covers(room, false)
    }

    fn joins(&self, room: &str, join_reads: bool) -> bool {
        join_reads && self.room_join && self.covers(room, false)
    }
}

impl Permissions {
    /// `Ok` when the token may do `action`.
    pub fn check(&self, action: Action<'_>) -> Result<(), Denied> {
        let (video, join_reads) = match self {
            Self::Static(Scope::Write) => return Ok(()),
            Self::Static(Scope::Read) => {
                return match action {
                    Action::Read(..) | Action::ListRoom(_) | Action::ListRooms => Ok(()),
                    _ => Err(Denied::ReadOnly),
                }
            }
            Self::LiveKit { grant, join_reads } => (grant, *join_reads),
        };
        match action {
            Action::Start(room) | Action::Stop(room) if video.records(room) => Ok(()),
            Action::Start(room) => Err(grant(
                format!("starting a recording of room {room:?}"),
                format!("roomRecord (with room {room:?} or none)"),
            )),
            Action::Stop(room) => Err(grant(
                format!("stopping the recordings of room {room:?}"),
                format!("roomRecord (with room {room:?} or none)"),
            )),
            Action::Read(room, status) => {
                let joined = video.joins(room, join_reads) && status == Status::Ready;
                if video.records(room) || video.administers(room) || joined {
                    Ok(())
                } else {
                    Err(grant(
                        format!("reading a {status} recording of room {room:?}"),
                        read_needed(room, status, join_reads),
                    ))
                }
            }
            Action::ListRoom(room)
                if video.records(room)
                    || video.administers(room)
                    || video.joins(room, join_reads) =>
            {
                Ok(())
            }
            Action::ListRoom(room) => Err(grant(
                format!("listing the recordings of room {room:?}"),
                read_needed(room, Status::Ready, join_reads),
            )),
            Action::Delete(room) if video.administers(room) => Ok(()),
            Action::Delete(room) => Err(grant(
                format!("deleting a recording of room {room:?}"),
                format!("roomAdmin with room {room:?}"),
            )),
            Action::ListRooms if video.room_list => Ok(()),
            Action::ListRooms => Err(grant("listing the rooms", "roomList")),
        }
    }

    /// A list asked for `room` and `status`, narrowed to what the token may read; `None` when
    /// nothing it may read can match (a `roomJoin` token asking for failed recordings).
    pub fn narrow(
        &self,
        room: Option<&str>,
        status: Option<Status>,
    ) -> Result<Option<ListFilter>, Denied> {
        if let Some(room) = room {
            self.check(Action::ListRoom(room))?;
        }
        let readable = self.readable()?;
        let room = room.map(str::to_owned).or(readable.room);
        let status = match (readable.ready_only, status) {
            (false, status) => status,
            (true, None | Some(Status::Ready)) => Some(Status::Ready),
            (true, Some(_)) => return Ok(None),
        };
        Ok(Some(ListFilter { room, status }))
    }

    /// The recordings a list may hold, or why the token may read none at all.
    fn readable(&self) -> Result<Readable, Denied> {
        let every = Readable {
            room: None,
            ready_only: false,
        };
        let Self::LiveKit {
            grant: video,
            join_reads,
        } = self
        else {
            return Ok(every);
        };
        match &video.room {
            None if video.room_record => Ok(every),
            Some(room) if video.room_record || video.room_admin => Ok(Readable {
                room: Some(room.clone()),
                ready_only: false,
            }),
            Some(room) if video.room_join && *join_reads => Ok(Readable {
                room: Some(room.clone()),
                ready_only: true,
            }),
            _ => Err(grant(
                "listing recordings",
                if *join_reads {
                    "roomRecord, or roomAdmin or roomJoin with a room"
                } else {
                    "roomRecord, or roomAdmin with a room"
                },
            )),
        }
    }

    /// Everything the token may do somewhere, for the console to show only what works.
    pub fn can(&self) -> Vec<Capability> {
        match self {
            Self::Static(Scope::Write) => vec![
                Capability::Read,
                Capability::Start,
                Capability::Stop,
                Capability::Delete,
                Capability::Rooms,
                Capability::Usage,
            ],
            Self::Static(Scope::Read) => {
                vec![Capability::Read, Capability::Rooms, Capability::Usage]
            }
            Self::LiveKit { grant: video, .. } => {
                let mut can = Vec::new();
                if self.readable().is_ok() {
                    can.push(Capability::Read);
                }
                if video.room_record {
                    can.extend([Capability::Start, Capability::Stop]);
                }
                if video.room_admin && video.room.is_some() {
                    can.extend([Capability::Delete, Capability::Usage]);
                }
                if video.room_list {
                    can.push(Capability::Rooms);
                }
                can
            }
        }
    }

    /// The room whose usage the token may read when it asks for `room` (`None`: every room's):
    /// a static token reads all usage, a LiveKit `roomAdmin` token its room's only.
    pub fn usage_of(&self, room: Option<&str>) -> Result<Option<String>, Denied> {
        let Self::LiveKit { grant: video, .. } = self else {
            return Ok(room.map(str::to_owned));
        };
        match (&video.room, room) {
            (Some(granted), None) if video.room_admin => Ok(Some(granted.clone())),
            (Some(_), Some(room)) if video.administers(room) => Ok(Some(room.to_owned())),
            _ => Err(grant(
                "reading usage",
                match room {
                    Some(room) => format!("roomAdmin with room {room:?}"),
                    None => "roomAdmin with a room".to_owned(),
                },
            )),
        }
    }

    /// The one room a LiveKit token's grant is for, if any.
    pub fn room(&self) -> Option<&str> {
        match self {
            Self::LiveKit { grant, .. } => grant.room.as_deref(),
            Self::Static(_) => None,
        }
    }
}

fn read_needed(room: &str, status: Status, join_reads: bool) -> String {
    let mut needed =
        format!("roomRecord (with room {room:?} or none), or roomAdmin with room {room:?}");
    match (join_reads, status) {
        (true, Status::Ready) => needed.push_str(&format!(", or roomJoin with room {room:?}")),
        (true, _) => needed.push_str(" (roomJoin reads only ready recordings)"),
        (false, _) => {}
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Delete, ListRoom, ListRooms, Read, Start, Stop};
    use Status::{Failed, Ready};

    fn livekit(grant: serde_json::Value) -> Permissions {
        Permissions::LiveKit {
            grant: serde_json::from_value(grant).expect("a video grant"),
            join_reads: true,
        }
    }

    const R1: &str = "r1";
    const R2: &str = "r2";

    /// Every action against every kind of token: allowed (`true`) or denied.
    #[test]
    fn the_rules_table() {
        use serde_json::json;
        let actions = [
            Start(R1),
            Stop(R1),
            Read(R1, Ready),
            Read(R1, Failed),
            Delete(R1),
            Start(R2),
            Read(R2, Ready),
            Delete(R2),
            ListRooms,
            ListRoom(R1),
            ListRoom(R2),
        ];
        #[rustfmt::skip]
        let table: [(&str, Permissions, [bool; 11]); 11] = [
            //                                   start stop  read  readF del   start2 read2 del2  rooms list1 list2
            ("static write", Permissions::Static(Scope::Write),
                                                 [true, true, true, true, true, true,  true, true, true, true,true]),
            ("static read", Permissions::Static(Scope::Read),
                                                 [false,false,true, true, false,false, true, false,true, true,true]),
            ("roomRecord", livekit(json!({"roomRecord": true})),
                                                 [true, true, true, true, false,true,  true, false,false, true,true]),
            ("roomRecord r1", livekit(json!({"roomRecord": true, "room": R1})),
                                                 [true, true, true, true, false,false, false,false,false, true,false]),
            ("roomAdmin r1", livekit(json!({"roomAdmin": true, "room": R1})),
                                                 [false,false,true, true, true, false, false,false,false, true,false]),
            ("roomAdmin, no room", livekit(json!({"roomAdmin": true})),
                                                 [false,false,false,false,false,false, false,false,false, false,false]),
            ("roomJoin r1", livekit(json!({"roomJoin": true, "room": R1})),
                                                 [false,false,true, false,false,false, false,false,false, true,false]),
            ("roomJoin, no room", livekit(json!({"roomJoin": true})),
                                                 [false,false,false,false,false,false, false,false,false, false,false]),
            ("roomList", livekit(json!({"roomList": true, "room": ""})),
                                                 [false,false,false,false,false,false, false,false,true, false,false]),
            ("no grant", livekit(json!({})),
                                                 [false,false,false,false,false,false, false,false,false, false,false]),
            ("roomJoin r1, reads off", Permissions::LiveKit {
                grant: serde_json::from_value(json!({"roomJoin": true, "room": R1})).expect("grant"),
                join_reads: false },
                                                 [false,false,false,false,false,false, false,false,false, false,false]),
        ];
        for (name, permissions, expected) in table {
            for (action, allowed) in actions.iter().zip(expected) {
                let got = permissions.check(*action);
                assert_eq!(got.is_ok(), allowed, "{name}: {action:?}: {got:?}");
            }
        }
    }

    #[test]
    fn lists_narrow_to_what_the_token_reads() {
        use serde_json::json;
        let filter = |room: Option<&str>, status| {
            Some(ListFilter {
                room: room.map(str::to_owned),
                status,
            })
        };
        let record = livekit(json!({"roomRecord": true}));
        let record_r1 = livekit(json!({"roomRecord": true, "room": R1}));
        let admin_r1 = livekit(json!({"roomAdmin": true, "room": R1}));
        let join_r1 = livekit(json!({"roomJoin": true, "room": R1}));
        let read = Permissions::Static(Scope::Read);
        for (name, permissions, room, status, expected) in [
            ("static", &read, None, None, filter(None, None)),
            (
                "static",
                &read,
                Some(R2),
                Some(Failed),
                filter(Some(R2), Some(Failed)),
            ),
            ("record", &record, Some(R2), None, filter(Some(R2), None)),
            (
                "record r1",
                &record_r1,
                None,
                Some(Failed),
                filter(Some(R1), Some(Failed)),
            ),
            ("admin r1", &admin_r1, None, None, filter(Some(R1), None)),
            (
                "join r1",
                &join_r1,
                None,
                None,
                filter(Some(R1), Some(Ready)),
            ),
            (
                "join r1",
                &join_r1,
                Some(R1),
                Some(Ready),
                filter(Some(R1), Some(Ready)),
            ),
            ("join r1, failed", &join_r1, None, Some(Failed), None),
        ] {
            assert_eq!(
                permissions.narrow(room, status),
                Ok(expected),
                "{name} {room:?} {status:?}"
            );
        }
        for (permissions, room) in [(&record_r1, Some(R2)), (&join_r1, Some(R2))] {
            let denied = permissions.narrow(room, None).expect_err("another room");
            assert!(
                denied
                    .to_string()
                    .starts_with("listing the recordings of room \"r2\""),
                "{denied}"
            );
        }
        let refused = livekit(json!({"roomList": true})).narrow(None, None);
        assert!(
            matches!(&refused, Err(Denied::Grant { needed, .. }) if needed.contains("roomJoin")),
            "{refused:?}"
        );
    }

    #[test]
    fn denials_name_the_grant_needed() {
        use serde_json::json;
        let record_r1 = livekit(json!({"roomRecord": true, "room": R1}));
        let message = record_r1
            .check(Start(R2))
            .expect_err("other room")
            .to_string();
        assert_eq!(
            message,
            "starting a recording of room \"r2\" needs a LiveKit token with the video grant \
             roomRecord (with room \"r2\" or none)"
        );
        let join_r1 = livekit(json!({"roomJoin": true, "room": R1}));
        let message = join_r1.check(Delete(R1)).expect_err("no admin").to_string();
        assert!(message.ends_with("roomAdmin with room \"r1\""), "{message}");
        let message = join_r1
            .check(Read(R1, Failed))
            .expect_err("not ready")
            .to_string();
        assert!(
            message.contains("roomJoin reads only ready recordings"),
            "{message}"
        );
        let message = join_r1.check(ListRooms).expect_err("no list").to_string();
        assert!(message.ends_with("video grant roomList"), "{message}");
        assert_eq!(
            Permissions::Static(Scope::Read).check(Stop(R1)),
            Err(Denied::ReadOnly)
        );
    }

    #[test]
    fn capabilities_are_what_some_room_allows() {
        use serde_json::json;
        use Capability as C;
        let can = |grant| livekit(grant).can();
        assert_eq!(can(json!({"roomJoin": true, "room": R1})), [C::Read]);
        assert_eq!(
            can(json!({"roomRecord": true, "roomAdmin": true, "room": R1})),
            [C::Read, C::Start, C::Stop, C::Delete, C::Usage]
        );
        assert_eq!(can(json!({"roomList": true})), [C::Rooms]);
        assert_eq!(can(json!({})), []);
        assert_eq!(
            Permissions::Static(Scope::Read).can(),
            [C::Read, C::Rooms, C::Usage]
        );
        assert_eq!(Permissions::Static(Scope::Write).can().len(), 6);
    }

    #[test]
    fn usage_is_every_rooms_for_static_tokens_and_its_rooms_for_room_admins() {
        use serde_json::json;
        let admin = livekit(json!({"roomAdmin": true, "room": R1}));
        assert_eq!(admin.usage_of(None), Ok(Some(R1.to_owned())));
        assert_eq!(admin.usage_of(Some(R1)), Ok(Some(R1.to_owned())));
        assert!(admin.usage_of(Some("other")).is_err());
        assert!(livekit(json!({"roomRecord": true})).usage_of(None).is_err());
        assert_eq!(Permissions::Static(Scope::Read).usage_of(None), Ok(None));
    }

    #[test]
    fn a_grant_of_the_wrong_shape_is_refused() {
        let wrong: Result<VideoGrant, _> =
            serde_json::from_value(serde_json::json!({"roomJoin": "yes"}));
        assert!(wrong.is_err());
        let unknown: VideoGrant =
            serde_json::from_value(serde_json::json!({"canPublish": true, "hidden": false}))
                .expect("fields roomtape does not read are ignored");
        assert_eq!(unknown, VideoGrant::default());
    }
}
