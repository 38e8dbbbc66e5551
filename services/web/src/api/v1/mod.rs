//! `/api/v1/…`

pub mod accounts;
pub mod admin;
pub mod announcements;
pub mod apps;
pub mod blocks;
pub mod conversations;
pub mod domain_blocks;
pub mod endorsements;
pub mod featured_tags;
pub mod filters;
pub mod follow_requests;
pub mod instance;
pub mod lists;
pub mod markers;
pub mod media;
pub mod mutes;
pub mod notification_requests;
pub mod notifications;
pub mod oembed;
pub mod polls;
pub mod push;
pub mod reports;
pub mod scheduled;
pub mod statuses;
pub mod suggestions;
pub mod tags;
pub mod timelines;
pub mod trends;

use axum::routing::{delete, get, post};
use axum::{Json, Router};

use crate::AppState;
use crate::error::ApiError;

/// A row that belongs to one account and that its owner deletes by id.
#[derive(Clone, Copy, Debug)]
pub enum Owned {
    Conversation,
    Notification,
    ScheduledStatus,
    List,
    FeaturedTag,
    Filter,
}

impl Owned {
    fn table(self) -> &'static str {
        match self {
            Owned::Conversation => "account_conversations",
            Owned::Notification => "notifications",
            Owned::ScheduledStatus => "scheduled_statuses",
            Owned::List => "lists",
            Owned::FeaturedTag => "featured_tags",
            Owned::Filter => "filters",
        }
    }
}

