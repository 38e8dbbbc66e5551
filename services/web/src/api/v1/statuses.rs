//! `/api/v1/statuses`: posting, reading, editing and deleting statuses, and what one account
//! does to another's status (boost, favourite, bookmark, pin, mute).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Json, http::Uri};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{PgConnection, PgExecutor, Row};
use stampede_mastodon::time::iso;
use stampede_mastodon::{Account, Context, Status, StatusEdit, StatusSource};
use stampede_queue::outbox;
use stampede_social::distribute::{Fanout, StatusRef};
use stampede_social::feeds::keyset;
use stampede_social::post::{self, NewPoll, NewStatus, PostError};
use stampede_social::{interactions, notification, outbound, text};

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::error::{ApiError, Context as _};
use crate::paging::{Page, PageQuery};
use crate::payload::{Params, flex, path_id};
use crate::scopes;
use crate::statuses::Filter;

impl From<PostError> for ApiError {
    fn from(error: PostError) -> Self {
        match error {
            PostError::Invalid(message) => ApiError::unprocessable(message),
            PostError::NotFound => ApiError::not_found(),
            PostError::Db(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PollParams {
    #[serde(default, deserialize_with = "flex::opt_list")]
    options: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    expires_in: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    multiple: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    hide_totals: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct CreateParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    spoiler_text: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitive: Option<bool>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    in_reply_to_id: Option<i64>,
    #[serde(default)]
    poll: Option<PollParams>,
    #[serde(default)]
    scheduled_at: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    media_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_id")]
    quoted_status_id: Option<i64>,
    #[serde(default)]
    quote_approval_policy: Option<String>,
}

impl CreateParams {
    fn into_new(self) -> Result<NewStatus, ApiError> {
        let media_ids = self
            .media_ids
            .unwrap_or_default()
            .iter()
            .filter(|id| !id.is_empty())
            .map(|id| id.parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ApiError::unprocessable("Validation failed: Media attachments are invalid")
            })?;
        let poll = match self.poll {
            None => None,
            Some(p) if p.options.as_ref().is_none_or(|o| o.is_empty()) => None,
            Some(p) => Some(NewPoll {
                options: p.options.unwrap_or_default(),
                expires_in: i64::from(p.expires_in.unwrap_or(86_400)),
                multiple: p.multiple.unwrap_or(false),
                hide_totals: p.hide_totals.unwrap_or(false),
            }),
        };
        Ok(NewStatus {
            text: self.status.unwrap_or_default(),
            spoiler_text: self.spoiler_text.unwrap_or_default(),
            sensitive: self.sensitive.unwrap_or(false),
            visibility: self.visibility,
            language: self.language.filter(|l| !l.is_empty()),
            in_reply_to_id: self.in_reply_to_id,
            poll,
            media_ids,
            quoted_status_id: self.quoted_status_id,
            quote_approval_policy: self.quote_approval_policy.filter(|p| !p.is_empty()),
        })
    }
}

impl AppState {
    /// How `account_id` posts by default, read on the caller's connection (which may hold a
    /// transaction: asking the pool for a second connection there could wait for itself).
    pub async fn default_visibility(
        conn: &mut PgConnection,
        account_id: i64,
    ) -> Result<String, sqlx::Error> {
        Ok(
            sqlx::query_scalar("SELECT source_privacy FROM users WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(conn)
                .await?
                .unwrap_or_else(|| "public".to_string()),
        )
    }

    /// Posts `new` as `account_id` in one transaction.
    pub async fn post_status(
        &self,
        conn: &mut PgConnection,
        account_id: i64,
        application_id: Option<i64>,
        new: &NewStatus,
    ) -> Result<i64, ApiError> {
        let base = self.base_url();
        let author = post::Author {
            account_id,
            application_id,
            default_visibility: None,
            local_domain: &self.ctx.config.local_domain,
            base_url: &base,
            max_chars: self.ctx.config.statuses.max_chars,
        };
        Ok(post::create(conn, &self.ids, &author, new).await?)
    }
}

/// Scheduled statuses must be at least this far ahead (Mastodon's five minutes).
const MIN_SCHEDULE_AHEAD: chrono::Duration = chrono::Duration::minutes(5);

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Params(p): Params<CreateParams>,
) -> Result<Response, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.chars().take(200).collect::<String>())
        .filter(|k| !k.is_empty());
    let scheduled_at = match p.scheduled_at.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::unprocessable("Validation failed: Scheduled at is not a valid time")
                })?,
        ),
    };
    let new = p.into_new()?;

    if let Some(at) = scheduled_at {
        if at < Utc::now() + MIN_SCHEDULE_AHEAD {
            return Err(ApiError::unprocessable(
                "Validation failed: Scheduled at The scheduled date must be in the future",
            ));
        }
        let mut conn = state.ctx.db.acquire().await?;
        let default_visibility = AppState::default_visibility(&mut conn, account_id).await?;
        post::validate(
            &new,
            &default_visibility,
            state.ctx.config.statuses.max_chars,
        )?;
        stampede_social::media::check_for_status(&mut conn, account_id, None, &new.media_ids)
            .await?;
        drop(conn);
        let scheduled =
            crate::api::v1::scheduled::schedule(&state, account_id, auth.application_id, at, &new)
                .await?;
        return Ok(Json(scheduled).into_response());
    }

    if let Some(key) = &idempotency_key
        && let Some(existing) = idempotent(&state, account_id, key).await?
    {
        return Ok(Json(state.load_status(Some(account_id), existing).await?).into_response());
    }
    let mut tx = state.ctx.db.begin().await?;
    let id = state
        .post_status(&mut tx, account_id, auth.application_id, &new)
        .await?;
    if let Some(key) = &idempotency_key {
        let recorded = sqlx::query(
            "INSERT INTO idempotency_keys (account_id, key, status_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(account_id)
        .bind(key)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            // The same key won a race: its status is the answer, this one is not written.
            tx.rollback().await?;
            let existing = idempotent(&state, account_id, key)
                .await?
                .ok_or_else(ApiError::not_found)?;
            return Ok(Json(state.load_status(Some(account_id), existing).await?).into_response());
        }
    }
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), id).await?).into_response())
}

