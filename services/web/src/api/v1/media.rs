//! `/api/v1/media`, `/api/v2/media`: uploads; `/system/…` (files on local disk) and
//! `/media_proxy/…` (remote media not cached yet).
//!
//! The web service stores the upload as it came and answers; the media service makes the
//! variants. A small image is processed in the request itself when a processing slot is free
//! (200 at once, as Mastodon answers for images); in a surge the slots are taken and uploads go
//! to the media service's queue instead (202), so uploads never queue up inside web.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use stampede_mastodon::MediaAttachment;
use stampede_mediaproc::MediaKind;
use stampede_social::media::{self, Change, MediaRow, NewUpload, Outcome, Place, UploadError};
use tokio::sync::Semaphore;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::payload::WithFiles;
use crate::scopes;

/// Images up to this size may be processed in the request itself.
const INLINE_BYTES: usize = 2 * 1024 * 1024;

/// What uploads need that the rest of web does not: the limits, whether ffmpeg is here, and the
/// slots for processing in the request.
#[derive(Debug)]
pub struct Uploads {
    pub limits: stampede_mediaproc::Limits,
    ffmpeg: tokio::sync::OnceCell<bool>,
    inline: Semaphore,
}

impl Uploads {
    pub fn new(config: &stampede_runtime::config::Config) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Uploads {
            limits: media::limits(config),
            ffmpeg: tokio::sync::OnceCell::new(),
            inline: Semaphore::new(cores),
        })
    }

    /// The types uploads may have: images always, video and audio where ffmpeg runs.
    pub async fn supported_mime_types(&self) -> Vec<&'static str> {
        let mut types = stampede_mediaproc::IMAGE_MIME_TYPES.to_vec();
        if self.ffmpeg().await {
            types.extend_from_slice(stampede_mediaproc::AV_MIME_TYPES);
        }
        types
    }

    /// Whether ffmpeg runs here (asked once; web and media run from the same image).
    async fn ffmpeg(&self) -> bool {
        *self
            .ffmpeg
            .get_or_init(|| stampede_mediaproc::ffmpeg_available(&self.limits))
            .await
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::Invalid(message) => ApiError::unprocessable(message),
            UploadError::NotFound => ApiError::not_found(),
            UploadError::Storage(e) => {
                tracing::warn!(error = %e, "storage unavailable for media");
                ApiError::unavailable()
            }
            UploadError::Db(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct UploadParams {
    description: Option<String>,
    focus: Option<String>,
}

fn render(state: &AppState, row: &MediaRow) -> MediaAttachment {
    state.render.files().render(row)
}

/// `POST /api/v2/media`: 200 when the variants are ready, 202 while the media service makes
/// them.
pub async fn create_v2(
    State(state): State<AppState>,
    auth: Auth,
    form: WithFiles<UploadParams>,
) -> Result<Response, ApiError> {
    upload(state, auth, form, false).await
}

/// `POST /api/v1/media` (deprecated in Mastodon, still used): always 200; an image is ready,
/// a video's `url` is `null` until processed.
pub async fn create_v1(
    State(state): State<AppState>,
    auth: Auth,
    form: WithFiles<UploadParams>,
) -> Result<Response, ApiError> {
    upload(state, auth, form, true).await
}

async fn upload(
    state: AppState,
    auth: Auth,
    mut form: WithFiles<UploadParams>,
    v1: bool,
) -> Result<Response, ApiError> {
    auth.require(scopes::MEDIA_WRITE)?;
    let account_id = auth.user()?.account_id;
    let file = form
        .take("file")
        .ok_or_else(|| ApiError::unprocessable("Validation failed: File can't be blank"))?;
    let thumbnail = form.take("thumbnail");
    let focus = form
        .params
        .focus
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(media::parse_focus)
        .transpose()?;
    let uploads = &state.uploads;
    let sniffed = stampede_mediaproc::sniff(&file.bytes).map_err(UploadError::from)?;
    if matches!(sniffed.kind, MediaKind::Video | MediaKind::Audio) && !uploads.ffmpeg().await {
        return Err(ApiError::unprocessable(
            "Video and audio uploads need ffmpeg, which this server does not have",
        ));
    }
    // In the request: a still image, small or (v1) of any size, if a slot is free now.
    let permit = (sniffed.kind == MediaKind::Image && (v1 || file.bytes.len() <= INLINE_BYTES))
        .then(|| uploads.inline.try_acquire().ok())
        .flatten();
    let new = NewUpload {
        account_id,
        bytes: file.bytes,
        description: form.params.description.unwrap_or_default(),
        focus,
    };
    let db = &state.ctx.db;
    let storage = &state.ctx.storage;
    let mut row = media::upload(
        db,
        storage,
        &state.ids,
        &uploads.limits,
        new,
        permit.is_none(),
    )
    .await?;
    if permit.is_some() {
        let place = Place {
            metrics: &state.ctx.metrics,
            name: "web",
        };
        match media::process(db, storage, &uploads.limits, row.id, place).await {
            Ok(Outcome::Ready(ready)) => row = *ready,
            Ok(Outcome::Failed(reason)) => return Err(ApiError::unprocessable(reason)),
            Ok(Outcome::Settled) => {}
            // Stored but not processed: the media service takes it from here (202).
            Err(error) => {
                tracing::warn!(%error, media_id = row.id, "processing in the request failed; queued");
                media::queue_processing(db, row.id).await?;
            }
        }
        drop(permit);
    }
    if let Some(thumbnail) = thumbnail {
        let change = Change {
            thumbnail: Some(thumbnail.bytes),
            ..Change::default()
        };
        row = media::update(db, storage, &uploads.limits, account_id, row.id, change).await?;
    }
    let status = if row.state == "processing" && !v1 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(&state, &row))).into_response())
}

