//! A person's data, theirs to take: the CSV lists Mastodon exports (follows, blocks, mutes,
//! domain blocks, lists, bookmarks) and the archive of everything they posted.
//!
//! The archive (GDPR access) is a ZIP with Mastodon's layout: `actor.json`, `outbox.json` (every
//! status as its Create or Announce, whatever its visibility), `likes.json`, `bookmarks.json`,
//! the media files and the avatar and header under their storage keys, and the CSVs. It is
//! built in the background by the media service ([`ExportJob`]) with its progress in the
//! `backups` row, stored under an unguessable key and handed out only to its owner.

use std::io::{Cursor, Write};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use stampede_db::Db;
use stampede_queue::{Consume, Envelope, JobError, Message, WorkQueue};
use stampede_storage::Storage;

use crate::activitypub::{Documents, actor_uri, context, person, with_context};
use crate::render::Renderer;

/// The lists a person can export and import, with Mastodon's file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Follows,
    Blocks,
    Mutes,
    DomainBlocks,
    Lists,
    Bookmarks,
}

impl List {
    pub const ALL: [List; 6] = [
        List::Follows,
        List::Blocks,
        List::Mutes,
        List::DomainBlocks,
        List::Lists,
        List::Bookmarks,
    ];

    /// `follows.csv` and so on.
    pub fn file_name(self) -> &'static str {
        match self {
            List::Follows => "follows.csv",
            List::Blocks => "blocks.csv",
            List::Mutes => "mutes.csv",
            List::DomainBlocks => "domain_blocks.csv",
            List::Lists => "lists.csv",
            List::Bookmarks => "bookmarks.csv",
        }
    }

    pub fn from_file_name(name: &str) -> Option<Self> {
        List::ALL.into_iter().find(|l| l.file_name() == name)
    }
}

/// One CSV field, quoted when it must be (RFC 4180).
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The `user@domain` of an account, this server's domain for a local one.
const ACCT: &str = "a.username || '@' || coalesce(a.domain, $2)";

/// The CSV of `list` for local account `account_id`, as Mastodon writes it (follows and mutes
/// with a header line, the others without).
pub async fn csv(
    conn: &mut PgConnection,
    account_id: i64,
    local_domain: &str,
    base: &str,
    list: List,
) -> Result<String, sqlx::Error> {
    let mut out = String::new();
    let mut line = |fields: &[&str]| {
        let fields: Vec<String> = fields.iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    match list {
        List::Follows => {
            line(&[
                "Account address",
                "Show boosts",
                "Notify on new posts",
                "Languages",
            ]);
            // Languages are not kept per follow here: the column stays empty.
            let rows: Vec<(String, bool, bool)> = sqlx::query_as(&format!(
                "SELECT {ACCT}, f.show_reblogs, f.notify FROM follows f \
                 JOIN accounts a ON a.id = f.target_account_id WHERE f.account_id = $1 ORDER BY f.id"
            ))
            .bind(account_id)
            .bind(local_domain)
            .fetch_all(&mut *conn)
            .await?;
            for (acct, reblogs, notify) in rows {
                line(&[&acct, &reblogs.to_string(), &notify.to_string(), ""]);
            }
        }
        List::Blocks => {
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT {ACCT} FROM blocks b JOIN accounts a ON a.id = b.target_account_id \
                 WHERE b.account_id = $1 ORDER BY b.id"
            ))
            .bind(account_id)
            .bind(local_domain)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().for_each(|acct| line(&[acct]));
        }
        List::Mutes => {
            line(&["Account address", "Hide notifications"]);
            let rows: Vec<(String, bool)> = sqlx::query_as(&format!(
                "SELECT {ACCT}, m.hide_notifications FROM mutes m \
                 JOIN accounts a ON a.id = m.target_account_id WHERE m.account_id = $1 ORDER BY m.id"
            ))
            .bind(account_id)
            .bind(local_domain)
            .fetch_all(&mut *conn)
            .await?;
            for (acct, hide) in rows {
                line(&[&acct, &hide.to_string()]);
            }
        }
        List::DomainBlocks => {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT domain FROM account_domain_blocks WHERE account_id = $1 ORDER BY domain",
            )
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().for_each(|domain| line(&[domain]));
        }
        List::Lists => {
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT l.title, {ACCT} FROM lists l JOIN list_accounts la ON la.list_id = l.id \
                 JOIN accounts a ON a.id = la.account_id WHERE l.account_id = $1 ORDER BY l.id, a.id"
            ))
            .bind(account_id)
            .bind(local_domain)
            .fetch_all(&mut *conn)
            .await?;
            for (title, acct) in rows {
                line(&[&title, &acct]);
            }
        }
        List::Bookmarks => {
            for uri in status_uris(conn, account_id, base, "bookmarks").await? {
                line(&[&uri]);
            }
        }
    }
    Ok(out)
}

