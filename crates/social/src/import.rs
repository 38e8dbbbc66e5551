//! CSV import of the lists another server exported (follows, blocks, mutes, domain blocks,
//! lists, bookmarks), merged into what the account has — Mastodon's formats, with or without
//! their header line.
//!
//! Importing a list of 2,000 follows means finding 2,000 accounts, most on other servers, so the
//! rows are stored and worked through in the background ([`ImportJob`], by the delivery
//! service), each row applied through the same functions as the client API's; the
//! `bulk_imports` row counts the progress. A row that names nobody is counted, not retried.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use stampede_core::id::IdGenerator;
use stampede_db::Db;
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue};

use crate::export::List;
use crate::remote::Resolver;

/// Rows in one import at most (Mastodon's limit for follows).
pub const MAX_ROWS: usize = 20_000;

impl List {
    fn kind(self) -> &'static str {
        match self {
            List::Follows => "following",
            List::Blocks => "blocking",
            List::Mutes => "muting",
            List::DomainBlocks => "domain_blocking",
            List::Lists => "lists",
            List::Bookmarks => "bookmarks",
        }
    }

    /// Mastodon's import `type` names (`following`, `blocking`, …).
    pub fn from_kind(kind: &str) -> Option<Self> {
        List::ALL.into_iter().find(|l| l.kind() == kind)
    }
}

/// The records of a CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF).
fn records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push(record);
    }
    out.into_iter()
        .map(|r| {
            r.into_iter()
                .map(|f| f.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|r: &Vec<String>| r.iter().any(|f| !f.is_empty()))
        .collect()
}

/// The rows of an import of `list` from `text`: the header line (Mastodon's, or any first
/// line whose first field is not a handle, domain or URL) dropped. An error names what is wrong.
pub fn parse(list: List, text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = records(text);
    let header = rows.first().is_some_and(|first| {
        let f = first[0].to_ascii_lowercase();
        f == "account address" || f == "#domain" || f == "list name" || f.contains(' ')
    });
    if header && list != List::Lists {
        rows.remove(0);
    }
    if rows.len() > MAX_ROWS {
        return Err(format!("at most {MAX_ROWS} rows can be imported at once"));
    }
    let width = if list == List::Lists { 2 } else { 1 };
    if let Some(bad) = rows
        .iter()
        .position(|r| r.len() < width || r[width - 1].is_empty())
    {
        return Err(format!("row {} has too few fields", bad + 1));
    }
    Ok(rows)
}

/// Work through import `import_id`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum ImportJob {
    #[serde(rename = "import.run")]
    Run { import_id: i64 },
}

impl Message for ImportJob {
    const QUEUE: WorkQueue = WorkQueue::Fetch;
    const KINDS: &'static [&'static str] = &["import.run"];
}

/// Stores import `id` of `rows` into `account_id`'s `list` and queues its work, in the
/// caller's transaction.
pub async fn request(
    conn: &mut PgConnection,
    id: i64,
    account_id: i64,
    list: List,
    rows: &[Vec<String>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bulk_imports (id, account_id, kind, total_items) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(account_id)
    .bind(list.kind())
    .bind(rows.len() as i32)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO bulk_import_rows (import_id, position, data) \
         SELECT $1, r.position, r.data FROM jsonb_array_elements($2) WITH ORDINALITY AS r(data, position)",
    )
    .bind(id)
    .bind(serde_json::to_value(rows).unwrap_or_default())
    .execute(&mut *conn)
    .await?;
    stampede_queue::outbox::send(conn, &ImportJob::Run { import_id: id }).await
}

/// Rows taken per transaction.
const STEP: i64 = 50;

/// The delivery service's handler of [`ImportJob`]s.
#[derive(Debug, Clone)]
pub struct Importer {
    pub db: Db,
    pub resolver: Resolver,
    pub ids: Arc<IdGenerator>,
    pub base: String,
    pub local_domain: String,
}

