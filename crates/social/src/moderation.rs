//! Moderators' actions on accounts and reports, each written to the audit log in the same
//! transaction. The effects follow from the rows: a suspended account's statuses leave every
//! read path (the visibility predicates check `suspended_at`) and its tokens stop working; a
//! disabled login's tokens stop working; a sensitized account's statuses are shown behind a
//! content warning; a silenced account's statuses leave public places for non-followers.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use stampede_core::id::IdGenerator;

use crate::domain_policy::Severity;

/// What a moderator can do to an account (`POST /api/v1/admin/accounts/:id/action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    /// A warning only.
    None,
    /// The login stops working (local accounts).
    Disable,
    /// Media is shown behind a warning.
    Sensitive,
    /// Only followers see the account's statuses in public places and hear from it.
    Silence,
    /// The account and everything it posted disappear; it can be unsuspended.
    Suspend,
}

impl AccountAction {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => AccountAction::None,
            "disable" => AccountAction::Disable,
            "sensitive" => AccountAction::Sensitive,
            "silence" => AccountAction::Silence,
            "suspend" => AccountAction::Suspend,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountAction::None => "none",
            AccountAction::Disable => "disable",
            AccountAction::Sensitive => "sensitive",
            AccountAction::Silence => "silence",
            AccountAction::Suspend => "suspend",
        }
    }
}

/// The reversal of an action (`unsuspend`, `enable`, `unsensitive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    Enable,
    Unsilence,
    Unsensitive,
    Unsuspend,
}

impl Undo {
    fn as_str(self) -> &'static str {
        match self {
            Undo::Enable => "enable",
            Undo::Unsilence => "unsilence",
            Undo::Unsensitive => "unsensitive",
            Undo::Unsuspend => "unsuspend",
        }
    }
}

/// Writes one line of the audit log (an account target is named by its handle).
pub async fn log(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    action: &str,
    target_type: &str,
    target_id: i64,
) -> Result<(), sqlx::Error> {
    log_named(conn, ids, moderator, action, (target_type, target_id, None)).await
}

