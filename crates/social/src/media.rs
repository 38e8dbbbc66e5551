//! Media attachments: uploads, their processing into variants, remote media and its cache, and
//! how an attachment is shown.
//!
//! An upload is stored as it came and recorded as `processing` in one step; the media service (or,
//! for a small image, the web request itself) makes the variants with
//! [`stampede_mediaproc::process`] and marks it `ready` or `failed`. Processing is idempotent: a
//! redelivered job finds the row no longer `processing` and stops; two racing jobs both store
//! variants, but only one marks the row, and the other's files go to the garbage.
//!
//! Remote attachments arrive with a status from another server as `remote` rows that only name
//! their `remote_url`; caching one (on arrival or when first asked for) runs the same pipeline.

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{FromRow, PgConnection, PgExecutor};
use stampede_activitypub::client::{Client, FetchError};
use stampede_config::{Config, StorageConfig};
use stampede_core::id::IdGenerator;
use stampede_db::Db;
use stampede_mastodon::MediaAttachment;
use stampede_mediaproc::{Limits, MediaError, Processed};
use stampede_queue::message::{Consume, Message};
use stampede_queue::{Envelope, JobError, WorkQueue, outbox};
use stampede_storage::{Storage, StorageError};
use stampede_telemetry::metrics::Metrics;

/// Mastodon's limit of attachments on one status.
pub const MAX_ATTACHMENTS: usize = 4;
/// Mastodon's longest description (alt text).
pub const MAX_DESCRIPTION: usize = 1500;

/// The media queue's messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum MediaJob {
    /// Make the variants of an upload.
    #[serde(rename = "media.process")]
    Process { media_id: i64 },
    /// Fetch and process a remote attachment.
    #[serde(rename = "media.cache")]
    Cache { media_id: i64 },
    /// Fetch and store a remote account's avatar and header.
    #[serde(rename = "media.cache_profile")]
    CacheProfile { account_id: i64 },
}

impl Message for MediaJob {
    const QUEUE: WorkQueue = WorkQueue::Media;
    const KINDS: &'static [&'static str] = &["media.process", "media.cache", "media.cache_profile"];
}

/// An attachment as stored.
#[derive(Debug, Clone, FromRow)]
pub struct MediaRow {
    pub id: i64,
    pub account_id: i64,
    pub status_id: Option<i64>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub state: String,
    pub error: Option<String>,
    pub content_type: Option<String>,
    pub upload_key: Option<String>,
    pub file_key: Option<String>,
    pub small_key: Option<String>,
    pub thumbnail_key: Option<String>,
    pub meta: sqlx::types::Json<Value>,
    pub description: String,
    pub focus_x: Option<f32>,
    pub focus_y: Option<f32>,
    pub blurhash: Option<String>,
    pub remote_url: Option<String>,
    pub preview_remote_url: Option<String>,
}

/// The columns of [`MediaRow`].
pub const MEDIA_COLUMNS: &str = "id, account_id, status_id, type, state, error, content_type, \
     upload_key, file_key, small_key, thumbnail_key, meta, description, focus_x, focus_y, \
     blurhash, remote_url, preview_remote_url";

/// One attachment by id.
pub async fn find(db: impl PgExecutor<'_>, id: i64) -> Result<Option<MediaRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MEDIA_COLUMNS} FROM media_attachments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The attachments shown with each of `status_ids`, in their order.
pub async fn of_statuses(
    db: impl PgExecutor<'_>,
    status_ids: &[i64],
) -> Result<Vec<MediaRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MEDIA_COLUMNS} FROM media_attachments \
         WHERE status_id = ANY($1) AND position >= 0 ORDER BY status_id, position"
    ))
    .bind(status_ids)
    .fetch_all(db)
    .await
}

