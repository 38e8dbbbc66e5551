//! Accounts featured on a profile (endorsements): `POST /api/v1/accounts/:id/endorse` (and its
//! older name `pin`), `unendorse` (`unpin`), `GET /api/v1/endorsements` and
//! `GET /api/v1/accounts/:id/endorsements`; and private notes, `POST /api/v1/accounts/:id/note`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use stampede_mastodon::{Account, Relationship};

use super::accounts::{own_list, relationship_on};
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::paging::{Page, PageQuery};
use crate::payload::Params;
use crate::scopes;

/// Mastodon's longest note.
const MAX_NOTE: usize = 2000;

/// `POST /api/v1/accounts/:id/endorse`: features an account the viewer follows.
pub async fn endorse(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let target = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO account_pins (id, account_id, target_account_id) \
         SELECT $1, $2, $3 WHERE EXISTS \
           (SELECT 1 FROM follows WHERE account_id = $2 AND target_account_id = $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(state.ids.next_id().as_i64())
    .bind(account_id)
    .bind(target.id)
    .execute(&mut *tx)
    .await?;
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    if inserted.rows_affected() == 0 && !relationship.endorsed {
        return Err(ApiError::unprocessable(
            "You must be already following the person you want to endorse",
        ));
    }
    tx.commit().await?;
    Ok(relationship)
}

/// `POST /api/v1/accounts/:id/unendorse`.
pub async fn unendorse(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let target = state.target_account(&id).await?;
    let mut tx = state.ctx.db.begin().await?;
    sqlx::query("DELETE FROM account_pins WHERE account_id = $1 AND target_account_id = $2")
        .bind(account_id)
        .bind(target.id)
        .execute(&mut *tx)
        .await?;
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    tx.commit().await?;
    Ok(relationship)
}

/// `GET /api/v1/endorsements`: the viewer's, paged by when they were featured.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(query): Params<PageQuery>,
) -> Result<Page<Account>, ApiError> {
    own_list(
        &state,
        &auth,
        scopes::ACCOUNTS_READ,
        &uri,
        &query,
        "SELECT id, target_account_id FROM account_pins WHERE account_id = $1",
    )
    .await
}

/// `GET /api/v1/accounts/:id/endorsements`: the accounts an account features, for anyone.
pub async fn of_account(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Account>>, ApiError> {
    let account = state.target_account(&id).await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT p.target_account_id FROM account_pins p JOIN accounts a ON a.id = p.target_account_id \
         WHERE p.account_id = $1 AND a.suspended_at IS NULL ORDER BY p.id DESC LIMIT 40",
    )
    .bind(account.id)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(state.accounts_in_order(&ids).await?))
}

#[derive(Debug, Deserialize)]
pub struct NoteParams {
    #[serde(default)]
    comment: String,
}

/// `POST /api/v1/accounts/:id/note`: the viewer's private note on an account (empty removes it).
pub async fn note(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Params(p): Params<NoteParams>,
) -> Result<Json<Relationship>, ApiError> {
    let account_id = auth.account(scopes::ACCOUNTS_WRITE)?;
    let target = state.target_account(&id).await?;
    if p.comment.chars().count() > MAX_NOTE {
        return Err(ApiError::unprocessable(format!(
            "Validation failed: Comment is too long (maximum is {MAX_NOTE} characters)"
        )));
    }
    let mut tx = state.ctx.db.begin().await?;
    if p.comment.trim().is_empty() {
        sqlx::query("DELETE FROM account_notes WHERE account_id = $1 AND target_account_id = $2")
            .bind(account_id)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO account_notes (account_id, target_account_id, comment) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, target_account_id) \
             DO UPDATE SET comment = EXCLUDED.comment, updated_at = now()",
        )
        .bind(account_id)
        .bind(target.id)
        .bind(&p.comment)
        .execute(&mut *tx)
        .await?;
    }
    let relationship = relationship_on(&mut *tx, account_id, target.id).await?;
    tx.commit().await?;
    Ok(relationship)
}