/// Writes one line of the audit log: `target` is its type, id and, for what is not an account,
/// the name people know it by (a domain, an address range).
pub async fn log_named(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    action: &str,
    target: (&str, i64, Option<&str>),
) -> Result<(), sqlx::Error> {
    let (target_type, target_id, name) = target;
    sqlx::query(
        "INSERT INTO admin_action_logs (id, account_id, action, target_type, target_id, human_identifier) \
         VALUES ($1, $2, $3, $4, $5, \
                 coalesce($6, CASE WHEN $4 = 'Account' THEN coalesce((SELECT username || coalesce('@' || domain, '') \
                                                         FROM accounts WHERE id = $5), '') \
                      ELSE '' END))",
    )
    .bind(ids.next_id().as_i64())
    .bind(moderator)
    .bind(action)
    .bind(target_type)
    .bind(target_id)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `action` against `target` (the caller checked the moderator may), with the warning
/// the account is left, resolving `report` when given, in the caller's transaction.
pub async fn act(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    target: i64,
    action: AccountAction,
    text: &str,
    report: Option<i64>,
) -> Result<(), sqlx::Error> {
    match action {
        AccountAction::None => {}
        AccountAction::Disable => {
            sqlx::query("UPDATE users SET disabled = true WHERE account_id = $1")
                .bind(target)
                .execute(&mut *conn)
                .await?;
        }
        AccountAction::Sensitive => {
            sqlx::query(
                "UPDATE accounts SET sensitized_at = coalesce(sensitized_at, now()) WHERE id = $1",
            )
            .bind(target)
            .execute(&mut *conn)
            .await?;
        }
        AccountAction::Silence => {
            sqlx::query(
                "UPDATE accounts SET silenced_at = coalesce(silenced_at, now()) WHERE id = $1",
            )
            .bind(target)
            .execute(&mut *conn)
            .await?;
        }
        AccountAction::Suspend => {
            sqlx::query(
                "UPDATE accounts SET suspended_at = coalesce(suspended_at, now()) WHERE id = $1",
            )
            .bind(target)
            .execute(&mut *conn)
            .await?;
        }
    }
    sqlx::query(
        "INSERT INTO account_warnings (id, account_id, target_account_id, action, text, report_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ids.next_id().as_i64())
    .bind(moderator)
    .bind(target)
    .bind(action.as_str())
    .bind(text)
    .bind(report)
    .execute(&mut *conn)
    .await?;
    if let Some(report) = report {
        resolve(conn, ids, moderator, report).await?;
    }
    log(conn, ids, moderator, action.as_str(), "Account", target).await
}

/// Reverses an action on `target`.
pub async fn undo(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    target: i64,
    undo: Undo,
) -> Result<(), sqlx::Error> {
    let sql = match undo {
        Undo::Enable => "UPDATE users SET disabled = false WHERE account_id = $1",
        Undo::Unsilence => "UPDATE accounts SET silenced_at = NULL WHERE id = $1",
        Undo::Unsensitive => "UPDATE accounts SET sensitized_at = NULL WHERE id = $1",
        Undo::Unsuspend => "UPDATE accounts SET suspended_at = NULL WHERE id = $1",
    };
    sqlx::query(sql).bind(target).execute(&mut *conn).await?;
    log(conn, ids, moderator, undo.as_str(), "Account", target).await
}

/// Marks `report` resolved by `moderator`; whether it was open.
pub async fn resolve(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    report: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reports SET action_taken_at = now(), action_taken_by_account_id = $2, \
           updated_at = now() WHERE id = $1 AND action_taken_at IS NULL",
    )
    .bind(report)
    .bind(moderator)
    .execute(&mut *conn)
    .await?;
    log(conn, ids, moderator, "resolve", "Report", report).await?;
    Ok(done.rows_affected() > 0)
}

/// Reopens `report`.
pub async fn reopen(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    report: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET action_taken_at = NULL, action_taken_by_account_id = NULL, \
           updated_at = now() WHERE id = $1",
    )
    .bind(report)
    .execute(&mut *conn)
    .await?;
    log(conn, ids, moderator, "reopen", "Report", report).await
}

/// Assigns `report` to `moderator` (or to nobody).
pub async fn assign(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    report: i64,
    to_self: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET assigned_account_id = CASE WHEN $3 THEN $2 END, updated_at = now() \
         WHERE id = $1",
    )
    .bind(report)
    .bind(moderator)
    .bind(to_self)
    .execute(&mut *conn)
    .await?;
    let action = if to_self {
        "assigned_to_self"
    } else {
        "unassigned"
    };
    log(conn, ids, moderator, action, "Report", report).await
}

/// A domain block's settings (`/api/v1/admin/domain_blocks`).
#[derive(Debug, Clone)]
pub struct DomainBlockSettings {
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub private_comment: Option<String>,
    pub public_comment: Option<String>,
    pub obfuscate: bool,
}

