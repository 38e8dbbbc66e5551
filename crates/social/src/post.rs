//! Creating a status: one transaction writes the status with its mentions, tags, poll,
//! counters, mention notifications, direct-message conversations and the outbox message that
//! fans it out. Nothing is half-written: an error rolls all of it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, Row};
use stampede_core::id::IdGenerator;
use stampede_queue::outbox;

use crate::text::{self, MentionLink};
use crate::{Visibility, distribute, notification};

/// Mastodon's poll limits.
pub const MAX_POLL_OPTIONS: usize = 4;
pub const MAX_POLL_OPTION_CHARS: usize = 50;
pub const MIN_POLL_EXPIRY: i64 = 300;
pub const MAX_POLL_EXPIRY: i64 = 2_629_746;

/// A poll as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPoll {
    pub options: Vec<String>,
    pub expires_in: i64,
    #[serde(default)]
    pub multiple: bool,
    #[serde(default)]
    pub hide_totals: bool,
}

/// A status as requested (also what a scheduled status stores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStatus {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub spoiler_text: String,
    #[serde(default)]
    pub sensitive: bool,
    pub visibility: Option<String>,
    pub language: Option<String>,
    pub in_reply_to_id: Option<i64>,
    pub poll: Option<NewPoll>,
    /// Uploads to show with it, in order (the author's own, processed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_ids: Vec<i64>,
    /// The status it quotes (Mastodon 4.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_status_id: Option<i64>,
    /// Who may quote it: `public`, `followers` or `nobody` (`public` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_approval_policy: Option<String>,
}

/// Why a status was not created.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 422 with this message (`Validation failed: …`).
    #[error("{0}")]
    Invalid(String),
    /// The status replied to does not exist or is not visible to the author: 404.
    #[error("Record not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Checks a status without writing anything; returns its visibility.
pub fn validate(
    new: &NewStatus,
    default_visibility: &str,
    max_chars: usize,
) -> Result<Visibility, PostError> {
    let invalid = |m: &str| PostError::Invalid(format!("Validation failed: {m}"));
    let visibility = new
        .visibility
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(default_visibility)
        .parse::<Visibility>()
        .map_err(|()| invalid("Visibility is not included in the list"))?;
    if new.text.trim().is_empty() && new.poll.is_none() && new.media_ids.is_empty() {
        return Err(invalid("Text can't be blank"));
    }
    if new
        .quote_approval_policy
        .as_deref()
        .is_some_and(|p| !crate::quotes::POLICIES.contains(&p))
    {
        return Err(invalid("Quote approval policy is not included in the list"));
    }
    if new.poll.is_some() && !new.media_ids.is_empty() {
        return Err(PostError::Invalid(
            "Cannot attach both a poll and media to a status".into(),
        ));
    }
    if text::length(&new.text) + new.spoiler_text.chars().count() > max_chars {
        return Err(invalid(&format!(
            "Text character limit of {max_chars} exceeded"
        )));
    }
    if let Some(language) = &new.language
        && !(language.len() >= 2
            && language.len() <= 3
            && language.chars().all(|c| c.is_ascii_lowercase()))
    {
        return Err(invalid("Language is not a valid ISO 639 code"));
    }
    if let Some(poll) = &new.poll {
        if poll.options.len() < 2 {
            return Err(invalid("Poll must have at least 2 options"));
        }
        if poll.options.len() > MAX_POLL_OPTIONS {
            return Err(invalid(&format!(
                "Poll can't contain more than {MAX_POLL_OPTIONS} items"
            )));
        }
        if poll
            .options
            .iter()
            .any(|o| o.trim().is_empty() || o.chars().count() > MAX_POLL_OPTION_CHARS)
        {
            return Err(invalid(&format!(
                "Poll options can't be blank or longer than {MAX_POLL_OPTION_CHARS} characters"
            )));
        }
        if poll.expires_in < MIN_POLL_EXPIRY {
            return Err(invalid("Poll duration is too short"));
        }
        if poll.expires_in > MAX_POLL_EXPIRY {
            return Err(invalid("Poll duration is too long"));
        }
    }
    Ok(visibility)
}