/// The status an Idempotency-Key already created (keys live for a day).
async fn idempotent(
    state: &AppState,
    account_id: i64,
    key: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT status_id FROM idempotency_keys \
         WHERE account_id = $1 AND key = $2 AND created_at > now() - interval '1 day'",
    )
    .bind(account_id)
    .bind(key)
    .fetch_optional(&state.ctx.db)
    .await
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    Ok(Json(state.load_status(viewer, path_id(&id)?).await?))
}

/// The viewer's own status (not a boost), or 404.
async fn own_status(state: &AppState, account_id: i64, id: i64) -> Result<(), ApiError> {
    let own: Option<bool> = sqlx::query_scalar(
        "SELECT true FROM statuses WHERE id = $1 AND account_id = $2 AND reblog_of_id IS NULL",
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&state.ctx.db)
    .await?;
    own.map(|_| ()).ok_or_else(ApiError::not_found)
}

/// `DELETE /api/v1/statuses/:id`: answers the deleted status with its source `text`, for
/// "delete and redraft".
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    let mut rendered = state.load_status(Some(account_id), id).await?;
    let source: String = sqlx::query_scalar("SELECT text FROM statuses WHERE id = $1")
        .bind(id)
        .fetch_one(&state.ctx.db)
        .await?;
    let mut tx = state.ctx.db.begin().await?;
    if !post::delete(&mut tx, id, Some(&state.base_url()))
        .await
        .context("deleting a status")?
    {
        return Err(ApiError::not_found());
    }
    tx.commit().await?;
    rendered.text = Some(source);
    Ok(Json(rendered))
}

