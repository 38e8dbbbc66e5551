//! `/api/v1/domain_blocks`: the domains a person hides (see
//! `stampede_social::account_domain_blocks`).

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Deserialize;
use stampede_social::account_domain_blocks as blocks;
use stampede_social::feeds::keyset;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Validation};
use crate::paging::{Page, PageQuery};
use crate::payload::Params;
use crate::scopes;

/// `GET /api/v1/domain_blocks`: the domains, newest block first, paged by block.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Page<String>, ApiError> {
    let account_id = auth.account(scopes::BLOCKS_READ)?;
    let bounds = q.bounds(100, 200);
    let mut rows: Vec<(i64, String)> = sqlx::query_as(&format!(
        "SELECT id, domain FROM account_domain_blocks WHERE account_id = $1 AND {keyset} \
         ORDER BY id {} LIMIT $4",
        bounds.order(),
        keyset = keyset("id", 2, 3),
    ))
    .bind(account_id)
    .bind(bounds.max)
    .bind(bounds.min)
    .bind(bounds.limit as i64)
    .fetch_all(&state.ctx.db)
    .await?;
    if bounds.ascending {
        rows.reverse();
    }
    let newest = rows.first().map(|r| r.0);
    let oldest = rows.last().map(|r| r.0);
    let domains = rows.into_iter().map(|r| r.1).collect();
    Ok(Page::new(domains, &state.base_url(), &uri, newest, oldest))
}

#[derive(Debug, Deserialize)]
pub struct DomainParam {
    domain: Option<String>,
}

fn domain_of(state: &AppState, p: &DomainParam) -> Result<String, ApiError> {
    let mut v = Validation::default();
    let domain = p.domain.as_deref().and_then(blocks::normalize);
    match &domain {
        None if p.domain.as_deref().is_none_or(|d| d.trim().is_empty()) => {
            v.add("domain", "ERR_BLANK", "can't be blank");
        }
        None => v.add("domain", "ERR_INVALID", "is not a valid domain"),
        Some(d) if d.eq_ignore_ascii_case(&state.ctx.config.local_domain) => {
            v.add("domain", "ERR_INVALID", "is this server's own domain");
        }
        Some(_) => {}
    }
    v.finish()?;
    domain.ok_or_else(|| ApiError::unprocessable("Validation failed: Domain can't be blank"))
}

/// `POST /api/v1/domain_blocks` with `domain`: `{}`; follows both ways with the domain's
/// accounts end.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<DomainParam>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::BLOCKS_WRITE)?;
    let domain = domain_of(&state, &p)?;
    let mut tx = state.ctx.db.begin().await?;
    blocks::block(&mut tx, &state.ids, &state.base_url(), account_id, &domain).await?;
    tx.commit().await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id]).await;
    Ok(Json(serde_json::json!({})))
}

/// `DELETE /api/v1/domain_blocks` with `domain`: `{}`, whether it was blocked or not.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Params(p): Params<DomainParam>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let account_id = auth.account(scopes::BLOCKS_WRITE)?;
    let domain = domain_of(&state, &p)?;
    let mut tx = state.ctx.db.begin().await?;
    blocks::unblock(&mut tx, account_id, &domain).await?;
    tx.commit().await?;
    stampede_social::stream::relations_changed(&state.ctx.cache, &[account_id]).await;
    Ok(Json(serde_json::json!({})))
}