/// The accounts `mentions` (as written in the text) name — local ones, and remote ones this
/// server knows — keyed by lower-cased mention.
pub async fn resolve_mentions(
    conn: &mut PgConnection,
    mentions: &[String],
    local_domain: &str,
    base_url: &str,
) -> Result<HashMap<String, (i64, MentionLink)>, sqlx::Error> {
    let mut wanted: HashMap<String, String> = HashMap::new(); // lower username → mention key
    let mut remote: Vec<(String, String, String)> = Vec::new(); // user, domain, mention key
    for acct in mentions {
        let (user, domain) = acct.split_once('@').unwrap_or((acct, ""));
        if domain.is_empty() || domain.eq_ignore_ascii_case(local_domain) {
            wanted.insert(user.to_lowercase(), acct.to_lowercase());
        } else {
            remote.push((
                user.to_lowercase(),
                domain.to_lowercase(),
                acct.to_lowercase(),
            ));
        }
    }
    let mut out = HashMap::new();
    for (user, domain, key) in remote {
        let row = sqlx::query(
            "SELECT id, username, coalesce(url, uri) AS url FROM accounts \
             WHERE lower(username) = $1 AND lower(domain) = $2 AND suspended_at IS NULL",
        )
        .bind(&user)
        .bind(&domain)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            let url: Option<String> = row.try_get("url")?;
            let username: String = row.try_get("username")?;
            out.insert(
                key,
                (
                    row.try_get("id")?,
                    MentionLink {
                        url: url.unwrap_or_else(|| format!("https://{domain}/@{username}")),
                        username,
                    },
                ),
            );
        }
    }
    if wanted.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = wanted.keys().cloned().collect();
    let rows = sqlx::query(
        "SELECT id, username FROM accounts \
         WHERE domain IS NULL AND lower(username) = ANY($1) AND suspended_at IS NULL",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let username: String = row.try_get("username")?;
        if let Some(key) = wanted.get(&username.to_lowercase()) {
            let url = format!("{base_url}/@{username}");
            out.insert(key.clone(), (id, MentionLink { username, url }));
        }
    }
    Ok(out)
}

/// Where a new status is posted from.
#[derive(Debug, Clone)]
pub struct Author<'a> {
    pub account_id: i64,
    pub application_id: Option<i64>,
    /// The visibility of a status that names none; `None` for the author's stored default
    /// (`source[privacy]`), read by the statement that writes the status.
    pub default_visibility: Option<&'a str>,
    pub local_domain: &'a str,
    pub base_url: &'a str,
    pub max_chars: usize,
}