/// `media_attributes[]`: a new description or focal point for an attachment, with an edit.
#[derive(Debug, Deserialize)]
pub struct MediaAttribute {
    id: String,
    description: Option<String>,
    focus: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct EditParams {
    #[serde(default)]
    media_attributes: Vec<MediaAttribute>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    spoiler_text: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    sensitive: Option<bool>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    poll: Option<PollParams>,
    #[serde(default, deserialize_with = "flex::opt_list")]
    media_ids: Option<Vec<String>>,
}

/// `PUT /api/v1/statuses/:id`: a new version of the text, spoiler, sensitivity or language;
/// the previous versions stay in the history.
pub async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<EditParams>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let current = sqlx::query(
        "SELECT text, spoiler_text, sensitive, visibility, language, edited_at, \
                (SELECT options FROM polls WHERE status_id = $1) AS poll_options, \
                ARRAY(SELECT m.id FROM media_attachments m \
                      WHERE m.status_id = $1 AND m.position >= 0 ORDER BY m.position) AS media_ids \
         FROM statuses WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let has_poll = current
        .try_get::<Option<Vec<String>>, _>("poll_options")?
        .is_some();
    let edits_media = p.media_ids.is_some();
    let new = CreateParams {
        status: Some(p.status.unwrap_or(current.try_get("text")?)),
        spoiler_text: Some(p.spoiler_text.unwrap_or(current.try_get("spoiler_text")?)),
        sensitive: Some(p.sensitive.unwrap_or(current.try_get("sensitive")?)),
        visibility: Some(current.try_get("visibility")?),
        language: p.language.or(current.try_get("language")?),
        in_reply_to_id: None,
        poll: None,
        scheduled_at: None,
        media_ids: p.media_ids,
        // An edit keeps the quote and the policy (changed by interaction_policy).
        quoted_status_id: None,
        quote_approval_policy: None,
    }
    .into_new()?;
    let current_media: Vec<i64> = current.try_get("media_ids")?;
    let mut new = new;
    if !edits_media {
        new.media_ids = current_media.clone();
    }
    stampede_social::media::check_for_status(&mut tx, account_id, Some(id), &new.media_ids).await?;
    if p.poll.is_some() && !has_poll {
        return Err(ApiError::unprocessable(
            "Validation failed: A poll cannot be added to a published status",
        ));
    }
    let default_visibility = AppState::default_visibility(&mut tx, account_id).await?;
    let mut check = new.clone();
    if has_poll {
        // Text may be blank when the status is a poll.
        check.poll = Some(NewPoll {
            options: vec!["a".into(), "b".into()],
            expires_in: post::MIN_POLL_EXPIRY,
            multiple: false,
            hide_totals: false,
        });
    }
    post::validate(
        &check,
        &default_visibility,
        state.ctx.config.statuses.max_chars,
    )?;

    // The first edit keeps the original as version one.
    if current
        .try_get::<Option<DateTime<Utc>>, _>("edited_at")?
        .is_none()
    {
        sqlx::query(
            "INSERT INTO status_edits (status_id, text, content, spoiler_text, sensitive, \
               media_attachment_ids, created_at) \
             SELECT id, text, content, spoiler_text, sensitive, $2, created_at FROM statuses \
             WHERE id = $1",
        )
        .bind(id)
        .bind(&current_media)
        .execute(&mut *tx)
        .await?;
    }
    let base = state.base_url();
    let parsed = text::parse(&new.text);
    let mentioned = post::resolve_mentions(
        &mut tx,
        &parsed.mentions,
        &state.ctx.config.local_domain,
        &base,
    )
    .await?;
    let links = mentioned
        .iter()
        .map(|(k, (_, link))| (k.clone(), link.clone()))
        .collect();
    let content = text::render(&new.text, &links, &base);
    sqlx::query(
        "UPDATE statuses SET text = $2, content = $3, spoiler_text = $4, \
           sensitive = $5, language = $6, edited_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&new.text)
    .bind(&content)
    .bind(&new.spoiler_text)
    .bind(new.sensitive || !new.spoiler_text.is_empty())
    .bind(&new.language)
    .execute(&mut *tx)
    .await?;
    let mentioned_ids: Vec<i64> = mentioned.values().map(|(a, _)| *a).collect();
    // Mentions accumulate (whoever was notified stays able to see it); tags are replaced.
    sqlx::query("DELETE FROM statuses_tags WHERE status_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    post::attach(&mut tx, id, &mentioned_ids, &parsed.tags).await?;
    stampede_social::media::attach(&mut tx, id, &new.media_ids).await?;
    for attribute in &p.media_attributes {
        let media_id: i64 = attribute.id.parse().map_err(|_| {
            ApiError::unprocessable("Validation failed: Media attachments are invalid")
        })?;
        if let Some(description) = &attribute.description {
            stampede_social::media::check_description(description)?;
        }
        let focus = attribute
            .focus
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(stampede_social::media::parse_focus)
            .transpose()?;
        let changed = sqlx::query(
            "UPDATE media_attachments SET description = coalesce($3, description), \
               focus_x = coalesce($4, focus_x), focus_y = coalesce($5, focus_y), \
               updated_at = now() \
             WHERE id = $1 AND status_id = $2 AND position >= 0",
        )
        .bind(media_id)
        .bind(id)
        .bind(&attribute.description)
        .bind(focus.map(|f| f.0))
        .bind(focus.map(|f| f.1))
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Err(ApiError::unprocessable(
                "Validation failed: Media attachments are invalid",
            ));
        }
    }
    sqlx::query(
        "INSERT INTO status_edits (status_id, text, content, spoiler_text, sensitive, \
           media_attachment_ids) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&new.text)
    .bind(&content)
    .bind(&new.spoiler_text)
    .bind(new.sensitive || !new.spoiler_text.is_empty())
    .bind(&new.media_ids)
    .execute(&mut *tx)
    .await?;
    outbox::send(&mut tx, &Fanout::StatusUpdated(StatusRef { status_id: id })).await?;
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), id).await?))
}

