//! A signed-in person's account settings pages:
//! - `/settings/delete`: deletes their own account. It is suspended at once (signed out
//!   everywhere, gone from every read path) and purged after the grace period
//!   (ACCOUNT_DELETION_GRACE_DAYS) by `stampede_social::deletion`.
//! - `/settings/aliases`: names an old account (here or elsewhere) that may move to this one.
//! - `/settings/migration`: moves this account to a new one that names it as an alias
//!   (`stampede_social::moves`).
//! - `/settings/export`, `/settings/exports/*.csv`: the person's data (`stampede_social::export`).
//! - `/settings/import`: CSV lists from another server (`stampede_social::import`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use stampede_social::deletion;
use stampede_social::stream::{self, Control};

use super::auth::{bad_token, redirect, session_account};
use super::{csrf, csrf_ok};
use crate::AppState;
use crate::payload::Params;
use crate::sign_in::check_password;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/delete", get(delete_form).post(delete))
        .route("/settings/aliases", get(aliases_form).post(add_alias))
        .route("/settings/migration", get(migration_form).post(migrate))
        .route("/settings/export", get(export_page).post(request_export))
        .route("/settings/exports/archive/{id}", get(download_archive))
        .route("/settings/exports/{file}", get(download_csv))
        .route("/settings/import", get(import_page).post(import))
}

/// One of the settings pages (`template`) for `username`, with `extra` context and `errors`.
fn page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    username: &str,
    extra: serde_json::Value,
    errors: &[&str],
) -> Response {
    let (token, set) = csrf(state, headers);
    let mut context = json!({
        "csrf": token,
        "username": username,
        "grace_days": state.ctx.config.registrations.deletion_grace_days,
        "errors": errors,
    });
    if let (Some(context), serde_json::Value::Object(extra)) = (context.as_object_mut(), extra) {
        context.extend(extra);
    }
    state.page(status, template, context, set.into_iter().collect())
}

fn sign_in_first(path: &str) -> Response {
    redirect(&format!("/auth/sign_in?return_to={path}"), Vec::new())
}

/// The signed-in account behind a settings form that carries its CSRF token; otherwise the
/// answer to give (the expired-form page, or the sign-in page returning to `path`).
async fn form_account(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
    path: &str,
) -> Result<(i64, String), Response> {
    if !csrf_ok(headers, token) {
        return Err(bad_token(state));
    }
    session_account(state, headers)
        .await
        .ok_or_else(|| sign_in_first(path))
}

async fn delete_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_account(&state, &headers).await {
        Some((_, username)) => page(
            &state,
            &headers,
            StatusCode::OK,
            "delete_account.html",
            &username,
            json!({}),
            &[],
        ),
        None => sign_in_first("/settings/delete"),
    }
}

