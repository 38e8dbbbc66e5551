//! `stampede admin accounts|rules|invites|email-domain-blocks`: moderation from the command line,
//! through the same code as the admin API.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use stampede_runtime::Context;
use stampede_web::AppState;
use stampede_web::admin::{self, Status};

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// List local accounts as JSON lines, newest first.
    List {
        /// active, pending, disabled or suspended.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Create a confirmed, approved account and print its generated password.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        /// user, moderator or admin.
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// Approve a pending sign-up.
    Approve { username: String },
    /// Reject (delete) a pending sign-up.
    Reject { username: String },
    /// Delete an account now: everything it posted, its media and its relations are purged,
    /// and the servers this one knows are sent a Delete (tootctl accounts delete).
    Delete { username: String },
    /// Change an account's role, or confirm its e-mail address by hand.
    Modify {
        username: String,
        /// user, moderator or admin.
        #[arg(long)]
        role: Option<String>,
        /// Mark the e-mail address as confirmed.
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Add a rule at the end.
    Add {
        text: String,
        #[arg(long, default_value = "")]
        hint: String,
    },
    /// List the rules as JSON lines.
    List,
    /// Remove a rule by id.
    Remove { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum InvitesCommand {
    /// Create an invite code and print it.
    Create {
        /// How many sign-ups it allows (unlimited when omitted).
        #[arg(long)]
        max_uses: Option<i32>,
        /// Hours until it expires (never when omitted).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=87_600))]
        expires_in_hours: Option<i32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EmailDomainBlocksCommand {
    /// Block a domain (and its subdomains).
    Add { domain: String },
    /// Unblock a domain.
    Remove { domain: String },
}

async fn account_id(state: &AppState, username: &str) -> anyhow::Result<i64> {
    stampede_social::accounts::find_local(&state.ctx.db, username)
        .await?
        .map(|a| a.id)
        .with_context(|| format!("no local account @{username}"))
}

fn check_role(role: &str) -> anyhow::Result<()> {
    if ["user", "moderator", "admin"].contains(&role) {
        Ok(())
    } else {
        bail!("role must be user, moderator or admin, not {role:?}")
    }
}

/// A unique violation said as `what`; any other error as itself.
fn taken(error: sqlx::Error, what: &str) -> anyhow::Error {
    let unique = error
        .as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation);
    if unique {
        anyhow::anyhow!("{what}")
    } else {
        anyhow::Error::from(error)
    }
}

fn api(result: Result<(), stampede_web::error::ApiError>) -> anyhow::Result<()> {
    result.map_err(|e| anyhow::anyhow!("{}", e.status().canonical_reason().unwrap_or("failed")))
}

pub async fn run(command: AccountsCommand, ctx: Context) -> anyhow::Result<ExitCode> {
    let state = AppState::new(ctx);
    match command {
        AccountsCommand::List { status, limit } => {
            let status = match status.as_deref() {
                None => Status::Any,
                Some(s) => Status::parse(s).with_context(|| {
                    format!("unknown status {s:?}; one of active, pending, disabled, suspended")
                })?,
            };
            let filter = admin::Filter {
                origin: admin::Origin::Local,
                status: Some(status),
                ..admin::Filter::default()
            };
            for (account, user, ip) in
                admin::list(&state.ctx.db, &filter, None, limit.clamp(1, 10_000)).await?
            {
                println!(
                    "{}",
                    state.render_any_admin_account(&account, user.as_ref(), ip)
                );
            }
        }
        AccountsCommand::Create {
            username,
            email,
            role,
        } => {
            check_role(&role)?;
            stampede_core::username::validate_username(&username)
                .map_err(|e| anyhow::anyhow!("username {}", e.description()))?;
            anyhow::ensure!(
                stampede_social::accounts::valid_email(&email),
                "{email:?} is not a valid e-mail address"
            );
            let password = stampede_social::tokens::generate();
            let hash = state
                .passwords
                .hash(password.clone())
                .await
                .map_err(|_| anyhow::anyhow!("password hashing is busy"))??;
            let account_id = state.ids.next_id().as_i64();
            let mut tx = state.ctx.db.begin().await?;
            sqlx::query("INSERT INTO accounts (id, username) VALUES ($1, $2)")
                .bind(account_id)
                .bind(&username)
                .execute(&mut *tx)
                .await
                .map_err(|e| taken(e, &format!("@{username} is taken")))?;
            sqlx::query(
                "INSERT INTO users (id, account_id, email, password_hash, role, approved, confirmed_at) \
                 VALUES ($1, $2, $3, $4, $5, true, now())",
            )
            .bind(state.ids.next_id().as_i64())
            .bind(account_id)
            .bind(&email)
            .bind(&hash)
            .bind(&role)
            .execute(&mut *tx)
            .await
            .map_err(|e| taken(e, &format!("{email} is taken")))?;
            tx.commit().await?;
            println!(
                "{}",
                serde_json::json!({ "id": account_id.to_string(), "username": username, "password": password })
            );
        }
        AccountsCommand::Approve { username } => {
            let id = account_id(&state, &username).await?;
            api(state.approve(id).await).with_context(|| format!("@{username} is not pending"))?;
            println!("{}", serde_json::json!({ "approved": username }));
        }
        AccountsCommand::Reject { username } => {
            let id = account_id(&state, &username).await?;
            api(state.reject(id).await).with_context(|| format!("@{username} is not pending"))?;
            println!("{}", serde_json::json!({ "rejected": username }));
        }
        AccountsCommand::Delete { username } => {
            let id = account_id(&state, &username).await?;
            let mut tx = state.ctx.db.begin().await?;
            stampede_social::deletion::purge(&mut tx, id, Some(&state.base_url())).await?;
            tx.commit().await?;
            println!("{}", serde_json::json!({ "deleted": username }));
        }
        AccountsCommand::Modify {
            username,
            role,
            confirm,
        } => {
            let id = account_id(&state, &username).await?;
            if let Some(role) = &role {
                check_role(role)?;
            }
            sqlx::query(
                "UPDATE users SET role = coalesce($2, role), \
                 confirmed_at = CASE WHEN $3 THEN coalesce(confirmed_at, now()) ELSE confirmed_at END, \
                 confirmation_token_hash = CASE WHEN $3 THEN NULL ELSE confirmation_token_hash END \
                 WHERE account_id = $1",
            )
            .bind(id)
            .bind(role)
            .bind(confirm)
            .execute(&state.ctx.db)
            .await?;
            println!("{}", serde_json::json!({ "modified": username }));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rules(command: RulesCommand, ctx: Context) -> anyhow::Result<ExitCode> {
    match command {
        RulesCommand::Add { text, hint } => {
            anyhow::ensure!(!text.trim().is_empty(), "a rule needs text");
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO server_rules (text, hint, position) \
                 VALUES ($1, $2, (SELECT coalesce(max(position), 0) + 1 FROM server_rules)) RETURNING id",
            )
            .bind(text.trim())
            .bind(hint.trim())
            .fetch_one(&ctx.db)
            .await?;
            println!(
                "{}",
                serde_json::json!({ "id": id.to_string(), "text": text })
            );
        }
        RulesCommand::List => {
            let rows: Vec<(i64, String, String)> =
                sqlx::query_as("SELECT id, text, hint FROM server_rules ORDER BY position, id")
                    .fetch_all(&ctx.db)
                    .await?;
            for (id, text, hint) in rows {
                println!(
                    "{}",
                    serde_json::json!({ "id": id.to_string(), "text": text, "hint": hint })
                );
            }
        }
        RulesCommand::Remove { id } => {
            let deleted = sqlx::query("DELETE FROM server_rules WHERE id = $1")
                .bind(id)
                .execute(&ctx.db)
                .await?;
            anyhow::ensure!(deleted.rows_affected() == 1, "no rule {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn invites(command: InvitesCommand, ctx: Context) -> anyhow::Result<ExitCode> {
    match command {
        InvitesCommand::Create {
            max_uses,
            expires_in_hours,
        } => {
            anyhow::ensure!(
                max_uses.is_none_or(|m| m > 0),
                "--max-uses must be at least 1"
            );
            anyhow::ensure!(
                expires_in_hours.is_none_or(|h| h > 0),
                "--expires-in-hours must be at least 1"
            );
            let code = stampede_social::tokens::generate()[..10].to_string();
            sqlx::query(
                "INSERT INTO invites (code, max_uses, expires_at) \
                 VALUES ($1, $2, now() + make_interval(hours => $3::int))",
            )
            .bind(&code)
            .bind(max_uses)
            .bind(expires_in_hours)
            .execute(&ctx.db)
            .await?;
            println!(
                "{}",
                serde_json::json!({ "code": code, "max_uses": max_uses })
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn email_domain_blocks(
    command: EmailDomainBlocksCommand,
    ctx: Context,
) -> anyhow::Result<ExitCode> {
    match command {
        EmailDomainBlocksCommand::Add { domain } => {
            let domain = domain.trim().to_ascii_lowercase();
            anyhow::ensure!(domain.contains('.'), "{domain:?} is not a domain");
            sqlx::query(
                "INSERT INTO email_domain_blocks (domain) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(&domain)
            .execute(&ctx.db)
            .await?;
            println!("{}", serde_json::json!({ "blocked": domain }));
        }
        EmailDomainBlocksCommand::Remove { domain } => {
            sqlx::query("DELETE FROM email_domain_blocks WHERE domain = $1")
                .bind(domain.trim().to_ascii_lowercase())
                .execute(&ctx.db)
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