pub async fn history(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Vec<StatusEdit>>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let status = state.load_status(viewer, path_id(&id)?).await?;
    let edits = sqlx::query(
        "SELECT content, spoiler_text, sensitive, created_at, media_attachment_ids \
         FROM status_edits WHERE status_id = $1 ORDER BY id",
    )
    .bind(path_id(&id)?)
    .fetch_all(&state.ctx.db)
    .await?;
    let mut media_ids: Vec<i64> = Vec::new();
    for row in &edits {
        media_ids.extend(row.try_get::<Vec<i64>, _>("media_attachment_ids")?);
    }
    let files = state.render.files();
    let media: std::collections::HashMap<i64, stampede_mastodon::MediaAttachment> =
        stampede_social::media::by_ids(&state.ctx.db, &media_ids)
            .await?
            .iter()
            .map(|m| (m.id, files.render(m)))
            .collect();
    if edits.is_empty() {
        return Ok(Json(vec![StatusEdit {
            content: status.content,
            spoiler_text: status.spoiler_text,
            sensitive: status.sensitive,
            created_at: status.created_at,
            account: status.account,
            poll: None,
            media_attachments: status.media_attachments,
            emojis: Vec::new(),
        }]));
    }
    edits
        .into_iter()
        .map(|row| {
            Ok(StatusEdit {
                content: row.try_get("content")?,
                spoiler_text: row.try_get("spoiler_text")?,
                sensitive: row.try_get("sensitive")?,
                created_at: iso(row.try_get("created_at")?),
                account: status.account.clone(),
                poll: None,
                media_attachments: row
                    .try_get::<Vec<i64>, _>("media_attachment_ids")?
                    .iter()
                    .filter_map(|id| media.get(id).cloned())
                    .collect(),
                emojis: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Json)
        .map_err(Into::into)
}

pub async fn source(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<StatusSource>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    let row = sqlx::query("SELECT text, spoiler_text FROM statuses WHERE id = $1")
        .bind(id)
        .fetch_one(&state.ctx.db)
        .await?;
    Ok(Json(StatusSource {
        id: id.to_string(),
        text: row.try_get("text")?,
        spoiler_text: row.try_get("spoiler_text")?,
    }))
}

/// `GET /api/v1/statuses/:id/context`: the thread above (up to 40) and below (up to 60),
/// each visible to the viewer and without muted or blocked accounts.
pub async fn context(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Context>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let id = path_id(&id)?;
    state.load_status(viewer, id).await?;
    let ancestors: Vec<i64> = sqlx::query_scalar(
        "WITH RECURSIVE up(id, parent, depth) AS ( \
            SELECT id, in_reply_to_id, 0 FROM statuses WHERE id = $1 \
            UNION ALL \
            SELECT s.id, s.in_reply_to_id, up.depth + 1 FROM statuses s \
            JOIN up ON s.id = up.parent WHERE up.depth < 40) \
         SELECT id FROM up WHERE id <> $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&state.ctx.db)
    .await?;
    let descendants: Vec<i64> = sqlx::query_scalar(
        "WITH RECURSIVE down(id, depth) AS ( \
            SELECT id, 0 FROM statuses WHERE id = $1 \
            UNION ALL \
            SELECT s.id, down.depth + 1 FROM statuses s \
            JOIN down ON s.in_reply_to_id = down.id WHERE down.depth < 60) \
         SELECT id FROM down WHERE id <> $1 ORDER BY id LIMIT 60",
    )
    .bind(id)
    .fetch_all(&state.ctx.db)
    .await?;
    let hide = Filter::HIDE_MUTED;
    Ok(Json(Context {
        ancestors: state.load_statuses(viewer, &ancestors, hide).await?,
        descendants: state.load_statuses(viewer, &descendants, hide).await?,
    }))
}

#[derive(Debug, Deserialize)]
pub struct ReblogParams {
    #[serde(default)]
    visibility: Option<String>,
}

/// `POST /api/v1/statuses/:id/reblog`: boosts a status the viewer can see (not a private one of
/// someone else, never a direct one); boosting twice returns the first boost.
pub async fn reblog(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<ReblogParams>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    // A boost of a boost boosts the original.
    let mut tx = state.ctx.db.begin().await?;
    let original = original(&mut *tx, account_id, path_id(&id)?).await?;
    let (original_id, author) = (original.id, original.author);
    let allowed = match original.visibility.as_str() {
        "public" | "unlisted" => true,
        "private" => author == account_id,
        _ => false,
    };
    if !allowed {
        return Err(ApiError::forbidden("This action is not allowed"));
    }
    let visibility = match p.visibility.as_deref() {
        None | Some("") => "public",
        Some(v @ ("public" | "unlisted" | "private")) => v,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Validation failed: Visibility is not included in the list",
            ));
        }
    };
    let visibility = if original.visibility == "private" {
        "private"
    } else {
        visibility
    };
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM statuses WHERE account_id = $1 AND reblog_of_id = $2")
            .bind(account_id)
            .bind(original_id)
            .fetch_optional(&mut *tx)
            .await?;
    let reblog_id = match existing {
        Some(existing) => existing,
        None => {
            let reblog_id = state.ids.next_id().as_i64();
            let inserted = sqlx::query(
                "INSERT INTO statuses (id, account_id, application_id, visibility, reblog_of_id, \
                   conversation_id) VALUES ($1, $2, $3, $4, $5, $1) ON CONFLICT DO NOTHING",
            )
            .bind(reblog_id)
            .bind(account_id)
            .bind(auth.application_id)
            .bind(visibility)
            .bind(original_id)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(ApiError::unprocessable(
                    "Validation failed: Reblog of status already exists",
                ));
            }
            post::counted(&mut tx, account_id, None).await?;
            notification::create(
                &mut tx,
                state.ids.next_id().as_i64(),
                author,
                account_id,
                notification::REBLOG,
                Some(original_id),
            )
            .await?;
            outbox::send(
                &mut tx,
                &Fanout::StatusCreated(StatusRef {
                    status_id: reblog_id,
                }),
            )
            .await?;
            // Last: a popular status's row is locked from here to the commit, so boosts of it
            // wait on each other as briefly as possible.
            sqlx::query("UPDATE statuses SET reblogs_count = reblogs_count + 1 WHERE id = $1")
                .bind(original_id)
                .execute(&mut *tx)
                .await?;
            reblog_id
        }
    };
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), reblog_id).await?))
}

