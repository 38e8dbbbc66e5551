//! `stampede admin …`: operator commands. Results go to standard output as JSON; logs go to
//! standard error.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use stampede_queue::WorkQueue;
use stampede_runtime::{Context, canary};

use crate::admin_accounts::{
    AccountsCommand, EmailDomainBlocksCommand, InvitesCommand, RulesCommand,
};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Send canary jobs through outbox → queue → worker and report how long they took.
    ///
    /// Exits 0 when every canary was handled exactly once within the timeout, 1 otherwise.
    /// Needs a running relay (web, delivery or all) and a worker for the queue.
    Canary {
        /// The work queue to send them through: distribute, backfill, deliver, ingress,
        /// remote_fanout, fetch, media, mail.
        #[arg(long, default_value = "distribute", value_parser = parse_queue)]
        queue: WorkQueue,
        /// How many canaries to send.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        /// How long each canary holds its worker, in milliseconds.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=600_000))]
        hold_ms: u32,
        /// How long to wait for them, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Send and print the ids without waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// Messages waiting and parked in each RabbitMQ work queue.
    Queues,
    /// The background loops of every process (clock, pruner, queue consumers, relays …), from
    /// the heartbeats they write every 15 s: a JSON line each, with `health` one of ok, stopped
    /// (ended on shutdown), failed (ended on its own), late (no good round in three periods) or
    /// gone (its process stopped writing heartbeats without saying it stopped).
    ///
    /// Exits 1 when any loop is failed, late or gone.
    Workers,
    /// Local accounts: list, create, approve, reject, change role.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// The server rules shown at sign-up and in the instance API.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Invite codes (needed to sign up when REGISTRATIONS_MODE=none; skip approval otherwise).
    #[command(subcommand)]
    Invites(InvitesCommand),
    /// E-mail domains nobody may sign up with.
    #[command(subcommand)]
    EmailDomainBlocks(EmailDomainBlocksCommand),
    /// Remote domains that deliveries fail to: list them, or clear one's record.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Media files: free the storage remote media's cached copies take.
    #[command(subcommand)]
    Media(MediaCommand),
    /// This server's custom emojis (`:shortcode:` in statuses and names).
    #[command(subcommand)]
    Emoji(EmojiCommand),
    /// Announcements shown to signed-in users.
    #[command(subcommand)]
    Announcements(AnnouncementsCommand),
    /// The privacy policy and the terms of service (Markdown files).
    #[command(subcommand)]
    Legal(LegalCommand),
    /// Home feeds in Redis: rebuild them from PostgreSQL (after a Redis loss, for instance).
    #[command(subcommand)]
    Feeds(FeedsCommand),
}

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Rebuild the home feed of one local account, or of every account active within
    /// FANOUT_ACTIVE_DAYS (tootctl feeds build); prints how many were built.
    Build {
        /// One account; every recently active one when omitted.
        username: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AnnouncementsCommand {
    /// Publish an announcement now; prints its id.
    Create {
        /// Plain text; blank lines separate paragraphs and links become links.
        text: String,
        /// When the event it announces starts (RFC 3339).
        #[arg(long)]
        starts_at: Option<String>,
        /// When it ends (RFC 3339).
        #[arg(long)]
        ends_at: Option<String>,
        /// The event lasts whole days.
        #[arg(long)]
        all_day: bool,
    },
    /// List announcements as JSON lines.
    List,
    /// Remove an announcement by id.
    Delete { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum LegalCommand {
    /// Replace the built-in privacy policy with a Markdown file.
    PrivacyPolicy { file: std::path::PathBuf },
    /// Publish the terms of service (a Markdown file) in force from a date (YYYY-MM-DD);
    /// publishing again for the same date replaces that version.
    Terms {
        file: std::path::PathBuf,
        #[arg(long)]
        effective_date: String,
        /// What changed since the previous version.
        #[arg(long, default_value = "")]
        changelog: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EmojiCommand {
    /// Add an emoji from a PNG, GIF or WebP file of at most 256 KiB (replacing one with the
    /// same shortcode).
    Add {
        /// Letters, digits and underscores, at least two.
        shortcode: String,
        file: std::path::PathBuf,
        /// The group the emoji picker shows it in.
        #[arg(long)]
        category: Option<String>,
        /// Usable by typing its shortcode, but not offered in the picker.
        #[arg(long)]
        hidden: bool,
    },
    /// List this server's emojis as JSON lines.
    List,
    /// Remove an emoji.
    Remove { shortcode: String },
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Remove the cached copies of remote media older than N days (the attachments link the
    /// remote files again and are fetched anew when asked for), and unattached uploads older
    /// than MEDIA_UNATTACHED_HOURS; then delete the files from storage. Prints the counts.
    Remove {
        /// Cached remote media older than this many days.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=36_500))]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Domains with failures on record as JSON lines, unavailable ones first.
    List {
        /// Only the unavailable ones (failing on 7 distinct days; deliveries skipped).
        #[arg(long)]
        unavailable: bool,
    },
    /// Forget a domain's failures: deliveries to it resume (within 10 s in running processes).
    Clear { domain: String },
    /// Remove every account of a domain (and its subdomains) and all they left on this server,
    /// the reports about them included (tootctl domains purge); a later fetch may bring an
    /// account back unless the domain is also blocked.
    Purge { domain: String },
}

fn parse_queue(name: &str) -> Result<WorkQueue, String> {
    WorkQueue::from_name(name).ok_or_else(|| {
        let names: Vec<_> = WorkQueue::ALL.iter().map(|q| q.name()).collect();
        format!("unknown queue {name:?}; one of {}", names.join(", "))
    })
}

pub async fn run(command: AdminCommand, ctx: Context) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::Accounts(command) => crate::admin_accounts::run(command, ctx).await,
        AdminCommand::Rules(command) => crate::admin_accounts::rules(command, ctx).await,
        AdminCommand::Invites(command) => crate::admin_accounts::invites(command, ctx).await,
        AdminCommand::EmailDomainBlocks(command) => {
            crate::admin_accounts::email_domain_blocks(command, ctx).await
        }
        AdminCommand::Domains(command) => domains(command, &ctx).await,
        AdminCommand::Media(MediaCommand::Remove { days }) => media_remove(&ctx, days).await,
        AdminCommand::Emoji(command) => emoji(command, &ctx).await,
        AdminCommand::Announcements(command) => announcements(command, &ctx).await,
        AdminCommand::Legal(command) => legal(command, &ctx).await,
        AdminCommand::Feeds(FeedsCommand::Build { username }) => feeds_build(&ctx, username).await,
        AdminCommand::Canary {
            queue,
            count,
            hold_ms,
            timeout,
            no_wait,
        } => canaries(&ctx, queue, count, hold_ms, timeout, no_wait).await,
        AdminCommand::Workers => workers(&ctx).await,
        AdminCommand::Queues => {
            anyhow::ensure!(
                ctx.config.amqp.is_some(),
                "AMQP_URL is not set: the in-process queue lives inside `stampede all` and cannot be inspected from outside"
            );
            ctx.queue
                .check()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach RabbitMQ: {e}"))?;
            for queue in WorkQueue::ALL {
                let ready = ctx.queue.depth(queue).await;
                let parked = ctx.queue.parked(queue).await;
                println!(
                    "{}",
                    serde_json::json!({ "queue": queue.name(), "ready": ready, "parked": parked })
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `stampede admin workers`.
async fn workers(ctx: &Context) -> anyhow::Result<ExitCode> {
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "SELECT process, worker, state, period_seconds, rounds, failures, last_error, \
                started_at, last_ok_at, seen_at, \
                CASE WHEN state = 'failed' THEN 'failed' \
                     WHEN state = 'stopped' THEN 'stopped' \
                     WHEN seen_at < now() - make_interval(secs => $1) THEN 'gone' \
                     WHEN period_seconds IS NOT NULL \
                      AND coalesce(last_ok_at, started_at) \
                          < now() - make_interval(secs => 3 * period_seconds + $1) THEN 'late' \
                     ELSE 'ok' END AS health \
         FROM worker_heartbeats ORDER BY process, worker",
    )
    .bind(4.0 * stampede_runtime::workers::HEARTBEAT.as_secs_f64())
    .fetch_all(&ctx.jobs)
    .await
    .context("reading the workers' heartbeats")?;
    let mut problems = 0;
    for row in &rows {
        if matches!(row.health.as_str(), "failed" | "late" | "gone") {
            problems += 1;
        }
        println!("{}", serde_json::to_string(row)?);
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One loop's heartbeat, as `stampede admin workers` prints it.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct WorkerRow {
    process: String,
    worker: String,
    health: String,
    state: String,
    period_seconds: Option<f64>,
    rounds: i64,
    failures: i64,
    last_error: Option<String>,
    started_at: chrono::DateTime<chrono::Utc>,
    last_ok_at: Option<chrono::DateTime<chrono::Utc>>,
    seen_at: chrono::DateTime<chrono::Utc>,
}

async fn media_remove(ctx: &Context, days: u32) -> anyhow::Result<ExitCode> {
    let removed = stampede_social::media::cleanup(
        &ctx.jobs,
        &ctx.storage,
        ctx.config.media.unattached_hours,
        Some(days),
    )
    .await?;
    println!("{}", serde_json::to_string(&removed)?);
    Ok(ExitCode::SUCCESS)
}

fn parse_time(
    value: Option<String>,
    what: &str,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| anyhow::anyhow!("{what} {v:?} is not an RFC 3339 time: {e}"))
        })
        .transpose()
}

async fn announcements(command: AnnouncementsCommand, ctx: &Context) -> anyhow::Result<ExitCode> {
    use stampede_social::announcements;
    match command {
        AnnouncementsCommand::Create {
            text,
            starts_at,
            ends_at,
            all_day,
        } => {
            anyhow::ensure!(!text.trim().is_empty(), "the announcement's text is empty");
            let starts_at = parse_time(starts_at, "--starts-at")?;
            let ends_at = parse_time(ends_at, "--ends-at")?;
            if let (Some(start), Some(end)) = (starts_at, ends_at) {
                anyhow::ensure!(end >= start, "--ends-at is before --starts-at");
            }
            let ids = stampede_core::id::IdGenerator::new();
            let mut conn = ctx.db.acquire().await?;
            let id = announcements::create(
                &mut conn,
                &ids,
                &stampede_social::post::base_url(&ctx.config),
                &text,
                starts_at,
                ends_at,
                all_day,
            )
            .await?;
            println!("{}", serde_json::json!({ "id": id.to_string() }));
            Ok(ExitCode::SUCCESS)
        }
        AnnouncementsCommand::List => {
            let rows: Vec<(i64, String, chrono::DateTime<chrono::Utc>)> =
                sqlx::query_as("SELECT id, text, published_at FROM announcements ORDER BY id")
                    .fetch_all(&ctx.db)
                    .await?;
            for (id, text, published_at) in rows {
                println!(
                    "{}",
                    serde_json::json!({ "id": id.to_string(), "text": text, "published_at": published_at })
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AnnouncementsCommand::Delete { id } => {
            let mut conn = ctx.db.acquire().await?;
            if announcements::delete(&mut conn, id).await? {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("there is no announcement {id}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn legal(command: LegalCommand, ctx: &Context) -> anyhow::Result<ExitCode> {
    use stampede_social::legal;
    let read = |file: &std::path::Path| {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
    };
    let mut conn = ctx.db.acquire().await?;
    match command {
        LegalCommand::PrivacyPolicy { file } => {
            legal::set_privacy_policy(&mut conn, &read(&file)?).await?;
        }
        LegalCommand::Terms {
            file,
            effective_date,
            changelog,
        } => {
            let date = chrono::NaiveDate::parse_from_str(&effective_date, "%Y-%m-%d")
                .map_err(|e| anyhow::anyhow!("--effective-date {effective_date:?}: {e}"))?;
            let ids = stampede_core::id::IdGenerator::new();
            legal::set_terms(&mut conn, &ids, &read(&file)?, &changelog, date).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn emoji(command: EmojiCommand, ctx: &Context) -> anyhow::Result<ExitCode> {
    use stampede_social::emojis;
    match command {
        EmojiCommand::Add {
            shortcode,
            file,
            category,
            hidden,
        } => {
            let bytes = tokio::fs::read(&file)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let ids = stampede_core::id::IdGenerator::new();
            match emojis::add_local(
                &ctx.db,
                &ctx.storage,
                &stampede_social::media::limits(&ctx.config),
                &ids,
                emojis::NewEmoji {
                    shortcode: &shortcode,
                    image: bytes.into(),
                    category: category.as_deref(),
                    visible_in_picker: !hidden,
                },
            )
            .await
            {
                Ok(()) => {
                    println!(
                        "{}",
                        serde_json::json!({ "shortcode": shortcode, "added": true })
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(emojis::EmojiError::Invalid(message)) => {
                    eprintln!("{message}");
                    Ok(ExitCode::FAILURE)
                }
                Err(emojis::EmojiError::Media(error)) => {
                    eprintln!("{error}");
                    Ok(ExitCode::FAILURE)
                }
                Err(error) => Err(error.into()),
            }
        }
        EmojiCommand::List => {
            let renderer =
                stampede_social::render::Renderer::for_config(ctx.db.clone(), &ctx.config);
            for emoji in renderer.emojis().await?.local() {
                println!("{}", serde_json::to_string(&emoji)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        EmojiCommand::Remove { shortcode } => {
            if emojis::remove_local(&ctx.db, &shortcode).await? {
                println!(
                    "{}",
                    serde_json::json!({ "shortcode": shortcode, "removed": true })
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("there is no emoji :{shortcode}:");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn domains(command: DomainsCommand, ctx: &Context) -> anyhow::Result<ExitCode> {
    use stampede_social::domains;
    match command {
        DomainsCommand::List { unavailable } => {
            for record in domains::list(&ctx.jobs, unavailable).await? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        DomainsCommand::Clear { domain } => {
            let domain = domain.trim().to_ascii_lowercase();
            if domains::clear(&ctx.jobs, &domain).await? {
                println!(
                    "{}",
                    serde_json::json!({ "domain": domain, "cleared": true })
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no failures are on record for {domain}");
                Ok(ExitCode::FAILURE)
            }
        }
        DomainsCommand::Purge { domain } => {
            let domain = domain.trim().to_ascii_lowercase();
            let accounts: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM accounts WHERE domain IS NOT NULL AND domain_covered(domain, $1)",
            )
            .bind(&domain)
            .fetch_all(&ctx.jobs)
            .await?;
            // One transaction per account: a big domain is purged bit by bit, and a stop
            // half-way leaves whole accounts, purged or not.
            for id in &accounts {
                let mut tx = ctx.jobs.begin().await?;
                stampede_social::deletion::purge(&mut tx, *id, None).await?;
                sqlx::query("DELETE FROM accounts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            println!(
                "{}",
                serde_json::json!({ "domain": domain, "accounts_removed": accounts.len() })
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn canaries(
    ctx: &Context,
    queue: WorkQueue,
    count: u32,
    hold_ms: u32,
    timeout: u64,
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    let mut ids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        ids.push(
            canary::send(
                ctx.jobs.pool(),
                queue,
                Duration::from_millis(u64::from(hold_ms)),
            )
            .await
            .context("sending a canary (has `stampede migrate` run?)")?,
        );
    }
    if no_wait {
        println!(
            "{}",
            serde_json::json!({ "queue": queue.name(), "sent": ids })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let statuses = canary::status(ctx.jobs.pool(), &ids).await?;
        let done = statuses.iter().filter(|s| s.applied_count > 0).count();
        if done == ids.len() || Instant::now() >= deadline {
            let mut latencies: Vec<f64> = statuses.iter().filter_map(|s| s.latency_s).collect();
            latencies.sort_by(f64::total_cmp);
            let pct = |p: f64| {
                latencies
                    .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
                    .map(|s| (s * 1000.0 * 10.0).round() / 10.0)
            };
            let max_applied = statuses.iter().map(|s| s.applied_count).max().unwrap_or(0);
            let ok = done == ids.len() && max_applied == 1;
            println!(
                "{}",
                serde_json::json!({
                    "queue": queue.name(),
                    "sent": ids.len(),
                    "completed": done,
                    "max_applied": max_applied,
                    "latency_ms": { "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0) },
                    "ok": ok,
                })
            );
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn feeds_build(ctx: &Context, username: Option<String>) -> anyhow::Result<ExitCode> {
    let accounts: Vec<i64> = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN users u ON u.account_id = a.id \
         WHERE a.domain IS NULL AND a.suspended_at IS NULL \
           AND ($1::text IS NULL OR lower(a.username) = lower($1)) \
           AND ($1::text IS NOT NULL OR u.last_active_at > now() - make_interval(days => $2)) \
         ORDER BY a.id",
    )
    .bind(&username)
    .bind(ctx.config.statuses.active_days as i32)
    .fetch_all(&ctx.jobs)
    .await?;
    if let Some(name) = &username {
        anyhow::ensure!(!accounts.is_empty(), "no local account @{name}");
    }
    let mut built = 0;
    for account in &accounts {
        // A feed someone is rebuilding right now (their own request) is theirs to finish.
        if stampede_social::feeds::rebuild_home(
            &ctx.jobs,
            &ctx.cache,
            &ctx.config.statuses,
            *account,
        )
        .await?
        {
            built += 1;
        }
    }
    println!(
        "{}",
        serde_json::json!({ "accounts": accounts.len(), "built": built })
    );
    Ok(ExitCode::SUCCESS)
}