/// Deletes `owned` row `id` (as the path gave it) of `account_id`: `{}`, or 404 when the
/// account has no such row (another account's is as absent as a missing one).
pub async fn delete_owned(
    state: &AppState,
    owned: Owned,
    id: &str,
    account_id: i64,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = crate::payload::path_id(id)?;
    let statement = format!(
        "DELETE FROM {} WHERE id = $1 AND account_id = $2",
        owned.table()
    );
    let removed = sqlx::query(&statement)
        .bind(id)
        .bind(account_id)
        .execute(&state.ctx.db)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    Ok(Json(serde_json::json!({})))
}

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/apps", post(apps::create))
        .route(
            "/api/v1/apps/verify_credentials",
            get(apps::verify_credentials),
        )
        .route(
            "/api/v1/accounts",
            post(accounts::create)
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    accounts::admission,
                ))
                .get(accounts::index),
        )
        .route(
            "/api/v1/accounts/verify_credentials",
            get(accounts::verify_credentials),
        )
        .route(
            "/api/v1/accounts/update_credentials",
            axum::routing::patch(accounts::update_credentials),
        )
        .route("/api/v1/accounts/lookup", get(accounts::lookup))
        .route(
            "/api/v1/accounts/{id}/identity_proofs",
            get(accounts::identity_proofs),
        )
        .route("/api/v1/timelines/direct", get(timelines::direct))
        .route("/api/v1/custom_emojis", get(instance::custom_emojis))
        .route("/api/v1/reports", post(reports::create))
        .route("/api/oembed", get(oembed::oembed))
        .route("/api/v1/trends/links", get(trends::links))
        .route("/api/v1/timelines/link", get(timelines::link))
        .route("/api/v1/announcements", get(announcements::index))
        .route(
            "/api/v1/announcements/{id}/dismiss",
            post(announcements::dismiss),
        )
        .route(
            "/api/v1/announcements/{id}/reactions/{name}",
            axum::routing::put(announcements::react).delete(announcements::unreact),
        )
        .route(
            "/api/v1/domain_blocks",
            get(domain_blocks::index)
                .post(domain_blocks::create)
                .delete(domain_blocks::delete),
        )
        .route(
            "/api/v1/push/subscription",
            get(push::show)
                .post(push::create)
                .put(push::update)
                .delete(push::delete),
        )
        .route(
            "/api/v1/emails/confirmations",
            post(accounts::resend_confirmation),
        )
        .route(
            "/api/v1/accounts/relationships",
            get(accounts::relationships::relationships),
        )
        .route("/api/v1/accounts/search", get(accounts::search::search))
        .route(
            "/api/v1/accounts/familiar_followers",
            get(accounts::follow::familiar_followers),
        )
        .route("/api/v1/accounts/{id}", get(accounts::show))
        .route(
            "/api/v1/accounts/{id}/follow",
            post(accounts::follow::follow),
        )
        .route(
            "/api/v1/accounts/{id}/unfollow",
            post(accounts::follow::unfollow),
        )
        .route("/api/v1/accounts/{id}/endorse", post(endorsements::endorse))
        .route("/api/v1/accounts/{id}/pin", post(endorsements::endorse))
        .route(
            "/api/v1/accounts/{id}/unendorse",
            post(endorsements::unendorse),
        )
        .route("/api/v1/accounts/{id}/unpin", post(endorsements::unendorse))
        .route(
            "/api/v1/accounts/{id}/endorsements",
            get(endorsements::of_account),
        )
        .route("/api/v1/accounts/{id}/note", post(endorsements::note))
        .route(
            "/api/v1/accounts/{id}/featured_tags",
            get(featured_tags::of_account),
        )
        .route("/api/v1/endorsements", get(endorsements::index))
        .route("/api/v1/filters", get(filters::index).post(filters::create))
        .route(
            "/api/v1/filters/{id}",
            get(filters::show)
                .put(filters::update)
                .delete(filters::delete),
        )
        .route("/api/v1/suggestions", get(suggestions::v1))
        .route(
            "/api/v1/suggestions/{account_id}",
            delete(suggestions::dismiss),
        )
        .route("/api/v1/directory", get(suggestions::directory))
        .route("/api/v1/trends", get(trends::tags))
        .route("/api/v1/trends/tags", get(trends::tags))
        .route("/api/v1/trends/statuses", get(trends::statuses))
        .route(
            "/api/v1/featured_tags",
            get(featured_tags::index).post(featured_tags::create),
        )
        .route(
            "/api/v1/featured_tags/suggestions",
            get(featured_tags::suggestions),
        )
        .route("/api/v1/featured_tags/{id}", delete(featured_tags::delete))
        .route(
            "/api/v1/accounts/{id}/remove_from_followers",
            post(accounts::follow::remove_from_followers),
        )
        .route("/api/v1/accounts/{id}/block", post(accounts::block::block))
        .route(
            "/api/v1/accounts/{id}/unblock",
            post(accounts::block::unblock),
        )
        .route("/api/v1/accounts/{id}/mute", post(accounts::mute::mute))
        .route("/api/v1/accounts/{id}/unmute", post(accounts::mute::unmute))
        .route(
            "/api/v1/accounts/{id}/followers",
            get(accounts::follow::followers),
        )
        .route(
            "/api/v1/accounts/{id}/following",
            get(accounts::follow::following),
        )
        .route(
            "/api/v1/accounts/{id}/statuses",
            get(accounts::statuses::statuses),
        )
        .route("/api/v1/accounts/{id}/lists", get(lists::of_account))
        .route(
            "/api/v1/follow_requests",
            get(follow_requests::follow_requests),
        )
        .route(
            "/api/v1/follow_requests/{id}/authorize",
            post(follow_requests::authorize),
        )
        .route(
            "/api/v1/follow_requests/{id}/reject",
            post(follow_requests::reject),
        )
        .route("/api/v1/blocks", get(blocks::blocks))
        .route("/api/v1/mutes", get(mutes::mutes))
        .route(
            "/api/v1/statuses",
            post(statuses::create).get(statuses::index),
        )
        .route(
            "/api/v1/statuses/{id}",
            get(statuses::show)
                .delete(statuses::delete)
                .put(statuses::edit),
        )
        .route("/api/v1/statuses/{id}/history", get(statuses::history))
        .route("/api/v1/statuses/{id}/source", get(statuses::source))
        .route("/api/v1/statuses/{id}/quotes", get(statuses::quotes))
        .route(
            "/api/v1/statuses/{id}/quotes/{quoting_status_id}/revoke",
            post(statuses::revoke_quote),
        )
        .route(
            "/api/v1/statuses/{id}/interaction_policy",
            axum::routing::put(statuses::interaction_policy),
        )
        .route("/api/v1/statuses/{id}/context", get(statuses::context))
        .route("/api/v1/statuses/{id}/reblog", post(statuses::reblog))
        .route("/api/v1/statuses/{id}/unreblog", post(statuses::unreblog))
        .route("/api/v1/statuses/{id}/favourite", post(statuses::favourite))
        .route(
            "/api/v1/statuses/{id}/unfavourite",
            post(statuses::unfavourite),
        )
        .route("/api/v1/statuses/{id}/bookmark", post(statuses::bookmark))
        .route(
            "/api/v1/statuses/{id}/unbookmark",
            post(statuses::unbookmark),
        )
        .route("/api/v1/statuses/{id}/pin", post(statuses::pin))
        .route("/api/v1/statuses/{id}/unpin", post(statuses::unpin))
        .route("/api/v1/statuses/{id}/mute", post(statuses::mute))
        .route("/api/v1/statuses/{id}/unmute", post(statuses::unmute))
        .route(
            "/api/v1/statuses/{id}/reblogged_by",
            get(statuses::reblogged_by),
        )
        .route(
            "/api/v1/statuses/{id}/favourited_by",
            get(statuses::favourited_by),
        )
        .route("/api/v1/polls/{id}", get(polls::show))
        .route("/api/v1/polls/{id}/votes", post(polls::vote))
        .route("/api/v1/scheduled_statuses", get(scheduled::index))
        .route(
            "/api/v1/scheduled_statuses/{id}",
            get(scheduled::show)
                .put(scheduled::update)
                .delete(scheduled::delete),
        )
        .route("/api/v1/timelines/home", get(timelines::home))
        .route("/api/v1/timelines/public", get(timelines::public))
        .route("/api/v1/timelines/tag/{name}", get(timelines::tag))
        .route("/api/v1/timelines/list/{id}", get(timelines::list))
        .route("/api/v1/bookmarks", get(timelines::bookmarks))
        .route("/api/v1/favourites", get(timelines::favourites))
        .route("/api/v1/notifications", get(notifications::index))
        .route("/api/v1/notifications/clear", post(notifications::clear))
        .route(
            "/api/v1/notifications/requests",
            get(notification_requests::index),
        )
        .route(
            "/api/v1/notifications/requests/merged",
            get(notification_requests::merged),
        )
        .route(
            "/api/v1/notifications/requests/accept",
            post(notification_requests::accept_many),
        )
        .route(
            "/api/v1/notifications/requests/dismiss",
            post(notification_requests::dismiss_many),
        )
        .route(
            "/api/v1/notifications/requests/{id}",
            get(notification_requests::show),
        )
        .route(
            "/api/v1/notifications/requests/{id}/accept",
            post(notification_requests::accept),
        )
        .route(
            "/api/v1/notifications/requests/{id}/dismiss",
            post(notification_requests::dismiss),
        )
        .route(
            "/api/v1/notifications/unread_count",
            get(notifications::unread_count),
        )
        .route("/api/v1/notifications/{id}", get(notifications::show))
        .route(
            "/api/v1/notifications/{id}/dismiss",
            post(notifications::dismiss),
        )
        .route("/api/v1/lists", get(lists::index).post(lists::create))
        .route(
            "/api/v1/lists/{id}",
            get(lists::show).put(lists::update).delete(lists::delete),
        )
        .route(
            "/api/v1/lists/{id}/accounts",
            get(lists::accounts)
                .post(lists::add_accounts)
                .delete(lists::remove_accounts),
        )
        .route("/api/v1/markers", get(markers::show).post(markers::save))
        .route("/api/v1/conversations", get(conversations::index))
        .route("/api/v1/conversations/{id}", delete(conversations::delete))
        .route("/api/v1/conversations/{id}/read", post(conversations::read))
        .route("/api/v1/tags/{name}", get(tags::show))
        .route("/api/v1/tags/{name}/follow", post(tags::follow))
        .route("/api/v1/tags/{name}/unfollow", post(tags::unfollow))
        .route("/api/v1/tags/{name}/feature", post(tags::feature))
        .route("/api/v1/tags/{name}/unfeature", post(tags::unfeature))
        .route("/api/v1/followed_tags", get(tags::followed))
        .route("/api/v1/media", post(media::create_v1))
        .route(
            "/api/v1/media/{id}",
            get(media::show).put(media::update).delete(media::delete),
        )
        .route("/system/{*key}", get(media::file))
        .route("/media_proxy/{id}/{style}", get(media::proxy))
        .route(
            "/api/v1/profile",
            get(accounts::show_profile)
                .patch(accounts::update_profile_v2)
                .put(accounts::update_profile_v2),
        )
        .route("/api/v1/profile/avatar", delete(accounts::delete_avatar))
        .route("/api/v1/profile/header", delete(accounts::delete_header))
        .route("/api/v1/instance", get(instance::v1))
        .route("/api/v1/instance/rules", get(instance::rules))
        .route(
            "/api/v1/instance/domain_blocks",
            get(instance::domain_blocks),
        )
        .route(
            "/api/v1/instance/privacy_policy",
            get(instance::privacy_policy),
        )
        .route(
            "/api/v1/instance/terms_of_service",
            get(instance::terms_of_service),
        )
        .route(
            "/api/v1/instance/terms_of_service/{date}",
            get(instance::terms_of_service_on),
        )
        .route("/api/v1/instance/peers", get(instance::peers))
        .route("/api/v1/instance/activity", get(instance::activity))
        .route(
            "/api/v1/instance/extended_description",
            get(instance::extended_description),
        )
        .route(
            "/api/v1/instance/translation_languages",
            get(instance::translation_languages),
        )
        .route("/api/v1/preferences", get(accounts::preferences))
        .merge(admin::router())
}