/// The original a path id refers to (a boost's path means what it boosts).
/// 404 unless the viewer may see it. One light query: the handlers render the status afterwards
/// anyway.
async fn original_of(db: impl PgExecutor<'_>, viewer: i64, id: i64) -> Result<i64, ApiError> {
    Ok(original(db, viewer, id).await?.id)
}

/// The status a path id refers to (a boost's path means what it boosts), as much as a write
/// needs to know of it.
struct Original {
    id: i64,
    author: i64,
    visibility: String,
}

/// 404 unless the viewer may see it; one light query.
async fn original(db: impl PgExecutor<'_>, viewer: i64, id: i64) -> Result<Original, ApiError> {
    static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT o.id, o.account_id, o.visibility FROM statuses s \
             JOIN statuses o ON o.id = coalesce(s.reblog_of_id, s.id) \
             WHERE s.id = $1 AND {}",
            stampede_social::visibility::visible("s", "$2")
        )
    });
    let row = sqlx::query(&QUERY)
        .bind(id)
        .bind(viewer)
        .fetch_optional(db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Original {
        id: row.try_get("id")?,
        author: row.try_get("account_id")?,
        visibility: row.try_get("visibility")?,
    })
}

pub async fn unreblog(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let mut tx = state.ctx.db.begin().await?;
    let original = original_of(&mut *tx, account_id, path_id(&id)?).await?;
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM statuses WHERE account_id = $1 AND reblog_of_id = $2")
            .bind(account_id)
            .bind(original)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(reblog) = existing {
        post::delete(&mut tx, reblog, Some(&state.base_url()))
            .await
            .context("withdrawing a boost")?;
    }
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), original).await?))
}

