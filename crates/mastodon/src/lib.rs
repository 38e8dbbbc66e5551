//! Mastodon API entities.
//!
//! Each struct serialises to the JSON Mastodon sends for the entity of the same name (see
//! ../shared/data/mastodon-openapi/schema.json): ids as strings, timestamps as ISO 8601 with
//! milliseconds in UTC, absent optional values as `null`. The mapping from Stampede's rows to
//! these entities lives with the handlers; this crate only fixes the shapes.

pub mod account;
pub mod application;
pub mod error;
pub mod instance;
pub mod media;
pub mod notification;
pub mod status;
pub mod time;

pub use account::{Account, CredentialAccount, Field, Profile, Role, Source, StatusAccount};
pub use application::{Application, CredentialApplication, Token};
pub use error::{ErrorBody, FieldError, ValidationBody};
pub use media::MediaAttachment;
pub use notification::{
    Announcement, AnnouncementReaction, GroupedNotificationsResults, NotificationGroup,
    NotificationPolicy, NotificationPolicySummary, NotificationRequest, PartialAccountWithAvatar,
    WebPushSubscription,
};
pub use status::{
    Context, Conversation, CustomEmoji, List, Marker, Mention, Notification, Poll, PollOption,
    Relationship, ScheduledStatus, SearchResults, Status, StatusApplication, StatusEdit,
    StatusSource, StatusTag, Tag, TagHistory,
};