/// Attachments by id, in the order given (missing ones left out).
pub async fn by_ids(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<MediaRow>, sqlx::Error> {
    let rows: Vec<MediaRow> = sqlx::query_as(&format!(
        "SELECT {MEDIA_COLUMNS} FROM media_attachments WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(ids
        .iter()
        .filter_map(|id| rows.iter().find(|r| r.id == *id).cloned())
        .collect())
}

/// Where stored files are served from: public URLs for storage keys.
#[derive(Debug, Clone)]
pub struct Files {
    /// Prefix a key is appended to (no trailing slash).
    prefix: String,
    /// `https://WEB_DOMAIN`, for the media proxy of remote files not cached.
    base: String,
}

impl Files {
    /// CDN_HOST if set; else S3_ALIAS_HOST, the bucket on its endpoint, or AWS's bucket host for
    /// S3; else `https://WEB_DOMAIN/system` for local disk (which the web service serves).
    pub fn from_config(config: &Config) -> Files {
        let base = crate::post::base_url(config);
        let prefix = match (&config.media.cdn_host, &config.storage) {
            (Some(cdn), _) => cdn.as_str().trim_end_matches('/').to_string(),
            (None, StorageConfig::S3(s3)) => match &config.media.s3_alias_host {
                Some(alias) => format!("{}://{alias}", config.media.s3_protocol),
                None => match &s3.endpoint {
                    Some(endpoint) if s3.force_path_style => {
                        format!("{}/{}", endpoint.as_str().trim_end_matches('/'), s3.bucket)
                    }
                    Some(endpoint) => {
                        let mut url = endpoint.clone();
                        let host = format!("{}.{}", s3.bucket, url.host_str().unwrap_or_default());
                        // A host made of a valid bucket name and a valid host is valid.
                        let _ = url.set_host(Some(&host));
                        url.as_str().trim_end_matches('/').to_string()
                    }
                    None => format!("https://{}.s3.{}.amazonaws.com", s3.bucket, s3.region),
                },
            },
            (None, StorageConfig::Local { .. }) => format!("{base}/system"),
        };
        Files { prefix, base }
    }

    /// The public URL of the object under `key`.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// The attachment as the API shows it.
    pub fn render(&self, row: &MediaRow) -> MediaAttachment {
        let proxied = |style: &str| format!("{}/media_proxy/{}/{style}", self.base, row.id);
        let url = match (&row.file_key, &row.remote_url) {
            (Some(key), _) => Some(self.url(key)),
            (None, Some(_)) => Some(proxied("original")),
            (None, None) => None,
        };
        let preview_url = match (&row.thumbnail_key, &row.small_key, &row.remote_url) {
            (Some(key), _, _) | (None, Some(key), _) => Some(self.url(key)),
            (None, None, Some(_)) if row.file_key.is_none() => Some(proxied("small")),
            _ => None,
        };
        let mut meta = row.meta.0.clone();
        if let (Some(x), Some(y)) = (row.focus_x, row.focus_y)
            && let Some(map) = meta.as_object_mut()
        {
            map.insert("focus".into(), json!({ "x": x, "y": y }));
        }
        MediaAttachment {
            id: row.id.to_string(),
            kind: row.kind.clone(),
            url,
            preview_url,
            remote_url: row.remote_url.clone(),
            preview_remote_url: row.preview_remote_url.clone(),
            text_url: None,
            meta,
            description: (!row.description.is_empty()).then(|| row.description.clone()),
            blurhash: row.blurhash.clone(),
        }
    }
}

/// The processing limits the configuration sets.
pub fn limits(config: &Config) -> Limits {
    Limits {
        image_bytes: config.media.image_bytes,
        video_bytes: config.media.video_bytes,
        ffmpeg: config.media.ffmpeg.clone(),
        ffprobe: config.media.ffprobe.clone(),
        ..Limits::default()
    }
}

/// Why an upload or a change to one was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// 422 with this message.
    #[error("{0}")]
    Invalid(String),
    /// No such attachment of this account: 404.
    #[error("Record not found")]
    NotFound,
    #[error("storage unavailable: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<MediaError> for UploadError {
    fn from(error: MediaError) -> Self {
        UploadError::Invalid(error.to_string())
    }
}

/// A focal point `"x,y"`, each from -1.0 to 1.0.
pub fn parse_focus(focus: &str) -> Result<(f32, f32), UploadError> {
    let invalid = || UploadError::Invalid("Focus must be two numbers from -1.0 to 1.0".into());
    let (x, y) = focus.split_once(',').ok_or_else(invalid)?;
    let x: f32 = x.trim().parse().map_err(|_| invalid())?;
    let y: f32 = y.trim().parse().map_err(|_| invalid())?;
    if !(-1.0..=1.0).contains(&x) || !(-1.0..=1.0).contains(&y) {
        return Err(invalid());
    }
    Ok((x, y))
}

/// Checks a description's length.
pub fn check_description(description: &str) -> Result<(), UploadError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(UploadError::Invalid(format!(
            "Validation failed: Description is too long (maximum is {MAX_DESCRIPTION} characters)"
        )));
    }
    Ok(())
}

/// A short random part of every file name, so a replaced file never has a cached old URL.
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// What an upload is made of.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub account_id: i64,
    pub bytes: Bytes,
    pub description: String,
    pub focus: Option<(f32, f32)>,
}