pub async fn favourite(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::FAVOURITES_WRITE)?;
    let mut tx = state.ctx.db.begin().await?;
    let Original {
        id: original,
        author,
        ..
    } = original(&mut *tx, account_id, path_id(&id)?).await?;
    if let Some(favourite_id) =
        interactions::favourite(&mut tx, &state.ids, account_id, original, author)
            .await
            .context("favouriting")?
    {
        outbound::like(
            &mut tx,
            &state.base_url(),
            account_id,
            original,
            favourite_id,
            false,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), original).await?))
}

pub async fn unfavourite(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::FAVOURITES_WRITE)?;
    let mut tx = state.ctx.db.begin().await?;
    let original = original_of(&mut *tx, account_id, path_id(&id)?).await?;
    if let Some(favourite_id) = interactions::unfavourite(&mut tx, account_id, original)
        .await
        .context("withdrawing a favourite")?
    {
        outbound::like(
            &mut tx,
            &state.base_url(),
            account_id,
            original,
            favourite_id,
            true,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), original).await?))
}

/// Bookmarks, pins and conversation mutes are a row per (account, status or thread).
async fn toggle(
    state: &AppState,
    sql: &str,
    account_id: i64,
    target: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql)
        .bind(state.ids.next_id().as_i64())
        .bind(account_id)
        .bind(target)
        .execute(&state.ctx.db)
        .await?;
    Ok(())
}

pub async fn bookmark(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::BOOKMARKS_WRITE)?;
    let original = original_of(&state.ctx.db, account_id, path_id(&id)?).await?;
    toggle(
        &state,
        "INSERT INTO bookmarks (id, account_id, status_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        account_id,
        original,
    )
    .await?;
    Ok(Json(state.load_status(Some(account_id), original).await?))
}

