//! Signing up: the one path shared by `POST /api/v1/accounts` and the sign-up page.
//!
//! Order matters under a surge: every cheap check (field rules, taken names, blocked domains,
//! closed registrations) runs before the expensive password hash, so bad requests never occupy
//! the hashing pool; the hash runs under admission control (429 when the queue is too long); and
//! the account, its user, the confirmation mail and (for the API) the access token are written in
//! one transaction, so a failure leaves nothing half-created. Two sign-ups racing for one
//! username are settled by the unique index: the loser gets the same 422 as a late one.

use std::net::IpAddr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::{Connection, Row};
use stampede_core::Scopes;
use stampede_core::username::validate_username;
use stampede_runtime::config::RegistrationsMode;
use stampede_social::domain_policy::IpSeverity;

use crate::error::{ApiError, Validation};
use crate::mail;
use crate::passwords::Busy;
use crate::{AppState, tokens};

/// What a person fills in.
#[derive(Debug, Default, Clone)]
pub struct SignUp {
    pub username: String,
    pub email: String,
    pub password: String,
    pub agreement: bool,
    pub locale: Option<String>,
    pub reason: Option<String>,
    pub date_of_birth: Option<String>,
    pub invite_code: Option<String>,
}

/// A created account.
#[derive(Debug, Clone)]
pub struct Registered {
    pub account_id: i64,
    pub approved: bool,
    /// The access token issued with it (API sign-ups only).
    pub access_token: Option<stampede_mastodon::Token>,
}

/// Why a sign-up failed.
#[derive(Debug)]
pub enum RegisterError {
    /// Field problems, answered 422 with details.
    Invalid(Validation),
    /// Registrations are closed and no valid invite was given.
    Closed,
    /// Sign-ups from the client's address are blocked (an IP block).
    Refused,
    /// The hashing pool is saturated: 429, come back later.
    Busy(Busy),
    Internal(anyhow::Error),
}

impl From<sqlx::Error> for RegisterError {
    fn from(error: sqlx::Error) -> Self {
        RegisterError::Internal(error.into())
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::Invalid(v) => v.into_error(),
            RegisterError::Closed | RegisterError::Refused => {
                ApiError::forbidden("This action is not allowed")
            }
            RegisterError::Busy(busy) => ApiError::too_many_requests(busy.retry_after),
            RegisterError::Internal(e) => ApiError::internal(e),
        }
    }
}

/// Password length limits in characters (Mastodon's).
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 72;

/// Records a password that is too short or too long (in characters).
pub fn check_password_length(password: &str, v: &mut Validation) {
    let length = password.chars().count();
    if length < PASSWORD_MIN {
        v.add(
            "password",
            "ERR_TOO_SHORT",
            "is too short (minimum is 8 characters)",
        );
    } else if length > PASSWORD_MAX {
        v.add(
            "password",
            "ERR_TOO_LONG",
            "is too long (maximum is 72 characters)",
        );
    }
}

fn valid_locale(locale: &str) -> bool {
    let mut parts = locale.split(['-', '_']);
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Whole years between `born` and `today`.
pub fn age_on(born: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    age
}

pub struct Invite {
    id: i64,
}

/// What stands in a sign-up's way in the database ([`AppState::conflicts`]).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Conflicts {
    pub username_taken: bool,
    pub email_taken: bool,
    /// The e-mail domain block that refuses the address.
    pub domain_block: Option<i64>,
    /// An e-mail domain block lets it sign up for a moderator's approval.
    pub domain_needs_approval: bool,
    pub canonical_blocked: bool,
}

/// The outcome of [`AppState::validate_sign_up`].
pub struct Checked {
    pub validation: Validation,
    /// Whether the account will be approved at once (open mode, or a valid invite).
    pub approved: bool,
    invite: Option<Invite>,
    username: String,
    email: String,
}

