//! Checking a user's e-mail and password, for the sign-in page and OAuth's password grant.

use sqlx::Row;

use crate::AppState;
use crate::error::ApiError;

/// Checks an e-mail and password (for the sign-in page and the password grant). `Ok(None)` when
/// they do not match; the lookup costs one hash either way. A database failure is an error, not
/// "wrong password": clients forget credentials they are told are wrong.
pub async fn check_password(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<Option<SignedIn>, ApiError> {
    let row = sqlx::query(
        "SELECT u.account_id, u.password_hash, u.confirmed_at IS NOT NULL AS confirmed, u.approved, \
                u.disabled OR a.suspended_at IS NOT NULL AS disabled \
         FROM users u JOIN accounts a ON a.id = u.account_id WHERE lower(u.email) = lower($1)",
    )
    .bind(email.trim())
    .fetch_optional(&state.ctx.db)
    .await?;
    let phc = match &row {
        Some(r) => Some(r.try_get::<String, _>("password_hash")?),
        None => None,
    };
    let ok = state
        .passwords
        .verify(password.to_string(), phc)
        .await
        .map_err(|busy| ApiError::too_many_requests(busy.retry_after))?;
    Ok(match (ok, row) {
        (true, Some(row)) => Some(SignedIn {
            account_id: row.try_get("account_id")?,
            confirmed: row.try_get("confirmed")?,
            approved: row.try_get("approved")?,
            disabled: row.try_get("disabled")?,
        }),
        _ => None,
    })
}

/// A matched e-mail and password.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    pub account_id: i64,
    pub confirmed: bool,
    pub approved: bool,
    pub disabled: bool,
}