pub async fn unbookmark(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::BOOKMARKS_WRITE)?;
    let original = original_of(&state.ctx.db, account_id, path_id(&id)?).await?;
    toggle(
        &state,
        "DELETE FROM bookmarks WHERE $1::bigint IS NOT NULL AND account_id = $2 AND status_id = $3",
        account_id,
        original,
    )
    .await?;
    Ok(Json(state.load_status(Some(account_id), original).await?))
}

/// Mastodon allows five pinned statuses.
const MAX_PINS: i64 = 5;

pub async fn pin(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    let status = state.load_status(Some(account_id), id).await?;
    if status.visibility == "direct" {
        return Err(ApiError::unprocessable(
            "Validation failed: You can only pin public, unlisted or private posts",
        ));
    }
    let mut tx = state.ctx.db.begin().await?;
    // Serialise pins per account so the limit holds under concurrent requests.
    sqlx::query("SELECT pg_advisory_xact_lock(7263, hashtext($1::text))")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    let pinned: i64 = sqlx::query_scalar("SELECT count(*) FROM status_pins WHERE account_id = $1")
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
    if status.pinned != Some(true) && pinned >= MAX_PINS {
        return Err(ApiError::unprocessable(
            "Validation failed: You have already pinned the maximum number of posts",
        ));
    }
    sqlx::query(
        "INSERT INTO status_pins (id, account_id, status_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(account_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if status.pinned != Some(true) {
        outbound::featured(&mut tx, &state.base_url(), account_id, id, true).await?;
    }
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), id).await?))
}

pub async fn unpin(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let removed = sqlx::query("DELETE FROM status_pins WHERE account_id = $1 AND status_id = $2")
        .bind(account_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() > 0 {
        outbound::featured(&mut tx, &state.base_url(), account_id, id, false).await?;
    }
    tx.commit().await?;
    Ok(Json(state.load_status(Some(account_id), id).await?))
}

/// Muting a conversation silences its notifications; only a participant may.
pub async fn mute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    set_conversation_mute(state, auth, id, true).await
}

pub async fn unmute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Status>, ApiError> {
    set_conversation_mute(state, auth, id, false).await
}

async fn set_conversation_mute(
    state: AppState,
    auth: Auth,
    id: String,
    muted: bool,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::CONVERSATION_MUTES_WRITE)?;
    let id = path_id(&id)?;
    state.load_status(Some(account_id), id).await?;
    let conversation: i64 =
        sqlx::query_scalar("SELECT conversation_id FROM statuses WHERE id = $1")
            .bind(id)
            .fetch_one(&state.ctx.db)
            .await?;
    let sql = if muted {
        "INSERT INTO conversation_mutes (account_id, conversation_id) \
         SELECT $2, $3 WHERE $1::bigint IS NOT NULL ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM conversation_mutes WHERE $1::bigint IS NOT NULL AND account_id = $2 \
         AND conversation_id = $3"
    };
    toggle(&state, sql, account_id, conversation).await?;
    Ok(Json(state.load_status(Some(account_id), id).await?))
}

/// Who boosted or favourited a status, newest first, paged by the boost's or favourite's id.
async fn interactions(
    state: &AppState,
    viewer: Viewer,
    id: &str,
    uri: &Uri,
    query: PageQuery,
    sql: &str,
) -> Result<Page<Account>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let id = path_id(id)?;
    state.load_status(viewer, id).await?;
    let bounds = query.bounds(40, 80);
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!("{sql} {}", "LIMIT $4"))
        .bind(id)
        .bind(bounds.max)
        .bind(bounds.min)
        .bind(bounds.limit as i64)
        .fetch_all(&state.ctx.db)
        .await?;
    state.accounts_page(uri, rows).await
}

