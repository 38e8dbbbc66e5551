//! Moderators' actions on accounts and reports, each written to the audit log in the same
//! transaction. The effects follow from the rows: a suspended account's statuses leave every
//! read path (the visibility predicates check `suspended_at`) and its tokens stop working; a
//! disabled login's tokens stop working; a sensitized account's statuses are shown behind a
//! content warning; a silenced account's statuses leave public places for non-followers.

use sqlx::PgConnection;
use stampede_core::id::IdGenerator;

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

/// Writes one line of the audit log.
pub async fn log(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    moderator: i64,
    action: &str,
    target_type: &str,
    target_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_action_logs (id, account_id, action, target_type, target_id, human_identifier) \
         VALUES ($1, $2, $3, $4, $5, \
                 CASE WHEN $4 = 'Account' THEN coalesce((SELECT username || coalesce('@' || domain, '') \
                                                         FROM accounts WHERE id = $5), '') \
                      ELSE '' END)",
    )
    .bind(ids.next_id().as_i64())
    .bind(moderator)
    .bind(action)
    .bind(target_type)
    .bind(target_id)
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