/// Writes a new status in the caller's transaction and queues its fan-out; returns its id.
/// `created_at` is now unless given (a scheduled status keeps its id's time).
pub async fn create(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    author: &Author<'_>,
    new: &NewStatus,
) -> Result<i64, PostError> {
    // With the stored default, the visibility is only known once the status is written (the
    // default, "public", stands in for the checks, none of which depend on it).
    let stored_default =
        author.default_visibility.is_none() && new.visibility.as_deref().is_none_or(str::is_empty);
    let visibility = validate(
        new,
        author.default_visibility.unwrap_or("public"),
        author.max_chars,
    )?;
    let id = ids.next_id().as_i64();

    // The thread: a reply must be to something the author can see. The parent is locked now
    // with the lock its `replies_count` update takes later: taking the stronger lock first means
    // a concurrent deletion of the parent waits for this reply (or this reply, then, finds the
    // parent gone: 404), never a deadlock between the two.
    let (reply_account, conversation_id) = match new.in_reply_to_id {
        None => (None, id),
        Some(parent) => {
            let row = sqlx::query(&format!(
                "SELECT s.account_id, s.conversation_id FROM statuses s \
                 WHERE s.id = $1 AND s.reblog_of_id IS NULL AND {} FOR NO KEY UPDATE OF s",
                crate::visibility::visible("s", "$2")
            ))
            .bind(parent)
            .bind(author.account_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(PostError::NotFound)?;
            (
                Some(row.try_get::<i64, _>("account_id")?),
                row.try_get::<i64, _>("conversation_id")?,
            )
        }
    };

    crate::media::check_for_status(conn, author.account_id, None, &new.media_ids).await?;
    let parsed = text::parse(&new.text);
    let mentioned =
        resolve_mentions(conn, &parsed.mentions, author.local_domain, author.base_url).await?;
    let links: HashMap<String, MentionLink> = mentioned
        .iter()
        .map(|(k, (_, link))| (k.clone(), link.clone()))
        .collect();
    let content = text::render(&new.text, &links, author.base_url);

    let visibility: String = sqlx::query_scalar(
        "INSERT INTO statuses (id, account_id, application_id, text, content, spoiler_text, \
            sensitive, visibility, language, in_reply_to_id, in_reply_to_account_id, \
            conversation_id, quote_approval_policy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, \
           coalesce($8, (SELECT source_privacy FROM users WHERE account_id = $2), 'public'), \
           $9, $10, $11, $12, $13) \
         RETURNING visibility",
    )
    .bind(id)
    .bind(author.account_id)
    .bind(author.application_id)
    .bind(&new.text)
    .bind(&content)
    .bind(&new.spoiler_text)
    .bind(new.sensitive || !new.spoiler_text.is_empty())
    .bind((!stored_default).then_some(visibility.as_str()))
    .bind(&new.language)
    .bind(new.in_reply_to_id)
    .bind(reply_account)
    .bind(conversation_id)
    .bind(new.quote_approval_policy.as_deref().unwrap_or("public"))
    .fetch_one(&mut *conn)
    .await?;
    let visibility: Visibility = visibility.parse().map_err(|()| {
        PostError::Db(sqlx::Error::Decode(
            format!("visibility {visibility}").into(),
        ))
    })?;
    if let Some(quoted) = new.quoted_status_id {
        crate::quotes::attach(conn, ids, id, author.account_id, quoted)
            .await
            .map_err(|e| match e {
                crate::quotes::QuoteError::NotFound => PostError::NotFound,
                crate::quotes::QuoteError::NotAllowed(m) => PostError::Invalid(m.to_string()),
                crate::quotes::QuoteError::Database(e) => PostError::Db(e),
            })?;
    }
    if new.media_ids.is_empty() {
        crate::cards::queue(conn, id, &content, visibility.as_str(), author.base_url).await?;
    }

    let mentioned_ids: Vec<i64> = {
        let mut v: Vec<i64> = mentioned.values().map(|(id, _)| *id).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    attach(conn, id, &mentioned_ids, &parsed.tags).await?;
    if !new.media_ids.is_empty() {
        crate::media::attach(conn, id, &new.media_ids).await?;
    }
    if let Some(poll) = &new.poll {
        let expires_at: DateTime<Utc> = Utc::now() + chrono::Duration::seconds(poll.expires_in);
        sqlx::query(
            "INSERT INTO polls (id, status_id, options, multiple, hide_totals, expires_at) \
             VALUES ($1, $1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&poll.options)
        .bind(poll.multiple)
        .bind(poll.hide_totals)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    }
    counted(conn, author.account_id, new.in_reply_to_id).await?;
    for target in &mentioned_ids {
        notification::create(
            conn,
            ids.next_id().as_i64(),
            *target,
            author.account_id,
            notification::MENTION,
            Some(id),
        )
        .await?;
    }
    if visibility == Visibility::Direct {
        record_conversation(
            conn,
            ids,
            author.account_id,
            conversation_id,
            id,
            &mentioned_ids,
        )
        .await?;
    }
    outbox::send(
        conn,
        &distribute::Fanout::StatusCreated(distribute::StatusRef { status_id: id }),
    )
    .await?;
    Ok(id)
}

/// Counts a new status (or boost): its author's `statuses_count` and `last_status_at`, and the
/// `replies_count` of the status it answers.
pub async fn counted(
    conn: &mut PgConnection,
    author: i64,
    parent: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_stats (account_id, statuses_count, last_status_at) VALUES ($1, 1, now()) \
         ON CONFLICT (account_id) DO UPDATE SET statuses_count = account_stats.statuses_count + 1, \
           last_status_at = now()",
    )
    .bind(author)
    .execute(&mut *conn)
    .await?;
    if let Some(parent) = parent {
        sqlx::query("UPDATE statuses SET replies_count = replies_count + 1 WHERE id = $1")
            .bind(parent)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Records a status's mentions and hashtags (creating tags not seen before, keeping their first
/// spelling). Adding what is already there changes nothing.
pub async fn attach(
    conn: &mut PgConnection,
    status_id: i64,
    mentioned: &[i64],
    tags: &[String],
) -> Result<(), sqlx::Error> {
    if !mentioned.is_empty() {
        sqlx::query(
            "INSERT INTO mentions (status_id, account_id) SELECT $1, unnest($2::bigint[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(status_id)
        .bind(mentioned)
        .execute(&mut *conn)
        .await?;
    }
    if !tags.is_empty() {
        sqlx::query(
            "INSERT INTO tags (name) SELECT DISTINCT ON (lower(n)) n FROM unnest($1::text[]) n \
             ON CONFLICT (lower(name)) DO NOTHING",
        )
        .bind(tags)
        .execute(&mut *conn)
        .await?;
        let lowered: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
        sqlx::query(
            "INSERT INTO statuses_tags (tag_id, status_id) \
             SELECT id, $1 FROM tags WHERE lower(name) = ANY($2) ON CONFLICT DO NOTHING",
        )
        .bind(status_id)
        .bind(&lowered)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A direct message updates the conversation of the author and of each participant (unread for
/// all but the author).
async fn record_conversation(
    conn: &mut PgConnection,
    ids: &IdGenerator,
    author: i64,
    conversation_id: i64,
    status_id: i64,
    mentioned: &[i64],
) -> Result<(), sqlx::Error> {
    let mut everyone: Vec<i64> = mentioned.to_vec();
    everyone.push(author);
    everyone.sort_unstable();
    everyone.dedup();
    for account in &everyone {
        let others: Vec<i64> = everyone.iter().copied().filter(|a| a != account).collect();
        sqlx::query(
            "INSERT INTO account_conversations \
               (id, account_id, conversation_id, participant_ids, last_status_id, unread) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, conversation_id) DO UPDATE SET \
               participant_ids = ARRAY(SELECT DISTINCT unnest(account_conversations.participant_ids || EXCLUDED.participant_ids)), \
               last_status_id = EXCLUDED.last_status_id, unread = EXCLUDED.unread",
        )
        .bind(ids.next_id().as_i64())
        .bind(account)
        .bind(conversation_id)
        .bind(&others)
        .bind(status_id)
        .bind(*account != author)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `https://WEB_DOMAIN` (or `http://` when LOCAL_HTTPS=false): where this server's pages live.
pub fn base_url(config: &stampede_config::Config) -> String {
    let scheme = if config.web.https { "https" } else { "http" };
    format!("{scheme}://{}", config.web_domain)
}

/// Publishes the scheduled statuses whose time has come, one transaction each (the scheduled
/// row is deleted in the transaction that posts it, so each is posted once even with several
/// delivery processes). One that can no longer be posted (its reply target is gone) is dropped
/// with a warning. Returns how many were posted.
pub async fn publish_due(
    db: &stampede_db::Db,
    ids: &IdGenerator,
    config: &stampede_config::Config,
) -> Result<usize, sqlx::Error> {
    let base = base_url(config);
    let mut published = 0;
    loop {
        let mut tx = db.begin().await?;
        let Some(row) = sqlx::query(
            "DELETE FROM scheduled_statuses WHERE id = ( \
               SELECT id FROM scheduled_statuses WHERE scheduled_at <= now() \
               ORDER BY scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, account_id, application_id, params",
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(published);
        };
        let scheduled_id: i64 = row.try_get("id")?;
        let new: sqlx::types::Json<NewStatus> = row.try_get("params")?;
        let author = Author {
            account_id: row.try_get("account_id")?,
            application_id: row.try_get("application_id")?,
            default_visibility: None,
            local_domain: &config.local_domain,
            base_url: &base,
            max_chars: config.statuses.max_chars,
        };
        match create(&mut tx, ids, &author, &new.0).await {
            Ok(_) => published += 1,
            Err(PostError::Db(error)) => return Err(error),
            Err(error) => {
                tracing::warn!(scheduled_id, %error, "scheduled status dropped");
            }
        }
        tx.commit().await?;
    }
}

/// Tells the author and the voters of each poll that has ended (once per poll).
pub async fn notify_ended_polls(
    db: &stampede_db::Db,
    ids: &IdGenerator,
) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let ended = sqlx::query(
        "WITH ended AS ( \
           UPDATE polls SET notified = true WHERE id IN ( \
             SELECT id FROM polls WHERE NOT notified AND expires_at <= now() \
             LIMIT 500 FOR UPDATE SKIP LOCKED) \
           RETURNING id, status_id) \
         SELECT e.status_id, s.account_id, \
                ARRAY(SELECT DISTINCT v.account_id FROM poll_votes v WHERE v.poll_id = e.id) AS voters \
         FROM ended e JOIN statuses s ON s.id = e.status_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for poll in &ended {
        let status_id: i64 = poll.try_get("status_id")?;
        let author: i64 = poll.try_get("account_id")?;
        let mut recipients: Vec<i64> = poll.try_get("voters")?;
        recipients.push(author);
        for recipient in recipients {
            sqlx::query(
                "INSERT INTO notifications (id, account_id, from_account_id, type, status_id) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(ids.next_id().as_i64())
            .bind(recipient)
            .bind(author)
            .bind(notification::POLL)
            .bind(status_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(ended.len())
}

/// Deletes a status (or boost) in the caller's transaction, with its counters, and queues its
/// removal from feeds. Returns whether it existed.
///
/// With `announce` (the base URL; a deletion by a local account through the API), the remote
/// servers that have the status are told: a `Delete` of the Note, or an `Undo` of a boost.
pub async fn delete(
    conn: &mut PgConnection,
    id: i64,
    announce: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let Some(row) = lock_for_deletion(conn, id).await? else {
        return Ok(false);
    };
    let account_id: i64 = row.try_get("account_id")?;
    let reblog_of: Option<i64> = row.try_get("reblog_of_id")?;
    let parent: Option<i64> = row.try_get("in_reply_to_id")?;
    let mentioned: Vec<i64> = row.try_get("mentioned")?;
    let visibility: String = row.try_get("visibility")?;
    let tags: Vec<String> = row.try_get("tags")?;
    if let Some(base) = announce {
        announce_deletion(
            conn,
            base,
            id,
            account_id,
            reblog_of,
            &visibility,
            &mentioned,
        )
        .await?;
    }
    // Boosts of it go with it: their authors' counts too.
    sqlx::query(
        "UPDATE account_stats st SET statuses_count = greatest(st.statuses_count - r.n, 0) \
         FROM (SELECT account_id, count(*) AS n FROM statuses WHERE reblog_of_id = $1 \
               GROUP BY account_id) r WHERE st.account_id = r.account_id",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    crate::media::release(conn, id).await?;
    sqlx::query("DELETE FROM statuses WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE account_stats SET statuses_count = greatest(statuses_count - 1, 0) \
         WHERE account_id = $1",
    )
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    if let Some(parent) = parent {
        sqlx::query(
            "UPDATE statuses SET replies_count = greatest(replies_count - 1, 0) WHERE id = $1",
        )
        .bind(parent)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(original) = reblog_of {
        sqlx::query(
            "UPDATE statuses SET reblogs_count = greatest(reblogs_count - 1, 0) WHERE id = $1",
        )
        .bind(original)
        .execute(&mut *conn)
        .await?;
    }
    outbox::send(
        conn,
        &distribute::Fanout::StatusDeleted(distribute::Deleted {
            status_id: id,
            account_id,
            mentioned,
            public: visibility == "public" && reblog_of.is_none(),
            tags,
        }),
    )
    .await?;
    Ok(true)
}

/// How often, and how far apart, a deletion tries to lock its status without waiting.
const LOCK_TRIES: u32 = 100;
const LOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Locks status `id` for deletion (with what the deletion needs of it), or `None` when it is
/// gone.
///
/// Locks go parent first: the status a reply answers or a boost boosts (whose counter the
/// deletion lowers) before the status itself, as a reply's creation takes them. Deleting the
/// parent meanwhile locks the parent and then, through its foreign keys, each reply and boost:
/// had this deletion locked its own row first and waited for the parent's counter, each would
/// wait for the other (found by a race test: a boost withdrawn while its original is deleted).
///
/// A favourite, boost or reply of the status holds a key-share lock on it (its foreign key) and
/// then updates its counter; a deletion waiting for the row in between would deadlock with it.
/// So the deletion never waits in line for its own row: it tries `NOWAIT` under a savepoint and,
/// while the row is busy, steps back and tries again a moment later (at most a second; then it
/// waits).
async fn lock_for_deletion(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<sqlx::postgres::PgRow>, sqlx::Error> {
    // A status's parent and original never change, so they can be read before any lock.
    let parents: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT in_reply_to_id, reblog_of_id FROM statuses WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((parent, original)) = parents else {
        return Ok(None);
    };
    let parents: Vec<i64> = parent.into_iter().chain(original).collect();
    if !parents.is_empty() {
        sqlx::query("SELECT id FROM statuses WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&parents)
            .execute(&mut *conn)
            .await?;
    }
    const SELECT: &str = "SELECT account_id, reblog_of_id, in_reply_to_id, visibility, \
            ARRAY(SELECT account_id FROM mentions WHERE status_id = $1) AS mentioned, \
            ARRAY(SELECT lower(t.name) FROM statuses_tags st JOIN tags t ON t.id = st.tag_id \
                  WHERE st.status_id = $1) AS tags \
         FROM statuses WHERE id = $1 FOR UPDATE";
    let nowait = format!("{SELECT} NOWAIT");
    for _ in 0..LOCK_TRIES {
        let mut savepoint = conn.begin().await?;
        match sqlx::query(&nowait)
            .bind(id)
            .fetch_optional(&mut *savepoint)
            .await
        {
            Ok(row) => {
                savepoint.commit().await?;
                return Ok(row);
            }
            // 55P03 lock_not_available: someone is using the row right now.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                savepoint.rollback().await?;
                tokio::time::sleep(LOCK_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
    sqlx::query(SELECT).bind(id).fetch_optional(conn).await
}

/// Queues the `Delete` (or, for a boost, `Undo` of the `Announce`) of a local status for the
/// remote servers that got it. Runs before the row goes, in the deletion's transaction.
async fn announce_deletion(
    conn: &mut PgConnection,
    base: &str,
    id: i64,
    account_id: i64,
    reblog_of: Option<i64>,
    visibility: &str,
    mentioned: &[i64],
) -> Result<(), sqlx::Error> {
    let author = sqlx::query(
        "SELECT a.username, \
           (SELECT coalesce(o.uri, ob.username) FROM statuses o \
              JOIN accounts ob ON ob.id = o.account_id WHERE o.id = $2) AS original, \
           (SELECT o.uri IS NULL FROM statuses o WHERE o.id = $2) AS original_local \
         FROM accounts a WHERE a.id = $1 AND a.domain IS NULL",
    )
    .bind(account_id)
    .bind(reblog_of)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(author) = author else {
        return Ok(());
    };
    let mut inboxes = if visibility == "direct" {
        Vec::new()
    } else {
        crate::outbound::follower_inboxes(conn, account_id).await?
    };
    inboxes.extend(crate::outbound::inboxes_of(conn, mentioned).await?);
    if inboxes.is_empty() {
        return Ok(());
    }
    let username: String = author.try_get("username")?;
    let me = crate::activitypub::actor_uri(base, &username);
    let uri = format!("{me}/statuses/{id}");
    let activity = match reblog_of {
        Some(original) => {
            let original_uri = match author.try_get::<Option<bool>, _>("original_local")? {
                Some(true) => {
                    let original_author: String = author.try_get("original")?;
                    format!(
                        "{}/statuses/{original}",
                        crate::activitypub::actor_uri(base, &original_author)
                    )
                }
                _ => author
                    .try_get::<Option<String>, _>("original")?
                    .unwrap_or_default(),
            };
            serde_json::json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{uri}/activity#undo"),
                "type": "Undo",
                "actor": me,
                "to": [crate::activitypub::PUBLIC],
                "object": {
                    "id": format!("{uri}/activity"),
                    "type": "Announce",
                    "actor": me,
                    "object": original_uri,
                },
            })
        }
        None => serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{uri}#delete"),
            "type": "Delete",
            "actor": me,
            "to": [crate::activitypub::PUBLIC],
            "object": { "id": uri, "type": "Tombstone", "atomUri": uri },
        }),
    };
    crate::outbound::send(conn, account_id, &activity, inboxes).await
}