pub async fn reblogged_by(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    interactions(
        &state,
        viewer,
        &id,
        &uri,
        query,
        &format!(
            "SELECT id, account_id FROM statuses WHERE reblog_of_id = $1 \
           AND {keyset} \
         ORDER BY id DESC",
            keyset = keyset("id", 2, 3)
        ),
    )
    .await
}

pub async fn favourited_by(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    interactions(
        &state,
        viewer,
        &id,
        &uri,
        query,
        &format!(
            "SELECT id, account_id FROM favourites WHERE status_id = $1 \
           AND {keyset} \
         ORDER BY id DESC",
            keyset = keyset("id", 2, 3)
        ),
    )
    .await
}

/// `GET /api/v1/statuses?id[]=…`: several statuses at once, in the order asked, without the
/// ones that do not exist or that the viewer may not see.
pub async fn index(
    State(state): State<AppState>,
    viewer: Viewer,
    Params(q): Params<super::accounts::IdsQuery>,
) -> Result<Json<Vec<Status>>, ApiError> {
    let viewer = viewer.account(scopes::STATUSES_READ)?;
    let ids = q.ids()?;
    Ok(Json(
        state
            .load_statuses(viewer, &ids, stampede_social::render::Filter::default())
            .await?,
    ))
}

/// `GET /api/v1/statuses/:id/quotes`: accepted quotes of one of the viewer's statuses, newest
/// first (Mastodon shows them to the quoted author only).
pub async fn quotes(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_READ)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    let bounds = q.bounds(20, 40);
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT q.id, q.status_id FROM quotes q \
         WHERE q.quoted_status_id = $1 AND q.state = 'accepted' AND {keyset} \
         ORDER BY q.id {} LIMIT $4",
        bounds.order(),
        keyset = keyset("q.id", 2, 3),
    ))
    .bind(id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    let rows: Vec<(i64, i64)> = if bounds.ascending {
        rows.into_iter().rev().collect()
    } else {
        rows
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let items = state
        .load_statuses(
            Some(account_id),
            &ids,
            stampede_social::render::Filter::default(),
        )
        .await?;
    Ok(Page::new(
        items,
        &state.base_url(),
        &uri,
        rows.first().map(|r| r.0),
        rows.last().map(|r| r.0),
    ))
}

/// `POST /api/v1/statuses/:id/quotes/:quoting_status_id/revoke`: the author of status `id`
/// withdraws their consent to a quote; answers the quoting status.
pub async fn revoke_quote(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, quoting)): Path<(String, String)>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let (id, quoting) = (path_id(&id)?, path_id(&quoting)?);
    own_status(&state, account_id, id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let revoked = stampede_social::quotes::revoke(&mut tx, id, quoting, account_id).await?;
    tx.commit().await?;
    if !revoked {
        return Err(ApiError::not_found());
    }
    state.load_status(Some(account_id), quoting).await.map(Json)
}

#[derive(Debug, Deserialize)]
pub struct InteractionPolicy {
    quote_approval_policy: Option<String>,
}

/// `PUT /api/v1/statuses/:id/interaction_policy`: who may quote one of the viewer's statuses
/// from now on (quotes already made stay).
pub async fn interaction_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<InteractionPolicy>,
) -> Result<Json<Status>, ApiError> {
    let account_id = auth.account(scopes::STATUSES_WRITE)?;
    let id = path_id(&id)?;
    own_status(&state, account_id, id).await?;
    if let Some(policy) = p.quote_approval_policy.as_deref().filter(|p| !p.is_empty()) {
        if !stampede_social::quotes::POLICIES.contains(&policy) {
            return Err(ApiError::unprocessable(
                "Validation failed: Quote approval policy is not included in the list",
            ));
        }
        sqlx::query("UPDATE statuses SET quote_approval_policy = $2 WHERE id = $1")
            .bind(id)
            .bind(policy)
            .execute(&state.ctx.db)
            .await?;
    }
    state.load_status(Some(account_id), id).await.map(Json)
}