/// The caller's own attachment `id` (not yet attached to a status, when `unattached`).
async fn own(
    state: &AppState,
    auth: &Auth,
    id: &str,
    unattached: bool,
) -> Result<MediaRow, ApiError> {
    let id = crate::payload::path_id(id)?;
    let account_id = auth.user()?.account_id;
    media::find(&state.ctx.db, id)
        .await?
        .filter(|r| r.account_id == account_id && !(unattached && r.status_id.is_some()))
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/v1/media/:id`: 206 while processing, 200 when ready, 422 with the reason when
/// the file could not be processed.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(scopes::MEDIA_WRITE)?;
    let row = own(&state, &auth, &id, false).await?;
    let status = match row.state.as_str() {
        "processing" => StatusCode::PARTIAL_CONTENT,
        "failed" => {
            return Err(ApiError::unprocessable(row.error.unwrap_or_else(|| {
                "Error processing thumbnail for uploaded media".into()
            })));
        }
        _ => StatusCode::OK,
    };
    Ok((status, Json(render(&state, &row))).into_response())
}

/// `PUT /api/v1/media/:id`: description, focus, a custom thumbnail — before it is attached.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    mut form: WithFiles<UploadParams>,
) -> Result<Response, ApiError> {
    auth.require(scopes::MEDIA_WRITE)?;
    let row = own(&state, &auth, &id, true).await?;
    let change = Change {
        description: form.params.description.take(),
        focus: form
            .params
            .focus
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(media::parse_focus)
            .transpose()?,
        thumbnail: form.take("thumbnail").map(|f| f.bytes),
    };
    let row = media::update(
        &state.ctx.db,
        &state.ctx.storage,
        &state.uploads.limits,
        row.account_id,
        row.id,
        change,
    )
    .await?;
    let status = if row.state == "processing" {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(&state, &row))).into_response())
}

/// `DELETE /api/v1/media/:id`: an upload not attached to a status.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth.require(scopes::MEDIA_WRITE)?;
    let id = crate::payload::path_id(&id)?;
    media::delete(&state.ctx.db, auth.user()?.account_id, id).await?;
    Ok(Json(serde_json::json!({})))
}

/// `GET /system/{key}`: a stored file, for servers keeping media on local disk (with S3 the
/// files' URLs point at the bucket or CDN instead).
pub async fn file(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let Some(bytes) = state
        .ctx
        .storage
        .get(&key)
        .await
        .map_err(|_| ApiError::not_found())?
    else {
        return Err(ApiError::not_found());
    };
    let content_type = stampede_social::activitypub::media_type_of(&key);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Every file has a unique name: a new version is a new URL.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(stampede_storage::s3::CACHE_CONTROL),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /media_proxy/:id/:style`: a remote attachment not cached yet is fetched (through the
/// guarded client) and processed now, then the client is sent to the stored file.
pub async fn proxy(
    State(state): State<AppState>,
    Path((id, style)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let style = match style.as_str() {
        "original" | "small" => style,
        _ => return Err(ApiError::not_found()),
    };
    let row = media::find(&state.ctx.db, id)
        .await?
        .filter(|r| r.remote_url.is_some())
        .ok_or_else(ApiError::not_found)?;
    let row = if row.file_key.is_some() {
        row
    } else {
        media::cache(
            &state.ctx.db,
            &state.ctx.storage,
            state.resolver.client(),
            &state.uploads.limits,
            id,
            Place {
                metrics: &state.ctx.metrics,
                name: "web",
            },
        )
        .await?
        .ok_or_else(ApiError::not_found)?
    };
    let key = match style.as_str() {
        "small" => row.thumbnail_key.or(row.small_key).or(row.file_key),
        _ => row.file_key,
    };
    let key = key.ok_or_else(ApiError::not_found)?;
    Ok(Redirect::to(&state.render.files().url(&key)).into_response())
}