/// The URIs of the statuses `account_id` has in `table` (`favourites` or `bookmarks`).
async fn status_uris(
    conn: &mut PgConnection,
    account_id: i64,
    base: &str,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT coalesce(s.uri, $2 || '/users/' || a.username || '/statuses/' || s.id) \
         FROM {table} x JOIN statuses s ON s.id = x.status_id JOIN accounts a ON a.id = s.account_id \
         WHERE x.account_id = $1 ORDER BY x.id"
    ))
    .bind(account_id)
    .bind(base)
    .fetch_all(conn)
    .await
}

/// Build the archive of backup `backup_id` (a row of `backups`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum ExportJob {
    #[serde(rename = "export.archive")]
    Archive { backup_id: i64 },
}

impl Message for ExportJob {
    const QUEUE: WorkQueue = WorkQueue::Media;
    const KINDS: &'static [&'static str] = &["export.archive"];
}

/// Asks for a new archive (`id`) of `account_id`'s data, in the caller's transaction.
pub async fn request(conn: &mut PgConnection, id: i64, account_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO backups (id, account_id) VALUES ($1, $2)")
        .bind(id)
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    stampede_queue::outbox::send(conn, &ExportJob::Archive { backup_id: id }).await
}

/// Statuses rendered per step, and so how often the progress moves.
const STEP: usize = 200;

/// The media service's handler of [`ExportJob`]s.
#[derive(Debug, Clone)]
pub struct Exporter {
    pub db: Db,
    pub storage: Storage,
    pub documents: Documents,
    pub render: Renderer,
    pub local_domain: String,
}

impl Consume<ExportJob> for Exporter {
    fn consume<'a>(
        &'a self,
        message: ExportJob,
        _envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        async move {
            let ExportJob::Archive { backup_id } = message;
            match self.archive(backup_id).await {
                Ok(()) => Ok(()),
                Err(error) => {
                    // Tried again by the queue; the row says so meanwhile.
                    let _ = sqlx::query("UPDATE backups SET error = $2 WHERE id = $1")
                        .bind(backup_id)
                        .bind(format!("{error:#}"))
                        .execute(&self.db)
                        .await;
                    Err(JobError::Retry(error))
                }
            }
        }
        .boxed()
    }
}