/// Stamps `severity` of the block of `domain` made at `since` on the accounts of the domain and
/// its subdomains, or (`lift`) takes off the stamps that block made — and only those, so that
/// an account a moderator suspended on its own stays suspended when the block is lifted.
async fn stamp(
    conn: &mut PgConnection,
    domain: &str,
    severity: Severity,
    since: DateTime<Utc>,
    lift: bool,
) -> Result<(), sqlx::Error> {
    let column = match severity {
        Severity::Noop => return Ok(()),
        Severity::Silence => "silenced_at",
        Severity::Suspend => "suspended_at",
    };
    let sql = if lift {
        format!(
            "UPDATE accounts SET {column} = NULL \
             WHERE domain IS NOT NULL AND domain_covered(domain, $1) AND {column} = $2 \
               AND deleted_at IS NULL"
        )
    } else {
        format!(
            "UPDATE accounts SET {column} = $2 \
             WHERE domain IS NOT NULL AND domain_covered(domain, $1) AND {column} IS NULL"
        )
    };
    sqlx::query(&sql)
        .bind(domain)
        .bind(since)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// After the stamps of a block of `domain` came off: the other blocks covering some of the same
/// accounts (a subdomain's, a parent domain's) stamp theirs again, so lifting a parent domain's
/// block does not lift a subdomain's.
async fn restamp(conn: &mut PgConnection, domain: &str) -> Result<(), sqlx::Error> {
    let others: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT domain, severity, created_at FROM domain_blocks \
         WHERE domain_covered(domain, $1) OR domain_covered($1, domain) ORDER BY created_at",
    )
    .bind(domain)
    .fetch_all(&mut *conn)
    .await?;
    for (other, severity, created_at) in others {
        let severity = Severity::parse(&severity).unwrap_or(Severity::Noop);
        stamp(conn, &other, severity, created_at, false).await?;
    }
    Ok(())
}

/// Blocks `domain` as `settings` say, stamping its accounts (silenced or suspended); the
/// block's id. The caller checked that no block covers the domain already.
pub async fn block_domain(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    domain: &str,
    settings: &DomainBlockSettings,
) -> Result<i64, sqlx::Error> {
    let id = ids.next_id().as_i64();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO domain_blocks (id, domain, severity, reject_media, reject_reports, \
           private_comment, public_comment, obfuscate) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at",
    )
    .bind(id)
    .bind(domain)
    .bind(settings.severity.as_str())
    .bind(settings.reject_media)
    .bind(settings.reject_reports)
    .bind(&settings.private_comment)
    .bind(&settings.public_comment)
    .bind(settings.obfuscate)
    .fetch_one(&mut *conn)
    .await?;
    stamp(conn, domain, settings.severity, created_at, false).await?;
    log_named(
        conn,
        ids,
        moderator,
        "create",
        ("DomainBlock", id, Some(domain)),
    )
    .await?;
    Ok(id)
}

/// Changes block `id`: the old severity's stamps come off and the new one's go on. Whether it
/// exists.
pub async fn update_domain_block(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    id: i64,
    settings: &DomainBlockSettings,
) -> Result<bool, sqlx::Error> {
    let before: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT domain, severity, created_at FROM domain_blocks WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((domain, old, created_at)) = before else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE domain_blocks SET severity = $2, reject_media = $3, reject_reports = $4, \
           private_comment = $5, public_comment = $6, obfuscate = $7, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(settings.severity.as_str())
    .bind(settings.reject_media)
    .bind(settings.reject_reports)
    .bind(&settings.private_comment)
    .bind(&settings.public_comment)
    .bind(settings.obfuscate)
    .execute(&mut *conn)
    .await?;
    let old = Severity::parse(&old).unwrap_or(Severity::Noop);
    if old != settings.severity {
        stamp(conn, &domain, old, created_at, true).await?;
        stamp(conn, &domain, settings.severity, created_at, false).await?;
        restamp(conn, &domain).await?;
    }
    log_named(
        conn,
        ids,
        moderator,
        "update",
        ("DomainBlock", id, Some(&domain)),
    )
    .await?;
    Ok(true)
}

/// Lifts block `id` and the stamps it made. Whether it existed.
pub async fn unblock_domain(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let gone: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "DELETE FROM domain_blocks WHERE id = $1 RETURNING domain, severity, created_at",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((domain, severity, created_at)) = gone else {
        return Ok(false);
    };
    let severity = Severity::parse(&severity).unwrap_or(Severity::Noop);
    stamp(conn, &domain, severity, created_at, true).await?;
    restamp(conn, &domain).await?;
    log_named(
        conn,
        ids,
        moderator,
        "destroy",
        ("DomainBlock", id, Some(&domain)),
    )
    .await?;
    Ok(true)
}
