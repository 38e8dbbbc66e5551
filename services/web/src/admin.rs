//! Moderation of accounts, shared by the admin API and `stampede admin accounts`.

use serde_json::{Value, json};
use sqlx::Row;
use stampede_db::Db;

use stampede_mastodon::time::iso;

use crate::accounts;
use crate::error::ApiError;
use crate::{AppState, mail};

/// Which accounts to list, by moderation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Any,
    Active,
    Pending,
    Disabled,
    Silenced,
    Suspended,
    Sensitized,
}

impl Status {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "active" => Status::Active,
            "pending" => Status::Pending,
            "disabled" => Status::Disabled,
            "silenced" => Status::Silenced,
            "suspended" => Status::Suspended,
            "sensitized" => Status::Sensitized,
            _ => return None,
        })
    }
}

/// Where the accounts come from (Mastodon's `origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    #[default]
    Any,
    Local,
    Remote,
}

/// Mastodon's account filters (`/api/v2/admin/accounts`): every one given must hold. Text
/// filters match prefixes, case-insensitively, as Mastodon's do.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub origin: Origin,
    pub status: Option<Status>,
    /// Only staff (admins and moderators).
    pub staff: bool,
    /// Roles by the ids the API shows (`3` admin, `2` moderator, `-99` everyone else).
    pub role_ids: Vec<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub by_domain: Option<String>,
    pub email: Option<String>,
    /// An address or a CIDR range the sign-up came from.
    pub ip: Option<String>,
}

/// One listed account: the account, its user (local accounts), and the sign-up address.
pub type Listed = (
    accounts::AccountRow,
    Option<accounts::UserRow>,
    Option<String>,
);

/// Accounts matching `filter`, newest first, below `max_id`.
pub async fn list(
    db: &Db,
    filter: &Filter,
    max_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    let status = match filter.status.unwrap_or(Status::Any) {
        Status::Any => "true",
        Status::Active => "a.suspended_at IS NULL",
        Status::Pending => "u.id IS NOT NULL AND NOT u.approved",
        Status::Disabled => "u.disabled",
        Status::Silenced => "a.silenced_at IS NOT NULL",
        Status::Suspended => "a.suspended_at IS NOT NULL",
        Status::Sensitized => "a.sensitized_at IS NOT NULL",
    };
    let origin = match filter.origin {
        Origin::Any => "true",
        Origin::Local => "a.domain IS NULL",
        Origin::Remote => "a.domain IS NOT NULL",
    };
    let roles: Vec<&str> = filter
        .role_ids
        .iter()
        .filter_map(|id| match id.as_str() {
            "3" => Some("admin"),
            "2" => Some("moderator"),
            "-99" => Some("user"),
            _ => None,
        })
        .collect();
    // Role ids none of which names a role match nobody, as Mastodon answers them.
    if !filter.role_ids.is_empty() && roles.is_empty() {
        return Ok(Vec::new());
    }
    // An address or range that does not parse matches nothing, as Mastodon answers it.
    let ip = filter.ip.as_deref().map(|ip| {
        let ip = ip.trim();
        let (addr, prefix) = ip.split_once('/').unwrap_or((ip, ""));
        let valid = match addr.parse::<std::net::IpAddr>() {
            Ok(addr) => {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                prefix.is_empty() || prefix.parse::<u8>().is_ok_and(|p| p <= max)
            }
            Err(_) => false,
        };
        if valid {
            ip.to_string()
        } else {
            "0.0.0.0/32".to_string()
        }
    });
    let ids: Vec<(i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT a.id, host(u.sign_up_ip) FROM accounts a LEFT JOIN users u ON u.account_id = a.id \
         WHERE {status} AND {origin} AND a.deleted_at IS NULL \
           AND ($1::text IS NULL OR lower(a.username) LIKE lower($1) || '%') \
           AND ($2::text IS NULL OR lower(u.email) LIKE lower($2) || '%') \
           AND ($3::bigint IS NULL OR a.id < $3) \
           AND ($5::text IS NULL OR a.display_name ILIKE $5 || '%') \
           AND ($6::text IS NULL OR lower(a.domain) = lower($6)) \
           AND ($7::inet IS NULL OR u.sign_up_ip <<= $7::inet) \
           AND (NOT $8 OR u.role IN ('admin', 'moderator')) \
           AND (cardinality($9::text[]) = 0 OR u.role = ANY($9)) \
         ORDER BY a.id DESC LIMIT $4"
    ))
    .bind(filter.username.as_deref().map(str::trim))
    .bind(filter.email.as_deref().map(str::trim))
    .bind(max_id)
    .bind(limit)
    .bind(filter.display_name.as_deref().map(str::trim))
    .bind(filter.by_domain.as_deref().map(str::trim))
    .bind(ip)
    .bind(filter.staff)
    .bind(&roles)
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, ip) in ids {
        if let Some(account) = accounts::find(db, id).await? {
            let user = accounts::user_of(db, id).await?;
            out.push((account, user, ip));
        }
    }
    Ok(out)
}

impl AppState {
    /// Mastodon's Admin::Account entity of any account: with its login for a local one (`user`),
    /// with its domain and no login for a remote one.
    pub fn render_any_admin_account(
        &self,
        account: &accounts::AccountRow,
        user: Option<&accounts::UserRow>,
        ip: Option<String>,
    ) -> Value {
        if let Some(user) = user {
            return self.render_admin_account(account, user, ip);
        }
        json!({
            "id": account.id.to_string(),
            "username": account.username,
            "domain": account.domain,
            "created_at": iso(account.created_at),
            "email": "",
            "ip": null,
            "ips": [],
            "locale": "",
            "invite_request": null,
            "role": null,
            "confirmed": false,
            "approved": false,
            "disabled": false,
            "silenced": account.silenced_at.is_some(),
            "suspended": account.suspended_at.is_some(),
            "sensitized": account.sensitized_at.is_some(),
            "account": self.render_account(account),
        })
    }

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
        self.grants.forget_account(account_id);
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
        self.grants.forget_account(account_id);
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