/// Whether `password` is the password of `account_id`.
async fn password_matches(
    state: &AppState,
    account_id: i64,
    password: &str,
) -> Result<bool, crate::error::ApiError> {
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE account_id = $1")
        .bind(account_id)
        .fetch_optional(&state.ctx.db)
        .await?;
    let matched = check_password(state, email.as_deref().unwrap_or_default(), password).await?;
    Ok(matched.is_some_and(|m| m.account_id == account_id))
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    authenticity_token: Option<String>,
    #[serde(default)]
    password: String,
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(form): Params<DeleteForm>,
) -> Response {
    let token = form.authenticity_token.as_deref();
    let (account_id, username) =
        match form_account(&state, &headers, token, "/settings/delete").await {
            Ok(account) => account,
            Err(answer) => return answer,
        };
    match password_matches(&state, account_id, &form.password).await {
        Ok(true) => {}
        Ok(false) => {
            return page(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "delete_account.html",
                &username,
                json!({}),
                &["Invalid password."],
            );
        }
        Err(e) => return e.into_response(),
    }
    let grace = state.ctx.config.registrations.deletion_grace_days;
    let due = chrono::Utc::now() + chrono::Duration::days(i64::from(grace));
    let requested = async {
        let mut tx = state.ctx.db.begin().await?;
        deletion::request(&mut tx, account_id, deletion::Reason::Own, due).await?;
        // Signed out everywhere: browser sessions and every token.
        sqlx::query("DELETE FROM web_sessions WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE oauth_access_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    };
    if let Err(e) = requested.await {
        return crate::error::ApiError::from(e).into_response();
    }
    state.grants.forget_account(account_id);
    stream::publish(
        &state.ctx.cache,
        stream::CONTROL_CHANNEL,
        &Control::Disconnect {
            account: account_id,
        },
    )
    .await;
    tracing::info!(account_id, "account deletion requested by its owner");
    let when = due.format("%Y-%m-%d").to_string();
    let line = format!("Everything it left on this server will be deleted on {when}.");
    state.notice(
        StatusCode::OK,
        "Your account is deleted",
        &["You are signed out everywhere.", &line],
    )
}

#[derive(Debug, Deserialize)]
struct AccountForm {
    authenticity_token: Option<String>,
    #[serde(default)]
    acct: String,
    #[serde(default)]
    password: String,
}

/// The account a handle (`user`, `@user@domain`) names: this server's, or another's (fetched
/// fresh, with its actor document). `None` when nobody answers to it.
async fn find_account(
    state: &AppState,
    acct: &str,
) -> Result<Option<(i64, String, Option<serde_json::Value>)>, crate::error::ApiError> {
    let acct = acct.trim().trim_start_matches('@');
    let (user, domain) = acct.split_once('@').unwrap_or((acct, ""));
    let base = state.base_url();
    if domain.is_empty() || domain.eq_ignore_ascii_case(&state.ctx.config.local_domain) {
        let row = crate::accounts::find_local(&state.ctx.db, user).await?;
        return Ok(row.map(|r| {
            let uri = stampede_social::activitypub::actor_uri(&base, &r.username);
            (r.id, uri, None)
        }));
    }
    let Ok(Some(found)) = state.resolver.by_handle(user, domain).await else {
        return Ok(None);
    };
    // Fresh: the alias was probably added a moment ago.
    let doc = match state.resolver.fetch(&found.uri).await {
        Ok((_, doc)) => Some(doc),
        Err(_) => return Ok(None),
    };
    Ok(Some((found.id, found.uri, doc)))
}

async fn aliases_of(state: &AppState, account_id: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT also_known_as FROM accounts WHERE id = $1")
        .bind(account_id)
        .fetch_one(&state.ctx.db)
        .await
}

async fn aliases_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((account_id, username)) = session_account(&state, &headers).await else {
        return sign_in_first("/settings/aliases");
    };
    match aliases_of(&state, account_id).await {
        Ok(aliases) => page(
            &state,
            &headers,
            StatusCode::OK,
            "aliases.html",
            &username,
            json!({ "aliases": aliases }),
            &[],
        ),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

async fn add_alias(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(form): Params<AccountForm>,
) -> Response {
    let token = form.authenticity_token.as_deref();
    let (account_id, username) =
        match form_account(&state, &headers, token, "/settings/aliases").await {
            Ok(account) => account,
            Err(answer) => return answer,
        };
    let added = async {
        let Some((old, uri, _)) = find_account(&state, &form.acct).await? else {
            return Ok(Some("No account with this handle was found."));
        };
        if old == account_id {
            return Ok(Some("An account cannot be its own alias."));
        }
        let mut conn = state.ctx.db.acquire().await?;
        if !stampede_social::moves::add_alias(&mut conn, account_id, &uri).await? {
            return Ok(Some(
                "This account is an alias already, or there are too many.",
            ));
        }
        Ok::<_, crate::error::ApiError>(None)
    };
    let problem = match added.await {
        Ok(problem) => problem,
        Err(e) => return e.into_response(),
    };
    let aliases = match aliases_of(&state, account_id).await {
        Ok(aliases) => aliases,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(
        &state,
        &headers,
        status,
        "aliases.html",
        &username,
        json!({ "aliases": aliases }),
        &problem.into_iter().collect::<Vec<_>>(),
    )
}

async fn migration_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_account(&state, &headers).await {
        Some((_, username)) => page(
            &state,
            &headers,
            StatusCode::OK,
            "migration.html",
            &username,
            json!({}),
            &[],
        ),
        None => sign_in_first("/settings/migration"),
    }
}

async fn migrate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(form): Params<AccountForm>,
) -> Response {
    let token = form.authenticity_token.as_deref();
    let (account_id, username) =
        match form_account(&state, &headers, token, "/settings/migration").await {
            Ok(account) => account,
            Err(answer) => return answer,
        };
    let refuse = |problem: &str| {
        page(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "migration.html",
            &username,
            json!({}),
            &[problem],
        )
    };
    match password_matches(&state, account_id, &form.password).await {
        Ok(true) => {}
        Ok(false) => return refuse("Invalid password."),
        Err(e) => return e.into_response(),
    }
    let target = match find_account(&state, &form.acct).await {
        Ok(Some(target)) => target,
        Ok(None) => return refuse("No account with this handle was found."),
        Err(e) => return e.into_response(),
    };
    let (target_id, _, doc) = target;
    if target_id == account_id {
        return refuse("An account cannot move to itself.");
    }
    let me = stampede_social::activitypub::actor_uri(&state.base_url(), &username);
    let named = match &doc {
        Some(doc) => stampede_social::remote::items(&doc["alsoKnownAs"])
            .iter()
            .any(|v| v.as_str() == Some(me.as_str())),
        None => match aliases_of(&state, target_id).await {
            Ok(aliases) => aliases.contains(&me),
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        },
    };
    if !named {
        return refuse("The new account must name this one as an alias first.");
    }
    let moved = async {
        let mut tx = state.ctx.db.begin().await?;
        let n = stampede_social::moves::move_account(
            &mut tx,
            &state.ids,
            &state.base_url(),
            account_id,
            target_id,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    };
    match moved.await {
        Ok(n) => {
            tracing::info!(account_id, target_id, local_followers = n, "account moved");
            state.notice(
                StatusCode::OK,
                "Your account has moved",
                &["Your followers are following the new account now."],
            )
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    authenticity_token: Option<String>,
}

async fn export_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((account_id, username)) = session_account(&state, &headers).await else {
        return sign_in_first("/settings/export");
    };
    export_view(&state, &headers, StatusCode::OK, account_id, &username, &[]).await
}

/// A backup's id, progress, storage key, size and creation time.
type BackupRow = (
    i64,
    i32,
    Option<String>,
    Option<i64>,
    chrono::DateTime<chrono::Utc>,
);

/// An import's id, kind, total, processed and imported counts, and whether it finished.
type ImportRow = (i64, String, i32, i32, i32, bool);

async fn export_view(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    account_id: i64,
    username: &str,
    errors: &[&str],
) -> Response {
    let backups: Result<Vec<BackupRow>, _> = sqlx::query_as(
        "SELECT id, progress, storage_key, size, created_at FROM backups \
             WHERE account_id = $1 ORDER BY id DESC LIMIT 10",
    )
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await;
    let backups = match backups {
        Ok(rows) => rows,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let backups: Vec<serde_json::Value> = backups
        .into_iter()
        .map(|(id, progress, key, size, created_at)| {
            json!({
                "id": id.to_string(),
                "progress": progress,
                "ready": key.is_some(),
                "size": size,
                "created_at": created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .collect();
    let csvs: Vec<&str> = stampede_social::export::List::ALL
        .iter()
        .map(|l| l.file_name())
        .collect();
    page(
        state,
        headers,
        status,
        "export.html",
        username,
        json!({ "backups": backups, "csvs": csvs }),
        errors,
    )
}

/// `POST /settings/export`: a new archive, one a week.
async fn request_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(form): Params<TokenForm>,
) -> Response {
    let token = form.authenticity_token.as_deref();
    let (account_id, username) =
        match form_account(&state, &headers, token, "/settings/export").await {
            Ok(account) => account,
            Err(answer) => return answer,
        };
    let requested = async {
        let mut tx = state.ctx.db.begin().await?;
        // One at a time: the row lock serializes two clicks.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        // One a week, as Mastodon allows (an archive is minutes of a media worker).
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM backups WHERE account_id = $1 \
                            AND created_at > now() - interval '7 days' AND error IS NULL)",
        )
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
        if busy {
            return Ok(false);
        }
        stampede_social::export::request(&mut tx, state.ids.next_id().as_i64(), account_id).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    };
    match requested.await {
        Ok(true) => export_view(&state, &headers, StatusCode::OK, account_id, &username, &[]).await,
        Ok(false) => {
            export_view(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                account_id,
                &username,
                &["You can request an archive once a week."],
            )
            .await
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// `GET /settings/exports/{list}.csv`: one of the lists, as a download.
async fn download_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let Some(list) = stampede_social::export::List::from_file_name(&file) else {
        return crate::error::ApiError::not_found().into_response();
    };
    let Some((account_id, _)) = session_account(&state, &headers).await else {
        return sign_in_first("/settings/export");
    };
    let text = async {
        let mut conn = state.ctx.db.acquire().await?;
        stampede_social::export::csv(
            &mut conn,
            account_id,
            &state.ctx.config.local_domain,
            &state.base_url(),
            list,
        )
        .await
    };
    match text.await {
        Ok(text) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}\""),
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// `GET /settings/exports/archive/:id`: the owner's finished archive.
async fn download_archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some((account_id, username)) = session_account(&state, &headers).await else {
        return sign_in_first("/settings/export");
    };
    let Ok(id) = id.parse::<i64>() else {
        return crate::error::ApiError::not_found().into_response();
    };
    let key: Result<Option<String>, _> = sqlx::query_scalar(
        "SELECT storage_key FROM backups WHERE id = $1 AND account_id = $2 AND storage_key IS NOT NULL",
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&state.ctx.db)
    .await;
    let key = match key {
        Ok(Some(key)) => key,
        Ok(None) => return crate::error::ApiError::not_found().into_response(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    match state.ctx.storage.get(&key).await {
        Ok(Some(bytes)) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "application/zip".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{username}-archive-{id}.zip\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => crate::error::ApiError::not_found().into_response(),
        Err(e) => crate::error::ApiError::internal(e).into_response(),
    }
}

async fn import_view(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    account_id: i64,
    username: &str,
    errors: &[&str],
) -> Response {
    let imports: Result<Vec<ImportRow>, _> = sqlx::query_as(
        "SELECT id, kind, total_items, processed_items, imported_items, finished_at IS NOT NULL \
         FROM bulk_imports WHERE account_id = $1 ORDER BY id DESC LIMIT 10",
    )
    .bind(account_id)
    .fetch_all(&state.ctx.db)
    .await;
    let imports: Vec<serde_json::Value> = match imports {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, kind, total, processed, imported, finished)| {
                json!({ "id": id.to_string(), "kind": kind, "total": total,
                        "processed": processed, "imported": imported, "finished": finished })
            })
            .collect(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    page(
        state,
        headers,
        status,
        "import.html",
        username,
        json!({ "imports": imports }),
        errors,
    )
}

async fn import_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((account_id, username)) = session_account(&state, &headers).await else {
        return sign_in_first("/settings/import");
    };
    import_view(&state, &headers, StatusCode::OK, account_id, &username, &[]).await
}

#[derive(Debug, Deserialize)]
struct ImportForm {
    authenticity_token: Option<String>,
    #[serde(default, rename = "type")]
    kind: String,
    /// The CSV pasted as text (the file field is the usual way).
    #[serde(default)]
    data: Option<String>,
}

/// `POST /settings/import`: `type` (Mastodon's names: following, blocking, muting,
/// domain_blocking, lists, bookmarks) and the CSV as the `data` file.
async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: crate::payload::WithFiles<ImportForm>,
) -> Response {
    let token = form.params.authenticity_token.as_deref();
    let (account_id, username) =
        match form_account(&state, &headers, token, "/settings/import").await {
            Ok(account) => account,
            Err(answer) => return answer,
        };
    let text = match form.take("data") {
        Some(file) => String::from_utf8_lossy(&file.bytes).into_owned(),
        None => form.params.data.clone().unwrap_or_default(),
    };
    let refuse = |problem: String| {
        let state = state.clone();
        let headers = headers.clone();
        let username = username.clone();
        async move {
            import_view(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                account_id,
                &username,
                &[&problem],
            )
            .await
        }
    };
    let Some(list) = stampede_social::export::List::from_kind(&form.params.kind) else {
        return refuse("Choose what the file holds.".to_string()).await;
    };
    let rows = match stampede_social::import::parse(list, &text) {
        Ok(rows) if !rows.is_empty() => rows,
        Ok(_) => return refuse("The file is empty.".to_string()).await,
        Err(problem) => return refuse(format!("The file cannot be imported: {problem}.")).await,
    };
    let stored = async {
        let mut tx = state.ctx.db.begin().await?;
        stampede_social::import::request(
            &mut tx,
            state.ids.next_id().as_i64(),
            account_id,
            list,
            &rows,
        )
        .await?;
        tx.commit().await
    };
    if let Err(e) = stored.await {
        return crate::error::ApiError::from(e).into_response();
    }
    import_view(&state, &headers, StatusCode::OK, account_id, &username, &[]).await
}