/// Stores an upload as it came and records it as processing; the caller then either processes
/// it at once ([`process`]) or queues it ([`MediaJob::Process`], which this does when `queue`).
/// Refuses, before storing anything, a type not accepted or a file over its type's limit.
pub async fn upload(
    db: &Db,
    storage: &Storage,
    ids: &IdGenerator,
    limits: &Limits,
    new: NewUpload,
    queue: bool,
) -> Result<MediaRow, UploadError> {
    check_description(&new.description)?;
    let sniffed = stampede_mediaproc::sniff(&new.bytes)?;
    stampede_mediaproc::check_size(new.bytes.len(), sniffed.kind, limits)?;
    let id = ids.next_id().as_i64();
    let key = format!("media_attachments/{id}/upload-{}", token());
    storage.put(&key, new.bytes, sniffed.mime).await?;
    let inserted = async {
        let mut tx = db.begin().await?;
        let row: MediaRow = sqlx::query_as(&format!(
            "INSERT INTO media_attachments (id, account_id, type, content_type, upload_key, \
               description, focus_x, focus_y) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {MEDIA_COLUMNS}"
        ))
        .bind(id)
        .bind(new.account_id)
        .bind(sniffed.kind.as_str())
        .bind(sniffed.mime)
        .bind(&key)
        .bind(&new.description)
        .bind(new.focus.map(|f| f.0))
        .bind(new.focus.map(|f| f.1))
        .fetch_one(&mut *tx)
        .await?;
        if queue {
            outbox::send(&mut tx, &MediaJob::Process { media_id: id }).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    }
    .await;
    if inserted.is_err() {
        // Nothing refers to the object: take it back (a failure here leaves one orphan file).
        let _ = storage.delete(&key).await;
    }
    Ok(inserted?)
}

/// Hands upload `id` to the media service (when processing it in the request failed for a
/// reason other than its content: storage or the database).
pub async fn queue_processing(db: &Db, id: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    outbox::send(&mut tx, &MediaJob::Process { media_id: id }).await?;
    tx.commit().await
}

/// Stores a processed attachment's variants; returns their keys (original, small).
async fn store_variants(
    storage: &Storage,
    id: i64,
    processed: &Processed,
) -> Result<(String, Option<String>), StorageError> {
    let token = token();
    let original = format!(
        "media_attachments/{id}/original-{token}.{}",
        processed.original.extension
    );
    storage
        .put(
            &original,
            processed.original.bytes.clone(),
            processed.original.mime,
        )
        .await?;
    let small = match &processed.small {
        Some(small) => {
            let key = format!("media_attachments/{id}/small-{token}.{}", small.extension);
            storage.put(&key, small.bytes.clone(), small.mime).await?;
            Some(key)
        }
        None => None,
    };
    Ok((original, small))
}

/// Queues storage objects for removal (in the caller's transaction, so a rollback keeps them).
pub async fn discard(conn: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO storage_garbage (key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// What processing an attachment came to.
#[derive(Debug)]
pub enum Outcome {
    Ready(Box<MediaRow>),
    /// Refused (bad input): the row says why.
    Failed(String),
    /// Nothing to do: not processing any more, or gone.
    Settled,
}

/// Where a file is processed, for the metrics: `web` (in the request) or `worker`.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub metrics: &'a Metrics,
    pub name: &'static str,
}

impl Place<'_> {
    fn record(&self, outcome: &str, started: std::time::Instant) {
        self.metrics
            .media(outcome, self.name, started.elapsed().as_secs_f64());
    }
}

/// Makes the variants of upload `id` and marks it ready, or failed with the reason. Storage and
/// database failures are errors (the job is retried); bad input is an [`Outcome::Failed`].
pub async fn process(
    db: &Db,
    storage: &Storage,
    limits: &Limits,
    id: i64,
    place: Place<'_>,
) -> Result<Outcome, UploadError> {
    let Some(row) = find(db, id).await? else {
        return Ok(Outcome::Settled);
    };
    let (Some(upload_key), "processing") = (row.upload_key.clone(), row.state.as_str()) else {
        return Ok(Outcome::Settled);
    };
    let Some(bytes) = storage.get(&upload_key).await? else {
        return fail(db, id, "The uploaded file was lost before it was processed").await;
    };
    let started = std::time::Instant::now();
    let processed = match stampede_mediaproc::process(bytes, limits).await {
        Ok(processed) => processed,
        Err(error) => {
            tracing::info!(media_id = id, %error, "upload refused");
            place.record("failed", started);
            return fail(db, id, &error.to_string()).await;
        }
    };
    place.record("ready", started);
    let update = format!(
        "UPDATE media_attachments SET state = 'ready', type = $2, content_type = $3, \
           file_key = $4, small_key = $5, file_size = $6, meta = $7, blurhash = $8, \
           upload_key = NULL, updated_at = now() \
         WHERE id = $1 AND state = 'processing' RETURNING {MEDIA_COLUMNS}"
    );
    let recorded = record_variants(db, storage, id, &processed, &update, Some(upload_key)).await?;
    Ok(match recorded {
        Some(row) => Outcome::Ready(Box::new(row)),
        None => Outcome::Settled,
    })
}

/// Stores `processed`'s variants and records them on row `id` with `update`, a statement that
/// takes them as $2…$8 (type, content type, original and small keys, size, meta, blurhash) and
/// returns the row when it applied. Then `spent` (the raw upload) goes to the garbage; when the
/// statement did not apply (another job was first), the new files do instead.
async fn record_variants(
    db: &Db,
    storage: &Storage,
    id: i64,
    processed: &Processed,
    update: &str,
    spent: Option<String>,
) -> Result<Option<MediaRow>, UploadError> {
    let (original, small) = store_variants(storage, id, processed).await?;
    let mut tx = db.begin().await?;
    let updated: Option<MediaRow> = sqlx::query_as(update)
        .bind(id)
        .bind(processed.kind.as_str())
        .bind(processed.original.mime)
        .bind(&original)
        .bind(&small)
        .bind(processed.original.bytes.len() as i64)
        .bind(sqlx::types::Json(&processed.meta))
        .bind(&processed.blurhash)
        .fetch_optional(&mut *tx)
        .await?;
    let garbage: Vec<String> = match updated {
        Some(_) => spent.into_iter().collect(),
        None => [Some(original), small].into_iter().flatten().collect(),
    };
    discard(&mut tx, &garbage).await?;
    tx.commit().await?;
    Ok(updated)
}

async fn fail(db: &Db, id: i64, reason: &str) -> Result<Outcome, UploadError> {
    let mut tx = db.begin().await?;
    let upload: Option<Option<String>> = sqlx::query_scalar(
        "UPDATE media_attachments SET state = 'failed', error = $2, updated_at = now() \
         WHERE id = $1 AND state = 'processing' RETURNING upload_key",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(Some(key)) = upload {
        sqlx::query("UPDATE media_attachments SET upload_key = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        discard(&mut tx, &[key]).await?;
    }
    tx.commit().await?;
    Ok(Outcome::Failed(reason.to_string()))
}

/// Changes an attachment's description, focus or custom thumbnail (its owner's only).
#[derive(Debug, Default)]
pub struct Change {
    pub description: Option<String>,
    pub focus: Option<(f32, f32)>,
    pub thumbnail: Option<Bytes>,
}

/// Applies `change` to `id` of `account_id`; returns the row as it now is.
pub async fn update(
    db: &Db,
    storage: &Storage,
    limits: &Limits,
    account_id: i64,
    id: i64,
    change: Change,
) -> Result<MediaRow, UploadError> {
    let row = find(db, id)
        .await?
        .filter(|r| r.account_id == account_id)
        .ok_or(UploadError::NotFound)?;
    if let Some(description) = &change.description {
        check_description(description)?;
    }
    let thumbnail = match change.thumbnail {
        Some(bytes) => {
            let (variant, _blurhash) = stampede_mediaproc::thumbnail(bytes, limits).await?;
            let key = format!(
                "media_attachments/{id}/thumbnail-{}.{}",
                token(),
                variant.extension
            );
            storage.put(&key, variant.bytes, variant.mime).await?;
            Some(key)
        }
        None => None,
    };
    let mut tx = db.begin().await?;
    let updated: MediaRow = sqlx::query_as(&format!(
        "UPDATE media_attachments SET description = coalesce($2, description), \
           focus_x = coalesce($3, focus_x), focus_y = coalesce($4, focus_y), \
           thumbnail_key = coalesce($5, thumbnail_key), updated_at = now() \
         WHERE id = $1 RETURNING {MEDIA_COLUMNS}"
    ))
    .bind(id)
    .bind(&change.description)
    .bind(change.focus.map(|f| f.0))
    .bind(change.focus.map(|f| f.1))
    .bind(&thumbnail)
    .fetch_one(&mut *tx)
    .await?;
    if let (Some(_), Some(old)) = (&thumbnail, row.thumbnail_key) {
        discard(&mut tx, &[old]).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// Every storage key a row holds.
fn keys_of(row: &MediaRow) -> Vec<String> {
    [
        &row.upload_key,
        &row.file_key,
        &row.small_key,
        &row.thumbnail_key,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect()
}

/// Deletes an unattached upload of `account_id` (Mastodon refuses attached ones with 422).
pub async fn delete(db: &Db, account_id: i64, id: i64) -> Result<(), UploadError> {
    let mut tx = db.begin().await?;
    let row: MediaRow = sqlx::query_as(&format!(
        "SELECT {MEDIA_COLUMNS} FROM media_attachments WHERE id = $1 AND account_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(UploadError::NotFound)?;
    if row.status_id.is_some() {
        return Err(UploadError::Invalid(
            "Media attachment is currently used by a status".into(),
        ));
    }
    sqlx::query("DELETE FROM media_attachments WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    discard(&mut tx, &keys_of(&row)).await?;
    tx.commit().await?;
    Ok(())
}

/// Checks `media_ids` for a new or edited status of `author` (owned, processed, at most four,
/// video or audio only alone) and returns them as numbers, in order.
pub async fn check_for_status(
    conn: &mut PgConnection,
    author: i64,
    status_id: Option<i64>,
    media_ids: &[i64],
) -> Result<(), crate::post::PostError> {
    use crate::post::PostError;
    if media_ids.is_empty() {
        return Ok(());
    }
    if media_ids.len() > MAX_ATTACHMENTS {
        return Err(PostError::Invalid(format!(
            "Validation failed: Media attachments can't exceed {MAX_ATTACHMENTS}"
        )));
    }
    let rows: Vec<(i64, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, type, state, status_id FROM media_attachments \
         WHERE id = ANY($1) AND account_id = $2",
    )
    .bind(media_ids)
    .bind(author)
    .fetch_all(&mut *conn)
    .await?;
    if media_ids
        .iter()
        .any(|id| !rows.iter().any(|(r, _, _, _)| r == id))
    {
        return Err(PostError::Invalid(
            "Validation failed: Media attachments are invalid".into(),
        ));
    }
    for (_, _, state, attached) in &rows {
        if state == "processing" {
            return Err(PostError::Invalid(
                "Cannot attach files that have not finished processing. Try again in a moment!"
                    .into(),
            ));
        }
        if state == "failed" {
            return Err(PostError::Invalid(
                "Cannot attach files that could not be processed".into(),
            ));
        }
        if attached.is_some() && *attached != status_id {
            return Err(PostError::Invalid(
                "Validation failed: Media attachments are already used by another status".into(),
            ));
        }
    }
    if rows.len() > 1 && rows.iter().any(|(_, kind, _, _)| kind != "image") {
        return Err(PostError::Invalid(
            "Cannot attach a video to a post that already contains images".into(),
        ));
    }
    Ok(())
}

/// Shows exactly `media_ids` (already checked) on `status_id`, in that order; attachments it
/// showed before and no longer does stay with it (for the edit history) but are hidden.
pub async fn attach(
    conn: &mut PgConnection,
    status_id: i64,
    media_ids: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE media_attachments SET position = -1, updated_at = now() \
         WHERE status_id = $1 AND NOT (id = ANY($2))",
    )
    .bind(status_id)
    .bind(media_ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE media_attachments m SET status_id = $1, position = o.n - 1, updated_at = now() \
         FROM unnest($2::bigint[]) WITH ORDINALITY AS o(id, n) WHERE m.id = o.id",
    )
    .bind(status_id)
    .bind(media_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Detaches a deleted status's attachments (before the status row goes), so that its author may
/// attach them again ("delete and redraft") until the orphan cleanup removes them.
pub async fn release(conn: &mut PgConnection, status_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE media_attachments SET status_id = NULL, position = 0, updated_at = now() \
         WHERE status_id = $1",
    )
    .bind(status_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A remote attachment as an ActivityPub object describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteMedia {
    pub url: String,
    pub media_type: Option<String>,
    pub description: String,
    pub blurhash: Option<String>,
    pub focus: Option<(f32, f32)>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl RemoteMedia {
    /// The attachments of a Note (`attachment`, an object or a list), at most four.
    pub fn from_note(note: &Value) -> Vec<RemoteMedia> {
        let list = match &note["attachment"] {
            Value::Array(list) => list.clone(),
            Value::Object(_) => vec![note["attachment"].clone()],
            _ => Vec::new(),
        };
        list.iter()
            .filter_map(RemoteMedia::from_object)
            .take(MAX_ATTACHMENTS)
            .collect()
    }

    fn from_object(object: &Value) -> Option<RemoteMedia> {
        let url = match &object["url"] {
            Value::String(url) => url.clone(),
            Value::Object(link) => link["href"].as_str()?.to_string(),
            Value::Array(links) => links.iter().find_map(|l| match l {
                Value::String(url) => Some(url.clone()),
                Value::Object(link) => link["href"].as_str().map(str::to_string),
                _ => None,
            })?,
            _ => return None,
        };
        let parsed = url::Url::parse(&url).ok()?;
        if parsed.scheme() != "https" && parsed.scheme() != "http" {
            return None;
        }
        let focus = object["focalPoint"].as_array().and_then(|p| {
            let x = p.first()?.as_f64()? as f32;
            let y = p.get(1)?.as_f64()? as f32;
            ((-1.0..=1.0).contains(&x) && (-1.0..=1.0).contains(&y)).then_some((x, y))
        });
        let dimension = |name: &str| {
            object[name]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
        };
        Some(RemoteMedia {
            url,
            media_type: object["mediaType"].as_str().map(str::to_string),
            description: object["name"]
                .as_str()
                .or(object["summary"].as_str())
                .unwrap_or_default()
                .chars()
                .take(MAX_DESCRIPTION)
                .collect(),
            blurhash: object["blurhash"]
                .as_str()
                .filter(|b| b.len() <= 100 && b.chars().all(|c| c.is_ascii_graphic()))
                .map(str::to_string),
            focus,
            width: dimension("width"),
            height: dimension("height"),
        })
    }

    /// Mastodon's type from the declared media type.
    fn kind(&self) -> &'static str {
        match self.media_type.as_deref().unwrap_or_default() {
            t if t.starts_with("image/") => "image",
            t if t.starts_with("video/") => "video",
            t if t.starts_with("audio/") => "audio",
            _ => "unknown",
        }
    }
}

/// Records the attachments of remote status `status_id` by `account_id` (replacing what it
/// showed before, for an Update), and queues their caching when the server caches on arrival.
pub async fn record_remote(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    account_id: i64,
    status_id: i64,
    media: &[RemoteMedia],
    cache: bool,
) -> Result<(), sqlx::Error> {
    let existing: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT id, remote_url FROM media_attachments WHERE status_id = $1 AND position >= 0",
    )
    .bind(status_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut shown = Vec::with_capacity(media.len());
    for item in media {
        if let Some((id, _)) = existing
            .iter()
            .find(|(_, url)| url.as_deref() == Some(item.url.as_str()))
        {
            sqlx::query(
                "UPDATE media_attachments SET description = $2, focus_x = $3, focus_y = $4 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&item.description)
            .bind(item.focus.map(|f| f.0))
            .bind(item.focus.map(|f| f.1))
            .execute(&mut *conn)
            .await?;
            shown.push(*id);
            continue;
        }
        let id = ids.next_id().as_i64();
        let meta = match (item.width, item.height) {
            (Some(w), Some(h)) => json!({ "original": {
                "width": w, "height": h, "size": format!("{w}x{h}"),
                "aspect": f64::from(w) / f64::from(h),
            }}),
            _ => json!({}),
        };
        sqlx::query(
            "INSERT INTO media_attachments (id, account_id, status_id, type, state, content_type, \
               meta, description, focus_x, focus_y, blurhash, remote_url) \
             VALUES ($1, $2, $3, $4, 'remote', $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(account_id)
        .bind(status_id)
        .bind(item.kind())
        .bind(&item.media_type)
        .bind(sqlx::types::Json(meta))
        .bind(&item.description)
        .bind(item.focus.map(|f| f.0))
        .bind(item.focus.map(|f| f.1))
        .bind(&item.blurhash)
        .bind(&item.url)
        .execute(&mut *conn)
        .await?;
        if cache {
            outbox::send(conn, &MediaJob::Cache { media_id: id }).await?;
        }
        shown.push(id);
    }
    attach(conn, status_id, &shown).await
}

/// The largest remote file fetched.
fn remote_limit(limits: &Limits) -> usize {
    usize::try_from(limits.image_bytes.max(limits.video_bytes)).unwrap_or(usize::MAX)
}

/// Fetches remote attachment `id` through the guarded client and processes it like an upload.
/// A remote server's failure or refusal leaves the row linking the remote file.
pub async fn cache(
    db: &Db,
    storage: &Storage,
    client: &Client,
    limits: &Limits,
    id: i64,
    place: Place<'_>,
) -> Result<Option<MediaRow>, UploadError> {
    let Some(row) = find(db, id).await? else {
        return Ok(None);
    };
    let (Some(remote), None) = (&row.remote_url, &row.file_key) else {
        return Ok(Some(row));
    };
    let bytes = match fetch(client, remote, remote_limit(limits)).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::info!(media_id = id, %error, "remote media not cached");
            return Ok(Some(row));
        }
    };
    let started = std::time::Instant::now();
    let processed = match stampede_mediaproc::process(bytes, limits).await {
        Ok(processed) => processed,
        Err(error) => {
            tracing::info!(media_id = id, %error, "remote media refused");
            place.record("failed", started);
            return Ok(Some(row));
        }
    };
    place.record("ready", started);
    let update = format!(
        "UPDATE media_attachments SET type = $2, content_type = $3, file_key = $4, \
           small_key = $5, file_size = $6, meta = $7, blurhash = coalesce(blurhash, $8), \
           updated_at = now() \
         WHERE id = $1 AND file_key IS NULL RETURNING {MEDIA_COLUMNS}"
    );
    match record_variants(db, storage, id, &processed, &update, None).await? {
        Some(row) => Ok(Some(row)),
        None => Ok(find(db, id).await?),
    }
}

async fn fetch(client: &Client, url: &str, limit: usize) -> Result<Bytes, FetchError> {
    let parsed = url::Url::parse(url).map_err(|_| FetchError::Scheme(url.to_string()))?;
    let request = client.request(reqwest::Method::GET, &parsed)?;
    let (_, body) = client.send(request, limit).await?;
    Ok(Bytes::from(body))
}

/// Fetches a remote account's avatar and header into storage (scaled like local ones).
pub async fn cache_profile(
    db: &Db,
    storage: &Storage,
    client: &Client,
    limits: &Limits,
    account_id: i64,
) -> Result<(), UploadError> {
    let row: Option<ProfileImages> = sqlx::query_as(
        "SELECT avatar_remote_url, avatar_key, header_remote_url, header_key \
         FROM accounts WHERE id = $1 AND domain IS NOT NULL",
    )
    .bind(account_id)
    .fetch_optional(db)
    .await?;
    let Some(images) = row else {
        return Ok(());
    };
    for (image, url, old) in [
        (Profile::Avatar, images.avatar_remote_url, images.avatar_key),
        (Profile::Header, images.header_remote_url, images.header_key),
    ] {
        let Some(url) = url else { continue };
        let bytes = match fetch(client, &url, remote_limit(limits)).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::info!(account_id, %error, "remote profile image not cached");
                continue;
            }
        };
        let variant =
            match stampede_mediaproc::profile_image(bytes, image.width(), image.height(), limits)
                .await
            {
                Ok(variant) => variant,
                Err(error) => {
                    tracing::info!(account_id, %error, "remote profile image refused");
                    continue;
                }
            };
        let key = image.key(account_id, variant.extension);
        storage.put(&key, variant.bytes, variant.mime).await?;
        let mut tx = db.begin().await?;
        let column = image.column();
        let url_column = image.remote_url_column();
        let stored = sqlx::query(&format!(
            "UPDATE accounts SET {column} = $2 WHERE id = $1 AND {url_column} = $3"
        ))
        .bind(account_id)
        .bind(&key)
        .bind(&url)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let spare = if stored == 0 { Some(key) } else { old };
        discard(&mut tx, &spare.into_iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Where an account's avatar and header come from, and their stored copies.
#[derive(Debug, Clone, Default, FromRow)]
pub struct ProfileImages {
    pub avatar_remote_url: Option<String>,
    pub avatar_key: Option<String>,
    pub header_remote_url: Option<String>,
    pub header_key: Option<String>,
}

/// An account's avatar or header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Avatar,
    Header,
}

impl Profile {
    /// Mastodon's sizes: avatars 400×400, headers 1500×500 (cropped to fill).
    pub fn width(self) -> u32 {
        match self {
            Profile::Avatar => 400,
            Profile::Header => 1500,
        }
    }

    pub fn height(self) -> u32 {
        match self {
            Profile::Avatar => 400,
            Profile::Header => 500,
        }
    }

    fn column(self) -> &'static str {
        match self {
            Profile::Avatar => "avatar_key",
            Profile::Header => "header_key",
        }
    }

    fn remote_url_column(self) -> &'static str {
        match self {
            Profile::Avatar => "avatar_remote_url",
            Profile::Header => "header_remote_url",
        }
    }

    fn key(self, account_id: i64, extension: &str) -> String {
        let folder = match self {
            Profile::Avatar => "avatars",
            Profile::Header => "headers",
        };
        format!(
            "accounts/{folder}/{account_id}/original-{}.{extension}",
            token()
        )
    }
}

/// Checks and scales a local account's new avatar or header and stores it; returns its key,
/// for [`set_profile_image`] in the transaction that changes the profile.
pub async fn store_profile_image(
    storage: &Storage,
    limits: &Limits,
    account_id: i64,
    image: Profile,
    bytes: Bytes,
) -> Result<String, UploadError> {
    let variant =
        stampede_mediaproc::profile_image(bytes, image.width(), image.height(), limits).await?;
    let key = image.key(account_id, variant.extension);
    storage.put(&key, variant.bytes, variant.mime).await?;
    Ok(key)
}

/// Sets (`Some`, from [`store_profile_image`]) or removes (`None`) a local account's avatar or
/// header in the caller's transaction; the old file goes to the garbage.
pub async fn set_profile_image(
    conn: &mut PgConnection,
    account_id: i64,
    image: Profile,
    key: Option<&str>,
) -> Result<(), sqlx::Error> {
    let column = image.column();
    let old: Option<String> = sqlx::query_scalar(&format!(
        "SELECT {column} FROM accounts WHERE id = $1 FOR UPDATE"
    ))
    .bind(account_id)
    .fetch_one(&mut *conn)
    .await?;
    if old.as_deref() == key {
        return Ok(());
    }
    sqlx::query(&format!(
        "UPDATE accounts SET {column} = $2, updated_at = now() WHERE id = $1"
    ))
    .bind(account_id)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    discard(conn, &old.into_iter().collect::<Vec<_>>()).await
}

/// Removes what the garbage lists from storage, at most `batch` objects; returns how many.
pub async fn collect_garbage(db: &Db, storage: &Storage, batch: i64) -> Result<usize, UploadError> {
    let mut tx = db.begin().await?;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM storage_garbage ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    for key in &keys {
        storage.delete(key).await?;
    }
    sqlx::query("DELETE FROM storage_garbage WHERE key = ANY($1)")
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(keys.len())
}

/// Removes uploads attached to nothing for `hours` (their files go to the garbage); returns
/// how many.
pub async fn remove_unattached(db: &Db, hours: u32, batch: i64) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let rows: Vec<MediaRow> = sqlx::query_as(&format!(
        "DELETE FROM media_attachments WHERE id IN ( \
           SELECT m.id FROM media_attachments m WHERE m.status_id IS NULL \
             AND m.updated_at < now() - make_interval(hours => $1) \
             AND NOT EXISTS (SELECT 1 FROM scheduled_statuses ss \
                             WHERE ss.account_id = m.account_id \
                               AND ss.params -> 'media_ids' @> to_jsonb(m.id)) \
           ORDER BY m.updated_at LIMIT $2 FOR UPDATE OF m SKIP LOCKED) \
         RETURNING {MEDIA_COLUMNS}"
    ))
    .bind(hours as i32)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let keys: Vec<String> = rows.iter().flat_map(keys_of).collect();
    discard(&mut tx, &keys).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// Uncaches remote attachments cached more than `days` ago: their files go to the garbage and
/// they link the remote file again (fetched anew when asked for). Returns how many.
pub async fn uncache_remote(db: &Db, days: u32, batch: i64) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let keys: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "WITH old AS (SELECT id, file_key, small_key FROM media_attachments \
           WHERE remote_url IS NOT NULL AND file_key IS NOT NULL \
             AND updated_at < now() - make_interval(days => $1) \
           ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE media_attachments m SET file_key = NULL, small_key = NULL, updated_at = now() \
         FROM old WHERE m.id = old.id RETURNING old.file_key, old.small_key",
    )
    .bind(days as i32)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let count = keys.len();
    let keys: Vec<String> = keys
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .flatten()
        .collect();
    discard(&mut tx, &keys).await?;
    tx.commit().await?;
    Ok(count)
}

/// Uploads still processing after this long are queued again: a web process that died while
/// processing one in the request leaves it so (a queued one is never lost: the queue is durable).
const STUCK_MINUTES: i32 = 10;

/// Queues again the uploads processing for more than [`STUCK_MINUTES`]; returns how many.
pub async fn requeue_stuck(db: &Db, batch: i64) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE media_attachments SET updated_at = now() WHERE id IN ( \
           SELECT id FROM media_attachments WHERE state = 'processing' \
             AND updated_at < now() - make_interval(mins => $1) \
           LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id",
    )
    .bind(STUCK_MINUTES)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let jobs: Vec<MediaJob> = ids
        .iter()
        .map(|&media_id| MediaJob::Process { media_id })
        .collect();
    outbox::send_all(&mut tx, &jobs).await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// What one cleanup removed.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Cleanup {
    /// Uploads left processing that were queued again.
    pub requeued: usize,
    /// Remote attachments whose cached copies were dropped.
    pub uncached: usize,
    /// Uploads never attached (or left by a deleted status) that were removed.
    pub unattached_removed: usize,
    /// Files deleted from storage.
    pub files_removed: usize,
}

/// Repeats `step` on batches until one comes back short; returns the total.
async fn batches<F, Fut, E>(mut step: F) -> Result<usize, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
{
    const BATCH: usize = 500;
    let mut total = 0;
    loop {
        let n = step().await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Queues again uploads left processing, removes uploads attached to nothing for
/// `unattached_hours`, uncaches remote media cached more
/// than `retention_days` ago (none when `None`), then deletes the files nothing refers to. Each
/// step takes batches with SKIP LOCKED, so several processes may run it at once.
pub async fn cleanup(
    db: &Db,
    storage: &Storage,
    unattached_hours: u32,
    retention_days: Option<u32>,
) -> Result<Cleanup, UploadError> {
    let batch = 500;
    let requeued = batches(|| requeue_stuck(db, batch)).await?;
    let unattached_removed = batches(|| remove_unattached(db, unattached_hours, batch)).await?;
    let uncached = match retention_days {
        Some(days) => batches(|| uncache_remote(db, days, batch)).await?,
        None => 0,
    };
    let files_removed = batches(|| collect_garbage(db, storage, batch)).await?;
    Ok(Cleanup {
        requeued,
        uncached,
        unattached_removed,
        files_removed,
    })
}

/// The media service's handler of [`MediaJob`]s.
#[derive(Debug, Clone)]
pub struct MediaWorker {
    pub db: Db,
    pub storage: Storage,
    pub client: Client,
    pub limits: Limits,
    pub metrics: std::sync::Arc<Metrics>,
}

fn job_error(error: UploadError) -> JobError {
    match error {
        UploadError::Invalid(_) | UploadError::NotFound => JobError::Permanent(error.into()),
        e => JobError::Retry(e.into()),
    }
}

impl Consume<MediaJob> for MediaWorker {
    fn consume<'a>(
        &'a self,
        message: MediaJob,
        _envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            let place = Place {
                metrics: &self.metrics,
                name: "worker",
            };
            match message {
                MediaJob::Process { media_id } => {
                    process(&self.db, &self.storage, &self.limits, media_id, place)
                        .await
                        .map_err(job_error)?;
                }
                MediaJob::Cache { media_id } => {
                    cache(
                        &self.db,
                        &self.storage,
                        &self.client,
                        &self.limits,
                        media_id,
                        place,
                    )
                    .await
                    .map_err(job_error)?;
                }
                MediaJob::CacheProfile { account_id } => {
                    cache_profile(
                        &self.db,
                        &self.storage,
                        &self.client,
                        &self.limits,
                        account_id,
                    )
                    .await
                    .map_err(job_error)?;
                }
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_jobs_are_listed() {
        stampede_queue::message::assert_kinds(&[
            MediaJob::Process { media_id: 1 },
            MediaJob::Cache { media_id: 1 },
            MediaJob::CacheProfile { account_id: 1 },
        ]);
    }

    #[test]
    fn focus_is_two_numbers_in_range() {
        assert_eq!(parse_focus("0.5,-1").ok(), Some((0.5, -1.0)));
        for bad in ["", "1", "2,0", "a,b", "0,-1.5"] {
            assert!(parse_focus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_attachments_are_read_from_a_note() {
        let note = json!({ "attachment": [
            { "type": "Document", "mediaType": "image/jpeg", "url": "https://r.example/a.jpg",
              "name": "a cat", "blurhash": "UFBWY:8_0Jxv", "focalPoint": [0.5, -0.25],
              "width": 800, "height": 600 },
            { "type": "Document", "url": "javascript:alert(1)" },
            { "type": "Link", "url": { "href": "https://r.example/b.mp4" }, "mediaType": "video/mp4" }
        ]});
        let media = RemoteMedia::from_note(&note);
        assert_eq!(media.len(), 2);
        assert_eq!(media[0].description, "a cat");
        assert_eq!(media[0].focus, Some((0.5, -0.25)));
        assert_eq!(media[0].kind(), "image");
        assert_eq!(media[1].url, "https://r.example/b.mp4");
        assert_eq!(media[1].kind(), "video");
    }
}
