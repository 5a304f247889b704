//! The LiveKit events roomtape acts on, named once: the processor reads an event's name into an
//! [`EventKind`] when it parses the body ([`super::parse`]) and matches on that.

/// What an event is, as far as roomtape acts on it. Every other name (`track_published`,
/// `ingress_started`, names newer than this build) is [`EventKind::Other`]: recorded as processed
/// and acknowledged, changing nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    RoomStarted,
    RoomFinished,
    ParticipantJoined,
    ParticipantLeft,
    /// A participant whose connection failed before it fully joined: a leave.
    ParticipantConnectionAborted,
    EgressStarted,
    EgressUpdated,
    EgressEnded,
    Other,
}

impl EventKind {
    /// Every kind with a name of its own, in the order LiveKit's docs list them.
    const NAMED: [Self; 8] = [
        Self::RoomStarted,
        Self::RoomFinished,
        Self::ParticipantJoined,
        Self::ParticipantLeft,
        Self::ParticipantConnectionAborted,
        Self::EgressStarted,
        Self::EgressUpdated,
        Self::EgressEnded,
    ];

    /// The kind of the event named `name` (a webhook's `event`).
    pub fn of(name: &str) -> Self {
        Self::NAMED
            .into_iter()
            .find(|kind| kind.name() == Some(name))
            .unwrap_or(Self::Other)
    }

    /// The name LiveKit gives it; `None` for [`EventKind::Other`], which stands for many.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::RoomStarted => "room_started",
            Self::RoomFinished => "room_finished",
            Self::ParticipantJoined => "participant_joined",
            Self::ParticipantLeft => "participant_left",
            Self::ParticipantConnectionAborted => "participant_connection_aborted",
            Self::EgressStarted => "egress_started",
            Self::EgressUpdated => "egress_updated",
            Self::EgressEnded => "egress_ended",
            Self::Other => return None,
        })
    }

    /// An event about an egress, which the egress lifecycle applies to its recording.
    pub fn is_egress(self) -> bool {
        matches!(
            self,
            Self::EgressStarted | Self::EgressUpdated | Self::EgressEnded
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_reads_back_as_its_kind_and_anything_else_is_other() {
        for kind in EventKind::NAMED {
            let name = kind.name().expect("a named kind");
            assert_eq!(EventKind::of(name), kind, "{name}");
        }
        for name in [
            "track_published",
            "ingress_started",
            "egress_source_switched",
            "",
            "room_started ",
            "ROOM_STARTED",
        ] {
            assert_eq!(EventKind::of(name), EventKind::Other, "{name:?}");
        }
        assert_eq!(EventKind::Other.name(), None);
        assert!(EventKind::EgressEnded.is_egress());
        assert!(!EventKind::RoomFinished.is_egress());
        assert!(!EventKind::Other.is_egress());
    }
}