impl Consume<ImportJob> for Importer {
    fn consume<'a>(
        &'a self,
        message: ImportJob,
        _envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            let ImportJob::Run { import_id } = message;
            self.run(import_id).await
        }
        .boxed()
    }
}

/// An account found for a row: its id, and whether it is on another server.
type Found = Option<(i64, bool)>;

impl Importer {
    async fn run(&self, import_id: i64) -> Result<(), JobError> {
        let import: Option<(i64, String)> = sqlx::query_as(
            "SELECT account_id, kind FROM bulk_imports WHERE id = $1 AND finished_at IS NULL",
        )
        .bind(import_id)
        .fetch_optional(&self.db)
        .await?;
        let Some((account_id, kind)) = import else {
            return Ok(());
        };
        let Some(list) = List::from_kind(&kind) else {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "unknown import {kind}"
            )));
        };
        loop {
            let rows: Vec<(i64, Vec<String>)> = sqlx::query_as(
                "SELECT position, ARRAY(SELECT jsonb_array_elements_text(data)) FROM bulk_import_rows \
                 WHERE import_id = $1 AND NOT processed ORDER BY position LIMIT $2",
            )
            .bind(import_id)
            .bind(STEP)
            .fetch_all(&self.db)
            .await?;
            if rows.is_empty() {
                break;
            }
            // Finding the accounts may ask other servers: done before the transaction.
            let mut found = Vec::with_capacity(rows.len());
            for (_, data) in &rows {
                found.push(self.find(list, data).await?);
            }
            let mut tx = self.db.begin().await?;
            let mut imported = 0;
            for ((position, data), target) in rows.iter().zip(found) {
                if self.apply(&mut tx, account_id, list, data, target).await? {
                    imported += 1;
                }
                sqlx::query(
                    "UPDATE bulk_import_rows SET processed = true WHERE import_id = $1 AND position = $2",
                )
                .bind(import_id)
                .bind(position)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE bulk_imports SET processed_items = processed_items + $2, \
                   imported_items = imported_items + $3 WHERE id = $1",
            )
            .bind(import_id)
            .bind(rows.len() as i32)
            .bind(imported)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        sqlx::query("UPDATE bulk_imports SET finished_at = now() WHERE id = $1")
            .bind(import_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// The account a row names (the second field for lists); `None` when nobody answers to it.
    async fn find(&self, list: List, data: &[String]) -> Result<Found, JobError> {
        let acct = match list {
            List::DomainBlocks | List::Bookmarks => return Ok(None),
            List::Lists => data.get(1),
            _ => data.first(),
        };
        let acct = acct
            .map(|a| a.trim().trim_start_matches('@'))
            .unwrap_or_default();
        let (user, domain) = acct.split_once('@').unwrap_or((acct, ""));
        if user.is_empty() {
            return Ok(None);
        }
        if domain.is_empty() || domain.eq_ignore_ascii_case(&self.local_domain) {
            let local: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM accounts WHERE lower(username) = lower($1) AND domain IS NULL \
                 AND suspended_at IS NULL",
            )
            .bind(user)
            .fetch_optional(&self.db)
            .await?;
            return Ok(local.map(|id| (id, false)));
        }
        match self.resolver.by_handle(user, domain).await {
            Ok(found) => Ok(found.map(|a| (a.id, true))),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(_) => Ok(None),
        }
    }

    /// Applies one row; whether it imported something.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        account_id: i64,
        list: List,
        data: &[String],
        target: Found,
    ) -> Result<bool, JobError> {
        let field = |i: usize| data.get(i).map(String::as_str).unwrap_or_default();
        let ids = &self.ids;
        match (list, target) {
            (List::DomainBlocks, _) => {
                let domain = field(0).trim().to_ascii_lowercase();
                if domain.is_empty() || domain == self.local_domain {
                    return Ok(false);
                }
                crate::account_domain_blocks::block(tx, ids, &self.base, account_id, &domain)
                    .await?;
            }
            (List::Bookmarks, _) => {
                let uri = field(0);
                let local_id = uri
                    .strip_prefix(&self.base)
                    .and_then(|p| p.rsplit_once("/statuses/"))
                    .and_then(|(_, id)| id.parse::<i64>().ok());
                let done = sqlx::query(&format!(
                    "INSERT INTO bookmarks (id, account_id, status_id) \
                         SELECT $1, $2, s.id FROM statuses s \
                         WHERE (s.uri = $3 OR (s.uri IS NULL AND s.id = $4)) AND {} \
                         ON CONFLICT DO NOTHING",
                    crate::visibility::visible("s", "$2")
                ))
                .bind(ids.next_id().as_i64())
                .bind(account_id)
                .bind(uri)
                .bind(local_id)
                .execute(&mut *tx)
                .await?;
                return Ok(done.rows_affected() > 0);
            }
            (_, None) => return Ok(false),
            (_, Some((target, _))) if target == account_id => return Ok(false),
            (List::Follows, Some((target, remote))) => {
                let reblogs = field(1) != "false";
                let notify = field(2) == "true";
                if remote {
                    crate::follows::ask_remote(
                        tx,
                        ids,
                        &self.base,
                        account_id,
                        target,
                        Some(reblogs),
                        Some(notify),
                    )
                    .await?;
                } else {
                    // A locked account is asked, as the client API asks it.
                    let locked: bool =
                        sqlx::query_scalar("SELECT locked FROM accounts WHERE id = $1")
                            .bind(target)
                            .fetch_one(&mut *tx)
                            .await?;
                    if locked {
                        crate::follows::request(
                            tx,
                            ids,
                            account_id,
                            target,
                            Some(reblogs),
                            Some(notify),
                        )
                        .await?;
                    } else {
                        crate::follows::follow(
                            tx,
                            ids,
                            account_id,
                            target,
                            Some(reblogs),
                            Some(notify),
                            crate::follows::Tell::Target,
                        )
                        .await?;
                    }
                }
            }
            (List::Blocks, Some((target, remote))) => {
                crate::relations::block(tx, ids, &self.base, account_id, target, remote).await?;
            }
            (List::Mutes, Some((target, _))) => {
                let notifications = field(1) != "false";
                crate::relations::mute(tx, ids, account_id, target, notifications, 0).await?;
            }
            (List::Lists, Some((target, _))) => {
                let title: String = field(0).chars().take(200).collect();
                let list_id: i64 = sqlx::query_scalar(
                    "WITH found AS (SELECT id FROM lists WHERE account_id = $2 AND title = $3 \
                                    ORDER BY id LIMIT 1), \
                          made AS (INSERT INTO lists (id, account_id, title) \
                                   SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM found) \
                                   RETURNING id) \
                     SELECT id FROM found UNION ALL SELECT id FROM made",
                )
                .bind(ids.next_id().as_i64())
                .bind(account_id)
                .bind(&title)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO list_accounts (list_id, account_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(list_id)
                .bind(target)
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mastodon_csv_files_parse() {
        let follows = "Account address,Show boosts,Notify on new posts,Languages\n\
                       alice@example.com,true,false,\r\nbob@other.example,false,true,\"en, de\"\n";
        let rows = parse(List::Follows, follows).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            vec!["bob@other.example", "false", "true", "en, de"]
        );
        let lists = "\"Friends, close\",alice@example.com\nWork,bob@other.example\n";
        let rows = parse(List::Lists, lists).unwrap();
        assert_eq!(rows[0], vec!["Friends, close", "alice@example.com"]);
        assert_eq!(parse(List::Blocks, "a@b.example\n\n").unwrap().len(), 1);
        assert!(parse(List::Lists, "only-a-title\n").is_err());
    }
}
