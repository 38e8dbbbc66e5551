//! Moderation of accounts, shared by the admin API and `stampede admin accounts`.

use serde_json::{Value, json};
use sqlx::Row;
use stampede_db::Db;

use stampede_mastodon::time::iso;

use crate::accounts;
use crate::error::ApiError;
use crate::{AppState, mail};

/// Which accounts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Any,
    Active,
    Pending,
    Disabled,
    Suspended,
}

impl Status {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "active" => Status::Active,
            "pending" => Status::Pending,
            "disabled" => Status::Disabled,
            "suspended" => Status::Suspended,
            _ => return None,
        })
    }
}

/// Local accounts with their users, newest first, below `max_id`.
pub async fn list(
    db: &Db,
    status: Status,
    username: Option<&str>,
    email: Option<&str>,
    max_id: Option<i64>,
    limit: i64,
) -> Result<Vec<(accounts::AccountRow, accounts::UserRow, Option<String>)>, sqlx::Error> {
    let filter = match status {
        Status::Any => "true",
        Status::Active => "u.approved AND NOT u.disabled AND a.suspended_at IS NULL",
        Status::Pending => "NOT u.approved",
        Status::Disabled => "u.disabled",
        Status::Suspended => "a.suspended_at IS NOT NULL",
    };
    let ids: Vec<(i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT a.id, host(u.sign_up_ip) FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE a.domain IS NULL AND {filter} \
           AND ($1::text IS NULL OR lower(a.username) LIKE '%' || lower($1) || '%') \
           AND ($2::text IS NULL OR lower(u.email) LIKE '%' || lower($2) || '%') \
           AND ($3::bigint IS NULL OR a.id < $3) \
         ORDER BY a.id DESC LIMIT $4"
    ))
    .bind(username)
    .bind(email)
    .bind(max_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, ip) in ids {
        if let (Some(account), Some(user)) = (
            accounts::find(db, id).await?,
            accounts::user_of(db, id).await?,
        ) {
            out.push((account, user, ip));
        }
    }
    Ok(out)
}

impl AppState {
    /// Mastodon's Admin::Account entity.
    pub fn render_admin_account(
        &self,
        account: &accounts::AccountRow,
        user: &accounts::UserRow,
        ip: Option<String>,
    ) -> Value {
        let credential = self.render_credential_account(account, user);
        json!({
            "id": account.id.to_string(),
            "username": account.username,
            "domain": account.domain,
            "created_at": iso(account.created_at),
            "email": user.email,
            "ip": ip,
            "ips": [],
            "locale": user.locale.clone().unwrap_or_default(),
            "invite_request": user.reason,
            "role": credential.role,
            "confirmed": user.confirmed_at.is_some(),
            "approved": user.approved,
            "disabled": user.disabled,
            "silenced": account.silenced_at.is_some(),
            "suspended": account.suspended_at.is_some(),
            "sensitized": account.sensitized_at.is_some(),
            "account": credential.account,
            "created_by_application_id": null,
            "invited_by_account_id": null,
        })
    }

    /// Approves a pending account and tells its owner. 404 when there is no such local account,
    /// 403 when it is not pending.
    pub async fn approve(&self, account_id: i64) -> Result<(), ApiError> {
        let mut tx = self.ctx.db.begin().await?;
        let row = sqlx::query(
            "UPDATE users u SET approved = true FROM accounts a \
             WHERE u.account_id = $1 AND a.id = u.account_id AND NOT u.approved \
             RETURNING u.email, a.username, u.confirmed_at IS NOT NULL AS confirmed",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Give the connection back before asking why: it changed nothing.
            drop(tx);
            return Err(self.not_pending(account_id).await);
        };
        if row.try_get::<bool, _>("confirmed")? {
            let mail = self.templates.approved_mail(
                &row.try_get::<String, _>("email")?,
                &row.try_get::<String, _>("username")?,
                &format!("{}/auth/sign_in", self.base_url()),
                &self.ctx.config.web.site_title,
            )?;
            mail::enqueue(&mut tx, &mail).await?;
        }
        tx.commit().await?;
        tracing::info!(account_id, "account approved");
        Ok(())
    }

    /// Rejects a pending account: it is deleted, freeing its username and address.
    pub async fn reject(&self, account_id: i64) -> Result<(), ApiError> {
        let deleted = sqlx::query(
            "DELETE FROM accounts a USING users u \
             WHERE a.id = $1 AND u.account_id = a.id AND NOT u.approved",
        )
        .bind(account_id)
        .execute(&self.ctx.db)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(self.not_pending(account_id).await);
        }
        tracing::info!(account_id, "account rejected");
        Ok(())
    }

    async fn not_pending(&self, account_id: i64) -> ApiError {
        match accounts::user_of(&self.ctx.db, account_id).await {
            Ok(Some(_)) => ApiError::forbidden("This action is not allowed"),
            Ok(None) => ApiError::not_found(),
            Err(e) => e.into(),
        }
    }
}