impl AppState {
    /// Every check of a sign-up that needs no password hash: field rules, the registration mode
    /// and invite, taken names and addresses, blocked domains. The sign-up page also uses it to
    /// show all problems at once.
    pub async fn validate_sign_up(
        &self,
        input: &SignUp,
        ip: IpAddr,
    ) -> Result<Checked, RegisterError> {
        let config = &self.ctx.config.registrations;
        let mut v = Validation::default();
        let username = input.username.trim().to_string();
        let email = input.email.trim().to_string();

        let invite = match input.invite_code.as_deref().filter(|c| !c.is_empty()) {
            Some(code) => match self.find_invite(code).await? {
                Some(invite) => Some(invite),
                None => {
                    v.add("invite_code", "ERR_INVALID", "is invalid or expired");
                    None
                }
            },
            None => None,
        };
        if config.mode == RegistrationsMode::None && invite.is_none() && !v.has("invite_code") {
            return Err(RegisterError::Closed);
        }
        let by_mode = config.mode == RegistrationsMode::Open || invite.is_some();
        // An IP block may refuse the sign-up, or hold it for a moderator.
        let ip_rule = self.resolver.policy().get().await?.ip_block(ip);
        if ip_rule == Some(IpSeverity::SignUpBlock) || ip_rule == Some(IpSeverity::NoAccess) {
            return Err(RegisterError::Refused);
        }
        let mut approved = by_mode && ip_rule != Some(IpSeverity::SignUpRequiresApproval);

        if let Err(e) = validate_username(&username) {
            v.add("username", e.code(), e.description());
        }
        if email.is_empty() {
            v.add("email", "ERR_BLANK", "can't be blank");
        } else if !crate::accounts::valid_email(&email) {
            v.add("email", "ERR_INVALID", "is invalid");
        }
        let length = input.password.chars().count();
        if length == 0 {
            v.add("password", "ERR_BLANK", "can't be blank");
        } else {
            check_password_length(&input.password, &mut v);
        }
        if !input.agreement {
            v.add("agreement", "ERR_ACCEPTED", "must be accepted");
        }
        if let Some(locale) = input.locale.as_deref().filter(|l| !l.is_empty())
            && !valid_locale(locale)
        {
            v.add("locale", "ERR_INCLUSION", "is not included in the list");
        }
        let reason = input
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if !by_mode && reason.is_none() {
            v.add("reason", "ERR_BLANK", "can't be blank");
        }
        if reason.is_some_and(|r| r.chars().count() > 500) {
            v.add(
                "reason",
                "ERR_TOO_LONG",
                "is too long (maximum is 500 characters)",
            );
        }
        if config.min_age > 0 {
            match input.date_of_birth.as_deref().filter(|d| !d.is_empty()) {
                None => v.add("date_of_birth", "ERR_BLANK", "can't be blank"),
                Some(raw) => match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
                    Err(_) => v.add("date_of_birth", "ERR_INVALID", "is invalid"),
                    Ok(born)
                        if age_on(born, Utc::now().date_naive()) < i32::from(config.min_age) =>
                    {
                        v.add(
                            "date_of_birth",
                            "ERR_BELOW_LIMIT",
                            &format!("is below the age limit of {}", config.min_age),
                        )
                    }
                    Ok(_) => {}
                },
            }
        }
        // Taken names and addresses, blocked domains: one round trip, so a duplicate never costs
        // a hash; the unique indexes below settle races.
        if !v.has("username") || !v.has("email") {
            let found = self.conflicts(&username, &email).await?;
            let email_taken = found.email_taken;
            if !v.has("username") && found.username_taken {
                v.add("username", "ERR_TAKEN", "has already been taken");
            }
            if !v.has("email") && found.domain_needs_approval {
                approved = false;
            }
            if !v.has("email") && (found.domain_block.is_some() || found.canonical_blocked) {
                v.add("email", "ERR_BLOCKED", "uses a disallowed e-mail provider");
                if let Some(block) = found.domain_block {
                    self.record_blocked_attempt(block, ip).await?;
                }
            } else if !v.has("email") && email_taken {
                v.add("email", "ERR_TAKEN", "has already been taken");
            }
        }
        Ok(Checked {
            validation: v,
            approved,
            invite,
            username,
            email,
        })
    }

    /// Creates an account. `app` is the application whose token made the API call, and with
    /// whose scopes the new user's token is issued; `None` for the sign-up page.
    pub async fn register(
        &self,
        input: SignUp,
        ip: IpAddr,
        app: Option<(i64, Scopes)>,
    ) -> Result<Registered, RegisterError> {
        // Under a surge most requests are turned away here, before touching the database.
        self.passwords.precheck().map_err(RegisterError::Busy)?;
        let Checked {
            validation,
            approved,
            invite,
            username,
            email,
        } = self.validate_sign_up(&input, ip).await?;
        if !validation.is_empty() {
            return Err(RegisterError::Invalid(validation));
        }
        let reason = input
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());

        let password_hash = match self.passwords.hash(input.password).await {
            Err(busy) => return Err(RegisterError::Busy(busy)),
            Ok(hash) => hash.map_err(RegisterError::Internal)?,
        };

        let account_id = self.ids.next_id().as_i64();
        let confirmation = tokens::generate();
        let link = format!(
            "{}/auth/confirmation?confirmation_token={confirmation}",
            self.base_url()
        );
        let mail = self
            .templates
            .confirmation_mail(
                &email,
                &username,
                &link,
                &self.ctx.config.web.site_title,
                approved,
            )
            .map_err(RegisterError::Internal)?;
        let access_token = app.as_ref().map(|_| tokens::generate());
        let (queue, envelope) = mail::envelope(&mail);
        // The account, its user, the confirmation mail's outbox row and (for the API) the token,
        // in one statement: one round trip and one commit, where four INSERTs in a transaction
        // took six — under a surge every round trip costs CPU the password hashes need. The
        // foreign keys between the rows are checked at the statement's end.
        let insert = sqlx::query_scalar::<_, DateTime<Utc>>(
            "WITH account AS (INSERT INTO accounts (id, username) VALUES ($1, $2)), \
             sign_up AS (INSERT INTO users (id, account_id, email, password_hash, approved, \
               confirmation_token_hash, confirmation_sent_at, locale, reason, invite_id, \
               sign_up_ip, created_by_application_id) \
               VALUES ($3, $1, $4, $5, $6, $7, now(), $8, $9, $10, $11::inet, $12)), \
             mail AS (INSERT INTO outbox (queue, envelope) VALUES ($13, $14)) \
             INSERT INTO oauth_access_tokens (id, token_hash, application_id, account_id, scopes) \
             SELECT $15, $16, $12, $1, $17 WHERE $12::bigint IS NOT NULL \
             RETURNING created_at",
        )
        .bind(account_id)
        .bind(&username)
        .bind(self.ids.next_id().as_i64())
        .bind(&email)
        .bind(&password_hash)
        .bind(approved)
        .bind(tokens::digest(&confirmation))
        .bind(input.locale.as_deref().filter(|l| !l.is_empty()))
        .bind(reason)
        .bind(invite.as_ref().map(|i| i.id))
        .bind(ip.to_string())
        .bind(app.as_ref().map(|(id, _)| *id))
        .bind(queue.name())
        .bind(sqlx::types::Json(&envelope))
        .bind(self.ids.next_id().as_i64())
        .bind(access_token.as_deref().map(tokens::digest))
        .bind(app.as_ref().map(|(_, scopes)| scopes.to_string()));
        let mut conn = self.ctx.leases.take().await?;
        let inserted = match &invite {
            // Without an invite the statement is its own transaction.
            None => insert.fetch_optional(&mut *conn).await,
            // With one, the invite's use is claimed in the same transaction.
            Some(invite) => {
                let mut tx = conn.begin().await?;
                let claimed = sqlx::query(
                    "UPDATE invites SET uses = uses + 1 WHERE id = $1 \
                     AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > now())",
                )
                .bind(invite.id)
                .execute(&mut *tx)
                .await?;
                if claimed.rows_affected() == 0 {
                    let mut v = Validation::default();
                    v.add("invite_code", "ERR_INVALID", "is invalid or expired");
                    return Err(RegisterError::Invalid(v));
                }
                let inserted = insert.fetch_optional(&mut *tx).await;
                if inserted.is_ok() {
                    tx.commit().await?;
                }
                inserted
            }
        };
        // Also after a taken name or address: the failed statement left no transaction open
        // (with an invite, the dropped transaction's ROLLBACK makes `finish` close it instead).
        conn.finish();
        let created_at = match inserted {
            Ok(created_at) => created_at,
            Err(error) => {
                let mut v = Validation::default();
                match error.as_database_error().and_then(|e| e.constraint()) {
                    Some("accounts_username_domain") => {
                        v.add("username", "ERR_TAKEN", "has already been taken")
                    }
                    Some("users_email") => v.add("email", "ERR_TAKEN", "has already been taken"),
                    _ => return Err(error.into()),
                }
                return Err(RegisterError::Invalid(v));
            }
        };
        let access_token = match (access_token, app, created_at) {
            (Some(token), Some((_, scopes)), Some(created_at)) => Some(
                stampede_mastodon::Token::bearer(token, scopes.to_string(), created_at),
            ),
            _ => None,
        };
        tracing::info!(account_id, approved, "account registered");
        Ok(Registered {
            account_id,
            approved,
            access_token,
        })
    }

    async fn find_invite(&self, code: &str) -> Result<Option<Invite>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id FROM invites WHERE code = $1 \
             AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(code)
        .fetch_optional(&self.ctx.db)
        .await?;
        row.map(|r| r.try_get("id").map(|id| Invite { id }))
            .transpose()
    }

    /// A sign-up attempt an e-mail domain block stopped, for the block's `history`.
    async fn record_blocked_attempt(&self, block: i64, ip: IpAddr) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO email_domain_block_attempts (block_id, ip) VALUES ($1, $2::inet)")
            .bind(block)
            .bind(ip.to_string())
            .execute(&self.ctx.db)
            .await?;
        Ok(())
    }

    /// Whether the username and the address are taken, and how the instance's blocks treat the
    /// address: its domain (or a domain above it) blocked or held for approval, its canonical
    /// form blocked.
    pub(crate) async fn conflicts(
        &self,
        username: &str,
        email: &str,
    ) -> Result<Conflicts, sqlx::Error> {
        let domain = email
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let mut candidates = Vec::new();
        let mut rest = domain.as_str();
        loop {
            candidates.push(rest.to_string());
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') => rest = parent,
                _ => break,
            }
        }
        let mut conn = self.ctx.leases.take().await?;
        let found: Conflicts = sqlx::query_as(
            "SELECT \
               EXISTS (SELECT 1 FROM accounts WHERE lower(username) = lower($1) AND domain IS NULL) \
                 AS username_taken, \
               EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2)) AS email_taken, \
               (SELECT id FROM email_domain_blocks WHERE domain = ANY($3) \
                  AND NOT allow_with_approval LIMIT 1) AS domain_block, \
               EXISTS (SELECT 1 FROM email_domain_blocks WHERE domain = ANY($3) \
                  AND allow_with_approval) AS domain_needs_approval, \
               EXISTS (SELECT 1 FROM canonical_email_blocks WHERE canonical_email_hash = $4) \
                 AS canonical_blocked",
        )
        .bind(username)
        .bind(email)
        .bind(&candidates)
        .bind(crate::api::v1::admin::blocks::sha256_hex(
            &crate::api::v1::admin::blocks::canonical_email(email),
        ))
        .fetch_one(&mut *conn)
        .await?;
        conn.finish();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_locales_and_ages() {
        use crate::accounts::valid_email;
        assert!(valid_email("a@example.com"));
        assert!(!valid_email("a@localhost"));
        assert!(!valid_email("@example.com"));
        assert!(!valid_email("a b@example.com"));
        assert!(!valid_email("a@.com"));
        assert!(valid_locale("en") && valid_locale("pt-BR") && valid_locale("zh_Hant"));
        assert!(!valid_locale("english!") && !valid_locale("e"));
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(age_on(d("2010-06-15"), d("2023-06-14")), 12);
        assert_eq!(age_on(d("2010-06-15"), d("2023-06-15")), 13);
    }
}