impl Exporter {
    async fn progress(&self, backup_id: i64, percent: i32) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE backups SET progress = greatest(progress, $2) WHERE id = $1")
            .bind(backup_id)
            .bind(percent)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn archive(&self, backup_id: i64) -> anyhow::Result<()> {
        let row: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT account_id, storage_key FROM backups WHERE id = $1")
                .bind(backup_id)
                .fetch_optional(&self.db)
                .await?;
        let Some((account_id, None)) = row else {
            return Ok(()); // gone, or built already (a redelivery)
        };
        let base = self.render.base_url().to_string();
        let account = crate::accounts::find(&self.db, account_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("account {account_id} is gone"))?;
        let key = crate::keys::account_key(&self.db, account_id)
            .await?
            .map(|k| k.public_key)
            .unwrap_or_default();
        let mut actor = person(
            &base,
            &self.render.render_account(&account),
            account.indexable,
            &key,
        );
        {
            let mut conn = self.db.acquire().await?;
            let (aliases, moved) = crate::moves::identity(&mut conn, &base, account_id).await?;
            crate::moves::decorate(&mut actor, aliases, moved);
        }
        let me = actor_uri(&base, &account.username);
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let put = |zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
                   name: &str,
                   bytes: &[u8],
                   compress: bool|
         -> anyhow::Result<()> {
            zip.start_file(name, if compress { deflated } else { stored })?;
            zip.write_all(bytes)?;
            Ok(())
        };
        put(
            &mut zip,
            "actor.json",
            &serde_json::to_vec_pretty(&actor)?,
            true,
        )?;

        // outbox.json: every status, oldest first.
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM statuses WHERE account_id = $1 ORDER BY id")
                .bind(account_id)
                .fetch_all(&self.db)
                .await?;
        let mut items = Vec::with_capacity(ids.len());
        for (step, chunk) in ids.chunks(STEP).enumerate() {
            let mut statuses = self.render.load_published(chunk).await?;
            statuses.sort_by_key(|s| s.id.parse::<i64>().unwrap_or_default());
            for status in &statuses {
                items.push(self.documents.publication(status).await?);
            }
            let done = ((step + 1) * STEP).min(ids.len());
            self.progress(backup_id, (10 + 60 * done / ids.len().max(1)) as i32)
                .await?;
        }
        let outbox = with_context(json!({
            "id": "outbox.json",
            "type": "OrderedCollection",
            "totalItems": items.len(),
            "orderedItems": items,
        }));
        put(&mut zip, "outbox.json", &serde_json::to_vec(&outbox)?, true)?;

        let mut conn = self.db.acquire().await?;
        for (name, table) in [
            ("likes.json", "favourites"),
            ("bookmarks.json", "bookmarks"),
        ] {
            let uris = status_uris(&mut conn, account_id, &base, table).await?;
            let collection = json!({
                "@context": context(),
                "id": name,
                "type": "OrderedCollection",
                "orderedItems": uris,
            });
            put(&mut zip, name, &serde_json::to_vec(&collection)?, true)?;
        }
        for list in List::ALL {
            let text = csv(&mut conn, account_id, &self.local_domain, &base, list).await?;
            put(&mut zip, list.file_name(), text.as_bytes(), true)?;
        }
        // The files: uploads' variants, the avatar and the header.
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT k FROM (SELECT unnest(ARRAY[file_key, small_key]) AS k FROM media_attachments \
                            WHERE account_id = $1 AND remote_url IS NULL \
                            UNION ALL SELECT avatar_key FROM accounts WHERE id = $1 \
                            UNION ALL SELECT header_key FROM accounts WHERE id = $1) f \
             WHERE k IS NOT NULL",
        )
        .bind(account_id)
        .fetch_all(&mut *conn)
        .await?;
        drop(conn);
        self.progress(backup_id, 75).await?;
        for key in &keys {
            if let Some(bytes) = self.storage.get(key).await? {
                put(&mut zip, key, &bytes, false)?;
            }
        }
        let bytes = zip.finish()?.into_inner();
        let storage_key = format!("backups/{backup_id}/{}.zip", crate::tokens::generate());
        let size = bytes.len() as i64;
        self.storage
            .put(&storage_key, bytes::Bytes::from(bytes), "application/zip")
            .await?;
        let finished = sqlx::query(
            "UPDATE backups SET storage_key = $2, size = $3, progress = 100, error = NULL, \
               finished_at = now() WHERE id = $1",
        )
        .bind(backup_id)
        .bind(&storage_key)
        .bind(size)
        .execute(&self.db)
        .await;
        if let Err(error) = finished {
            // The retry writes another file: this one goes to the garbage (best effort).
            let _ =
                sqlx::query("INSERT INTO storage_garbage (key) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(&storage_key)
                    .execute(&self.db)
                    .await;
            return Err(error.into());
        }
        tracing::info!(backup_id, account_id, size, me, "archive ready");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(super::field("alice@example.com"), "alice@example.com");
        assert_eq!(super::field("a, b"), "\"a, b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
