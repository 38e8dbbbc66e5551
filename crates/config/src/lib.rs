//! Configuration from environment variables.
//!
//! Every variable is parsed strictly at start-up: a malformed value is an error that names the
//! variable, and the binary exits with status 2 rather than running with a guess. Where Mastodon
//! has a name for a setting we use it (LOCAL_DOMAIN, DATABASE_URL, REDIS_URL, S3_*, SMTP_*), so an
//! operator's existing `.env.production` mostly carries over. docs/configuration.md lists them all.

mod env;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use env::{ConfigError, Env};
use url::Url;

/// Everything a Stampede process needs to know at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// The domain in account handles (`@alice@LOCAL_DOMAIN`).
    pub local_domain: String,
    /// The domain the web interface is served on; defaults to LOCAL_DOMAIN.
    pub web_domain: String,
    /// Address the HTTP listeners bind to.
    pub bind: IpAddr,
    /// PORT: the HTTP port of this process (web's in `all` mode). `None` means the command's default.
    pub port: Option<u16>,
    /// STREAMING_PORT: the streaming listener's port in `all` mode.
    pub streaming_port: u16,
    pub database: DatabaseConfig,
    pub redis: Option<RedisConfig>,
    pub amqp: Option<AmqpConfig>,
    pub storage: StorageConfig,
    pub smtp: Option<SmtpConfig>,
    pub telemetry: TelemetryConfig,
    /// How long in-flight requests and jobs get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    pub web: WebConfig,
    pub registrations: RegistrationConfig,
    pub statuses: StatusesConfig,
    pub streaming: StreamingConfig,
    pub federation: FederationConfig,
    pub media: MediaConfig,
}

/// Media uploads and the media service.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// MAX_IMAGE_SIZE (bytes): the largest image upload; Mastodon's 16 MiB by default.
    pub image_bytes: u64,
    /// MAX_VIDEO_SIZE (bytes): the largest video or audio upload; Mastodon's 99 MiB by default.
    pub video_bytes: u64,
    /// FFMPEG_BINARY / FFPROBE_BINARY (Mastodon's names): the programs that transcode video,
    /// audio and animated GIFs; `ffmpeg` and `ffprobe` on the PATH by default.
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// CDN_HOST (Mastodon's name): the URL media files are served under, e.g.
    /// `https://cdn.example.com`.
    pub cdn_host: Option<Url>,
    /// S3_ALIAS_HOST (Mastodon's name): the host (and optional path) a bucket is served under
    /// when it is not the S3 endpoint itself; with S3_PROTOCOL (https by default).
    pub s3_alias_host: Option<String>,
    pub s3_protocol: String,
    /// MEDIA_CACHE_REMOTE: `arrival` (fetch remote media when its status arrives) or `lazy`
    /// (link the remote file; fetch it only when `stampede admin media` or a client asks).
    pub cache_remote_on_arrival: bool,
    /// MEDIA_CACHE_RETENTION_DAYS: cached remote media older than this is removed by the media
    /// service (the remote URL stays); 0 keeps it. 0 by default, as in Mastodon.
    pub cache_retention_days: u32,
    /// MEDIA_UNATTACHED_HOURS: uploads never attached to a status are removed after this many
    /// hours; 24 by default (Mastodon's one day).
    pub unattached_hours: u32,
}

/// Talking to other servers.
#[derive(Clone, Debug)]
pub struct FederationConfig {
    /// ALLOWED_PRIVATE_ADDRESSES (Mastodon's name): comma-separated addresses or CIDR ranges
    /// that outbound requests may reach although they are loopback, private or link-local —
    /// for instances federating on one machine in tests. Empty (none) by default.
    pub allowed_private_addresses: Vec<ipnet::IpNet>,
    /// AUTHORIZED_FETCH (Mastodon's name): actor and object documents are served only to GETs
    /// signed by another server's actor (the instance actor and discovery stay public).
    pub authorized_fetch: bool,
    /// KEY_POOL_SIZE: RSA keys kept ready for accounts' first federation use; 100 by default.
    pub key_pool_size: i64,
    /// DELIVERY_CONCURRENCY: `deliver` messages (each one activity for up to 50 inboxes) one delivery
    /// process works on at once; 256 by default.
    pub delivery_concurrency: u16,
    /// DELIVERY_HOST_CONCURRENCY: requests one delivery process has open to one host at most;
    /// 32 by default. Past it a host's deliveries wait a little instead of holding workers.
    pub delivery_host_concurrency: u32,
    /// DELIVERY_BREAKER_COOLDOWN (seconds): how long a domain's circuit breaker first stays
    /// open after 5 outages in a row (doubling after each failed probe, up to an hour); 30.
    pub breaker_cooldown: std::time::Duration,
    /// LIMITED_FEDERATION_MODE (Mastodon's name): federate only with the domains an admin
    /// allowed (`/api/v1/admin/domain_allows`).
    pub limited: bool,
    /// SHOW_DOMAIN_BLOCKS: who may read `/api/v1/instance/domain_blocks` — `disabled` (the
    /// default, as Mastodon's), `users` (signed-in people) or `all`.
    pub show_domain_blocks: Audience,
    /// SHOW_DOMAIN_BLOCKS_RATIONALE: who sees the public comment beside each (same values).
    pub show_domain_blocks_rationale: Audience,
}

/// Who may see something an operator chooses to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Disabled,
    Users,
    All,
}

/// How the web service presents itself and trusts its clients.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// LOCAL_HTTPS: links use https:// (and cookies are Secure). Off only for local development.
    pub https: bool,
    /// TRUSTED_PROXY_IP: proxies whose X-Forwarded-For is believed when finding a client's IP.
    pub trusted_proxies: Vec<IpAddr>,
    /// STREAMING_API_BASE_URL: where clients connect for streaming; `wss://WEB_DOMAIN` by default.
    pub streaming_api_base_url: Option<Url>,
    /// SITE_TITLE: the server's name on its pages and in the instance API.
    pub site_title: String,
    /// SITE_CONTACT_EMAIL: shown in the instance API.
    pub contact_email: String,
    /// SITE_CONTACT_USERNAME (Mastodon's setting): the local account shown as the server's
    /// contact in the instance API.
    pub contact_username: Option<String>,
    /// SITE_DESCRIPTION: the server's one-paragraph description in the instance API.
    pub description: String,
    /// SOURCE_BASE_URL (Mastodon's name): where the source code this server runs is offered,
    /// as the AGPL asks; the instance API's `source_url`.
    pub source_url: String,
    /// DEFAULT_LOCALE (Mastodon's name): the server's main language, listed in the instance
    /// API.
    pub default_locale: String,
    /// VAPID_PRIVATE_KEY and VAPID_PUBLIC_KEY (Mastodon's names and format: base64url of the
    /// raw P-256 keys): the key Web Push notifications are signed with. Both or neither; without
    /// them the server makes one on first use and keeps it in the database.
    pub vapid: Option<(String, String)>,
    /// TOKEN_CACHE_SECONDS: how long a web process keeps a bearer token's look-up at most
    /// (60 by default; 0 reads every token from PostgreSQL). Changes reach the cache through
    /// PostgreSQL notifications well before that (ADR 0030).
    pub token_cache: Duration,
    /// ENTITY_CACHE_STATUSES: how many statuses a process keeps rendered-ready in memory (50,000
    /// by default; 0 keeps none), and half as many accounts. Each use is checked against the
    /// row's version read with the page, so nothing shown is stale (ADR 0032).
    pub entity_cache_statuses: usize,
}

/// Who may sign up, and how fast.
#[derive(Clone, Debug)]
pub struct RegistrationConfig {
    /// REGISTRATIONS_MODE: `open`, `approved` (an admin approves each sign-up) or `none`.
    pub mode: RegistrationsMode,
    /// REGISTRATIONS_MIN_AGE: sign-ups must give a date of birth at least this many years ago.
    pub min_age: u8,
    /// ACCOUNT_DELETION_GRACE_DAYS: days between a deletion request (the owner's, or a
    /// suspension) and the purge of the account's data; 30 by default, as Mastodon's.
    pub deletion_grace_days: u32,
    /// RATE_LIMITS: per-IP limits on sign-up and sign-in (off only for load tests).
    pub rate_limits: bool,
    /// SIGNUP_MAX_WAIT_MS: a sign-up or sign-in that would wait longer than this for the password
    /// hashing pool is answered 429 with Retry-After instead.
    pub max_hash_wait: Duration,
    /// PASSWORD_HASH_THREADS: the hashing pool's size; the machine's cores by default.
    pub hash_threads: Option<usize>,
}

/// Statuses and home-feed fan-out.
#[derive(Clone, Debug)]
pub struct StatusesConfig {
    /// MAX_TOOT_CHARS: the longest status, in characters (a URL counts as 23); 500 by default.
    pub max_chars: usize,
    /// FANOUT_READ_TIME_THRESHOLD: authors with more followers than this are not written into
    /// their followers' home feeds; their statuses are merged in when a feed is read (hybrid
    /// fan-out). 100,000 by default.
    pub fanout_threshold: i64,
    /// FANOUT_ACTIVE_DAYS: only followers who used the API within this many days get a status
    /// written into their feed; the others' feeds are rebuilt when they return. 7 by default.
    pub active_days: u32,
}

/// The streaming service's bounds.
#[derive(Clone, Debug)]
pub struct StreamingConfig {
    /// STREAMING_MAX_SUBSCRIPTIONS: streams one WebSocket may subscribe to; 50 by default.
    pub max_subscriptions: usize,
    /// STREAMING_MAX_CONNECTIONS_PER_ACCOUNT: connections one account may hold in one process;
    /// 50 by default.
    pub max_connections_per_account: usize,
    /// STREAMING_CLIENT_BUFFER: events queued for one connection; a client that falls this far
    /// behind is disconnected (and counted). 256 by default.
    pub client_buffer: usize,
    /// STREAMING_PING_SECONDS: how often idle connections are pinged (WebSocket ping frames,
    /// SSE comments), to keep proxies from closing them; 15 by default.
    pub ping_interval: Duration,
    /// STREAMING_SWEEP_SECONDS: how often connections are checked against revoked tokens and
    /// suspended accounts, in case an announcement over pub/sub was missed; 60 by default.
    pub sweep_interval: Duration,
}

/// Mastodon's registration modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationsMode {
    Open,
    Approved,
    None,
}

/// PostgreSQL: the only source of truth.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    /// DB_POOL: connections per process for serving requests.
    pub pool_size: u32,
    /// DB_WORKER_POOL: connections per process for queue consumers and background loops, apart
    /// from the requests' pool so that neither can starve the other.
    pub worker_pool_size: u32,
    /// DB_POOL_QUEUE: callers that may wait for a connection of the requests' pool; one more is
    /// refused at once (503 with Retry-After) instead of waiting out the acquire timeout.
    pub pool_queue: usize,
    /// DB_POOL_MAX_WAIT_MS: while the last request served had waited longer than this for a
    /// connection, one that would queue is refused at once (503 with Retry-After).
    pub pool_max_wait: Duration,
    /// DB_ACQUIRE_TIMEOUT_MS: the longest a request waits for a connection.
    pub acquire_timeout: Duration,
    /// Skip running migrations at start of `all` (they are run by `stampede migrate`).
    pub skip_migrations: bool,
    /// OUTBOX_GATHER_MS: after a relay round that published rows, how long the next rows may
    /// gather before the next round.
    pub outbox_gather: Duration,
    /// REPLICA_DB_URL (Mastodon's name): a streaming read replica for the reads that tolerate
    /// lag (timelines, account pages, collections, search).
    pub replica_url: Option<String>,
    /// REPLICA_MAX_LAG_MS: reads fall back to the primary while the replica trails by more; a
    /// client that wrote reads the primary for this long after.
    pub replica_max_lag: Duration,
}

/// Redis: feeds, pub/sub, rate limits and short caches; everything in it can be rebuilt.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// REDIS_URL: `redis://`, `rediss://` (TLS) or `unix://`.
    pub url: String,
    /// REDIS_TLS_CA_FILE: PEM certificates to trust for `rediss://` (a managed Redis's private
    /// CA); without it, the system's roots.
    pub tls_ca: Option<String>,
    /// REDIS_NAMESPACE: prefix of every key and channel, so deployments can share a server.
    pub namespace: String,
    /// REDIS_SENTINELS (Mastodon's name): `host:port` of each Sentinel, separated by commas.
    /// When set, the sentinels name the primary to connect to (REDIS_URL then gives only the
    /// database number and password), and a failover is followed without a restart.
    pub sentinels: Vec<String>,
    /// REDIS_SENTINEL_MASTER (Mastodon's name): the name the sentinels monitor the primary by.
    pub sentinel_master: String,
}

/// RabbitMQ: the work queues between services.
#[derive(Clone, Debug)]
pub struct AmqpConfig {
    /// AMQP_URL: `amqp://` or `amqps://` (TLS); several, separated by commas, for the nodes of
    /// a cluster (tried in turn, and again after a connection drops).
    pub urls: Vec<String>,
    /// AMQP_QUEUE_TYPE: `quorum` (replicated across a cluster's nodes; the default) or `classic`.
    pub queue_type: QueueType,
    /// AMQP_TLS_CA_FILE: PEM certificates to trust for `amqps://`; without it, the system's roots.
    pub tls_ca: Option<String>,
    /// AMQP_QUEUE_PREFIX: prefix of every queue name, so deployments (and tests) can share a broker.
    pub queue_prefix: String,
    /// AMQP_PREFETCH: unacknowledged messages a consumer holds per queue.
    pub prefetch: u16,
}

/// The kind of RabbitMQ queue declared for work, retries and parking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueType {
    /// Raft-replicated over the cluster's nodes: a queue survives losing a minority of them.
    Quorum,
    /// One node's queue: lost (until that node returns) with its node in a cluster.
    Classic,
}

/// Where media originals and variants live.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// Local disk below PAPERCLIP_ROOT_PATH (Mastodon's name).
    Local { root: PathBuf },
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// An S3-compatible bucket (AWS, MinIO, Garage, …).
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// S3_ENDPOINT: custom endpoint URL; AWS's regional endpoint when unset.
    pub endpoint: Option<Url>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers need.
    pub force_path_style: bool,
}

/// Outgoing mail.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub server: String,
    pub port: u16,
    pub login: Option<String>,
    pub password: Option<String>,
    pub from_address: String,
    /// SMTP_ENABLE_STARTTLS: `auto` (use when offered), `always` or `never`.
    pub starttls: StartTls,
}

/// When to upgrade an SMTP connection with STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTls {
    Auto,
    Always,
    Never,
}

/// Logs and traces.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// OTEL_EXPORTER_OTLP_ENDPOINT: export traces over OTLP/HTTP(S) when set.
    pub otlp_endpoint: Option<Url>,
    /// OTEL_EXPORTER_OTLP_CERTIFICATE (OpenTelemetry's name): PEM certificates to trust for an
    /// `https://` collector, besides the system's roots.
    pub otlp_ca: Option<String>,
    /// OTEL_SERVICE_NAME: defaults to `stampede-<command>`.
    pub service_name: Option<String>,
    pub log_format: LogFormat,
    /// RUST_LOG-style filter; defaults to `info`.
    pub log_filter: String,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env::process())
    }

    /// Reads variables from `env`; tests pass their own.
    pub fn from_source(env: &Env) -> Result<Self, ConfigError> {
        let local_domain = env
            .string("LOCAL_DOMAIN")?
            .unwrap_or_else(|| "localhost".into());
        validate_domain("LOCAL_DOMAIN", &local_domain)?;
        let web_domain = env
            .string("WEB_DOMAIN")?
            .unwrap_or_else(|| local_domain.clone());
        validate_domain("WEB_DOMAIN", &web_domain)?;

        let database = DatabaseConfig {
            url: env
                .url("DATABASE_URL", &["postgres", "postgresql"])?
                .ok_or_else(|| {
                    ConfigError::new(
                        "DATABASE_URL",
                        "is required (e.g. postgres://stampede@127.0.0.1:5432/stampede)",
                    )
                })?
                .to_string(),
            pool_size: env.parse_in("DB_POOL", 1..=1000)?.unwrap_or(10),
            worker_pool_size: env.parse_in("DB_WORKER_POOL", 1..=1000)?.unwrap_or(5),
            pool_queue: env.parse_in("DB_POOL_QUEUE", 0..=100_000)?.unwrap_or(1000),
            pool_max_wait: Duration::from_millis(
                env.parse_in("DB_POOL_MAX_WAIT_MS", 1..=60_000)?
                    .unwrap_or(500),
            ),
            acquire_timeout: Duration::from_millis(
                env.parse_in("DB_ACQUIRE_TIMEOUT_MS", 10..=60_000)?
                    .unwrap_or(2000),
            ),
            skip_migrations: env.boolean("SKIP_MIGRATIONS")?.unwrap_or(false),
            outbox_gather: Duration::from_millis(
                env.parse_in("OUTBOX_GATHER_MS", 0..=1000)?.unwrap_or(20),
            ),
            replica_url: env
                .url("REPLICA_DB_URL", &["postgres", "postgresql"])?
                .map(|u| u.to_string()),
            replica_max_lag: Duration::from_millis(
                env.parse_in("REPLICA_MAX_LAG_MS", 10..=600_000)?
                    .unwrap_or(2000),
            ),
        };

        let redis_url = env.url("REDIS_URL", &["redis", "rediss", "unix"])?;
        let redis_ca = env.tls_ca(
            "REDIS_TLS_CA_FILE",
            "REDIS_URL",
            redis_url.as_ref(),
            "rediss",
        )?;
        let sentinels: Vec<String> = env
            .string("REDIS_SENTINELS")?
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let valid = s.rsplit_once(':').is_some_and(|(host, port)| {
                            !host.is_empty() && port.parse::<u16>().is_ok()
                        });
                        if valid {
                            Ok(s.to_string())
                        } else {
                            Err(ConfigError::new(
                                "REDIS_SENTINELS",
                                format!("must list host:port pairs separated by commas, not {s:?}"),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        if !sentinels.is_empty() {
            match &redis_url {
                None => {
                    return Err(ConfigError::new(
                        "REDIS_SENTINELS",
                        "needs REDIS_URL too (for the database number and password; its host is \
                         replaced by the primary the sentinels name): redis://:password@primary/0",
                    ));
                }
                Some(url) if url.scheme() != "redis" => {
                    return Err(ConfigError::new(
                        "REDIS_SENTINELS",
                        "works with a redis:// REDIS_URL only (TLS through Sentinel is not supported)",
                    ));
                }
                Some(_) => {}
            }
        }
        let redis = match redis_url {
            Some(url) => Some(RedisConfig {
                url: url.to_string(),
                tls_ca: redis_ca,
                namespace: env
                    .string("REDIS_NAMESPACE")?
                    .unwrap_or_else(|| "stampede".into()),
                sentinels,
                sentinel_master: env
                    .string("REDIS_SENTINEL_MASTER")?
                    .unwrap_or_else(|| "mymaster".into()),
            }),
            None => None,
        };

        let amqp_urls = env.urls("AMQP_URL", &["amqp", "amqps"])?;
        let amqp_ca = env.tls_ca(
            "AMQP_TLS_CA_FILE",
            "AMQP_URL",
            amqp_urls.as_ref().and_then(|u| u.first()),
            "amqps",
        )?;
        let amqp = match amqp_urls {
            Some(urls) => Some(AmqpConfig {
                urls: urls.iter().map(ToString::to_string).collect(),
                queue_type: match env.string("AMQP_QUEUE_TYPE")?.as_deref() {
                    None | Some("quorum") => QueueType::Quorum,
                    Some("classic") => QueueType::Classic,
                    Some(_) => {
                        return Err(ConfigError::new(
                            "AMQP_QUEUE_TYPE",
                            "must be quorum or classic",
                        ));
                    }
                },
                tls_ca: amqp_ca,
                queue_prefix: env
                    .name("AMQP_QUEUE_PREFIX")?
                    .unwrap_or_else(|| "stampede".into()),
                prefetch: env.parse_in("AMQP_PREFETCH", 1..=10_000)?.unwrap_or(32),
            }),
            None => None,
        };

        let storage = if env.boolean("S3_ENABLED")?.unwrap_or(false) {
            let endpoint = env.url("S3_ENDPOINT", &["http", "https"])?;
            StorageConfig::S3(S3Config {
                bucket: env.required("S3_BUCKET")?,
                force_path_style: env
                    .boolean("S3_FORCE_PATH_STYLE")?
                    .unwrap_or(endpoint.is_some()),
                endpoint,
                region: env
                    .string("S3_REGION")?
                    .unwrap_or_else(|| "us-east-1".into()),
                access_key_id: env.required("AWS_ACCESS_KEY_ID")?,
                secret_access_key: env.required("AWS_SECRET_ACCESS_KEY")?,
            })
        } else {
            StorageConfig::Local {
                root: env
                    .string("PAPERCLIP_ROOT_PATH")?
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("public/system")),
            }
        };

        let smtp = match env.string("SMTP_SERVER")? {
            Some(server) => Some(SmtpConfig {
                server,
                port: env.parse_in("SMTP_PORT", 1..=65535)?.unwrap_or(587),
                login: env.string("SMTP_LOGIN")?,
                password: env.string("SMTP_PASSWORD")?,
                from_address: env
                    .string("SMTP_FROM_ADDRESS")?
                    .unwrap_or_else(|| format!("notifications@{local_domain}")),
                starttls: match env.string("SMTP_ENABLE_STARTTLS")?.as_deref() {
                    None | Some("auto") => StartTls::Auto,
                    Some("always") => StartTls::Always,
                    Some("never") => StartTls::Never,
                    Some(other) => {
                        return Err(ConfigError::new(
                            "SMTP_ENABLE_STARTTLS",
                            format!("must be auto, always or never, not {other:?}"),
                        ));
                    }
                },
            }),
            None => None,
        };

        let otlp_endpoint = env.url("OTEL_EXPORTER_OTLP_ENDPOINT", &["http", "https"])?;
        let telemetry = TelemetryConfig {
            otlp_ca: env.tls_ca(
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                otlp_endpoint.as_ref(),
                "https",
            )?,
            otlp_endpoint,
            service_name: env.string("OTEL_SERVICE_NAME")?,
            log_format: match env.string("LOG_FORMAT")?.as_deref() {
                None | Some("json") => LogFormat::Json,
                Some("text") => LogFormat::Text,
                Some(other) => {
                    return Err(ConfigError::new(
                        "LOG_FORMAT",
                        format!("must be json or text, not {other:?}"),
                    ));
                }
            },
            log_filter: env.string("RUST_LOG")?.unwrap_or_else(|| "info".into()),
        };

        let web = WebConfig {
            https: env.boolean("LOCAL_HTTPS")?.unwrap_or(true),
            trusted_proxies: match env.string("TRUSTED_PROXY_IP")? {
                None => Vec::new(),
                Some(list) => list
                    .split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(|ip| {
                        ip.parse::<IpAddr>().map_err(|_| {
                            ConfigError::new(
                                "TRUSTED_PROXY_IP",
                                format!("{ip:?} is not an IP address"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            streaming_api_base_url: env
                .url("STREAMING_API_BASE_URL", &["ws", "wss", "http", "https"])?,
            site_title: env
                .string("SITE_TITLE")?
                .unwrap_or_else(|| local_domain.clone()),
            contact_email: env.string("SITE_CONTACT_EMAIL")?.unwrap_or_default(),
            contact_username: env.string("SITE_CONTACT_USERNAME")?,
            description: env.string("SITE_DESCRIPTION")?.unwrap_or_default(),
            source_url: env.url("SOURCE_BASE_URL", &["http", "https"])?.map_or_else(
                || env!("CARGO_PKG_REPOSITORY").to_string(),
                |u| u.as_str().trim_end_matches('/').to_string(),
            ),
            default_locale: match env.string("DEFAULT_LOCALE")? {
                None => "en".to_string(),
                Some(l)
                    if (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()) =>
                {
                    l
                }
                Some(l) => {
                    return Err(ConfigError::new(
                        "DEFAULT_LOCALE",
                        format!("{l:?} is not a language code such as en or fr"),
                    ));
                }
            },
            token_cache: Duration::from_secs(
                env.parse_in("TOKEN_CACHE_SECONDS", 0..=3600)?.unwrap_or(60),
            ),
            entity_cache_statuses: env
                .parse_in("ENTITY_CACHE_STATUSES", 0..=10_000_000)?
                .unwrap_or(50_000),
            vapid: match (
                env.string("VAPID_PRIVATE_KEY")?,
                env.string("VAPID_PUBLIC_KEY")?,
            ) {
                (Some(private), Some(public)) => Some((private, public)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::new(
                        "VAPID_PRIVATE_KEY",
                        "VAPID_PRIVATE_KEY and VAPID_PUBLIC_KEY go together: set both or neither",
                    ));
                }
            },
        };
        let registrations = RegistrationConfig {
            mode: match env.string("REGISTRATIONS_MODE")?.as_deref() {
                None | Some("open") => RegistrationsMode::Open,
                Some("approved") => RegistrationsMode::Approved,
                Some("none") => RegistrationsMode::None,
                Some(other) => {
                    return Err(ConfigError::new(
                        "REGISTRATIONS_MODE",
                        format!("must be open, approved or none, not {other:?}"),
                    ));
                }
            },
            min_age: env
                .parse_in("REGISTRATIONS_MIN_AGE", 0..=120)?
                .unwrap_or(13),
            deletion_grace_days: env
                .parse_in("ACCOUNT_DELETION_GRACE_DAYS", 0..=3650)?
                .unwrap_or(30),
            rate_limits: env.boolean("RATE_LIMITS")?.unwrap_or(true),
            max_hash_wait: Duration::from_millis(
                env.parse_in("SIGNUP_MAX_WAIT_MS", 1..=600_000)?
                    .unwrap_or(2000),
            ),
            hash_threads: env.parse_in("PASSWORD_HASH_THREADS", 1..=1024)?,
        };

        let statuses = StatusesConfig {
            max_chars: env.parse_in("MAX_TOOT_CHARS", 1..=100_000)?.unwrap_or(500),
            fanout_threshold: env
                .parse_in("FANOUT_READ_TIME_THRESHOLD", 0..=i64::MAX)?
                .unwrap_or(100_000),
            active_days: env.parse_in("FANOUT_ACTIVE_DAYS", 1..=365)?.unwrap_or(7),
        };

        let streaming = StreamingConfig {
            max_subscriptions: env
                .parse_in("STREAMING_MAX_SUBSCRIPTIONS", 1..=10_000)?
                .unwrap_or(50),
            max_connections_per_account: env
                .parse_in("STREAMING_MAX_CONNECTIONS_PER_ACCOUNT", 1..=100_000)?
                .unwrap_or(50),
            client_buffer: env
                .parse_in("STREAMING_CLIENT_BUFFER", 1..=100_000)?
                .unwrap_or(256),
            ping_interval: Duration::from_secs(
                env.parse_in("STREAMING_PING_SECONDS", 1..=3600)?
                    .unwrap_or(15),
            ),
            sweep_interval: Duration::from_secs(
                env.parse_in("STREAMING_SWEEP_SECONDS", 1..=86_400)?
                    .unwrap_or(60),
            ),
        };

        Ok(Config {
            web,
            registrations,
            statuses,
            streaming,
            federation: FederationConfig {
                allowed_private_addresses: allowed_private_addresses(
                    &env.string("ALLOWED_PRIVATE_ADDRESSES")?.unwrap_or_default(),
                )?,
                key_pool_size: env.parse_in("KEY_POOL_SIZE", 0..=100_000)?.unwrap_or(100),
                authorized_fetch: env.boolean("AUTHORIZED_FETCH")?.unwrap_or(false),
                delivery_concurrency: env
                    .parse_in("DELIVERY_CONCURRENCY", 1..=4096)?
                    .unwrap_or(256),
                delivery_host_concurrency: env
                    .parse_in("DELIVERY_HOST_CONCURRENCY", 1..=4096)?
                    .unwrap_or(32),
                breaker_cooldown: std::time::Duration::from_secs(
                    env.parse_in("DELIVERY_BREAKER_COOLDOWN", 1..=3600)?
                        .unwrap_or(30),
                ),
                limited: env.boolean("LIMITED_FEDERATION_MODE")?.unwrap_or(false),
                show_domain_blocks: audience(env, "SHOW_DOMAIN_BLOCKS")?,
                show_domain_blocks_rationale: audience(env, "SHOW_DOMAIN_BLOCKS_RATIONALE")?,
            },
            media: MediaConfig {
                image_bytes: env
                    .parse_in("MAX_IMAGE_SIZE", 1024..=1 << 30)?
                    .unwrap_or(16 * 1024 * 1024),
                video_bytes: env
                    .parse_in("MAX_VIDEO_SIZE", 1024..=1 << 32)?
                    .unwrap_or(99 * 1024 * 1024),
                ffmpeg: env
                    .string("FFMPEG_BINARY")?
                    .map_or_else(|| PathBuf::from("ffmpeg"), PathBuf::from),
                ffprobe: env
                    .string("FFPROBE_BINARY")?
                    .map_or_else(|| PathBuf::from("ffprobe"), PathBuf::from),
                cdn_host: env.url("CDN_HOST", &["http", "https"])?,
                s3_alias_host: env
                    .string("S3_ALIAS_HOST")?
                    .map(|h| h.trim_end_matches('/').to_string()),
                s3_protocol: match env.string("S3_PROTOCOL")?.as_deref() {
                    None | Some("https") => "https".into(),
                    Some("http") => "http".into(),
                    Some(_) => {
                        return Err(ConfigError::new("S3_PROTOCOL", "must be http or https"));
                    }
                },
                cache_remote_on_arrival: match env.string("MEDIA_CACHE_REMOTE")?.as_deref() {
                    None | Some("arrival") => true,
                    Some("lazy") => false,
                    Some(_) => {
                        return Err(ConfigError::new(
                            "MEDIA_CACHE_REMOTE",
                            "must be arrival or lazy",
                        ));
                    }
                },
                cache_retention_days: env
                    .parse_in("MEDIA_CACHE_RETENTION_DAYS", 0..=36_500)?
                    .unwrap_or(0),
                unattached_hours: env
                    .parse_in("MEDIA_UNATTACHED_HOURS", 1..=87_600)?
                    .unwrap_or(24),
            },
            bind: env
                .parse::<IpAddr>("BIND")?
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: env.parse_in("PORT", 0..=65535)?,
            streaming_port: env.parse_in("STREAMING_PORT", 0..=65535)?.unwrap_or(4000),
            local_domain,
            web_domain,
            database,
            redis,
            amqp,
            storage,
            smtp,
            telemetry,
            shutdown_timeout: Duration::from_secs(
                env.parse_in("SHUTDOWN_TIMEOUT", 1..=3600)?.unwrap_or(25),
            ),
        })
    }
}

/// `disabled` (the default), `users` or `all`.
fn audience(env: &Env, var: &str) -> Result<Audience, ConfigError> {
    match env.string(var)?.as_deref() {
        None | Some("disabled") => Ok(Audience::Disabled),
        Some("users") => Ok(Audience::Users),
        Some("all") => Ok(Audience::All),
        Some(other) => Err(ConfigError::new(
            var,
            format!("must be disabled, users or all, not {other:?}"),
        )),
    }
}

fn allowed_private_addresses(value: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "ALLOWED_PRIVATE_ADDRESSES",
                        format!("{s:?} is not an address or CIDR range (e.g. 127.0.0.0/8,::1)"),
                    )
                })
        })
        .collect()
}

fn validate_domain(var: &'static str, domain: &str) -> Result<(), ConfigError> {
    let parsed = Url::parse(&format!("https://{domain}/"));
    match parsed {
        Ok(url)
            if url.host_str().is_some()
                && url.path() == "/"
                && url.username().is_empty()
                && !domain.contains('/') =>
        {
            Ok(())
        }
        _ => Err(ConfigError::new(
            var,
            format!("must be a bare domain such as example.com, not {domain:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_pairs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn only_database_url_is_required() {
        let config =
            Config::from_source(&env(&[("DATABASE_URL", "postgres://127.0.0.1/stampede")]))
                .unwrap();
        assert_eq!(config.local_domain, "localhost");
        assert_eq!(config.web_domain, "localhost");
        assert!(config.redis.is_none() && config.amqp.is_none());
        assert!(matches!(config.storage, StorageConfig::Local { .. }));
        assert_eq!(config.streaming_port, 4000);
        assert_eq!(config.port, None);

        let err = Config::from_source(&env(&[])).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let base = [("DATABASE_URL", "postgres://127.0.0.1/stampede")];
        let cases: &[(&str, &str)] = &[
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("DB_POOL", "0"),
            ("REDIS_URL", "http://127.0.0.1"),
            ("AMQP_URL", "not a url"),
            ("BIND", "localhost:3"),
            ("LOCAL_DOMAIN", "https://example.com/x"),
            ("S3_ENABLED", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("AMQP_QUEUE_PREFIX", "has space"),
        ];
        for (var, value) in cases {
            let mut vars = base.to_vec();
            vars.push((var, value));
            if var.starts_with("AMQP_QUEUE") {
                vars.push(("AMQP_URL", "amqp://127.0.0.1"));
            }
            let err = Config::from_source(&env(&vars)).unwrap_err();
            assert_eq!(&err.var, var, "{var}={value}: {err}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn a_cluster_of_brokers_and_a_read_replica() {
        let db = ("DATABASE_URL", "postgres://127.0.0.1/stampede");
        let config = Config::from_source(&env(&[db])).unwrap();
        assert!(config.database.replica_url.is_none());
        assert_eq!(config.database.replica_max_lag, Duration::from_millis(2000));

        let config = Config::from_source(&env(&[
            db,
            (
                "AMQP_URL",
                "amqp://u:p@mq-0:5672/%2f, amqp://u:p@mq-1:5672/%2f",
            ),
            ("REPLICA_DB_URL", "postgres://replica.example/stampede"),
            ("REPLICA_MAX_LAG_MS", "500"),
        ]))
        .unwrap();
        let amqp = config.amqp.unwrap();
        assert_eq!(amqp.urls.len(), 2);
        assert!(amqp.urls[1].contains("mq-1"));
        assert_eq!(amqp.queue_type, QueueType::Quorum);
        assert_eq!(config.database.replica_max_lag, Duration::from_millis(500));

        let classic = Config::from_source(&env(&[
            db,
            ("AMQP_URL", "amqp://127.0.0.1"),
            ("AMQP_QUEUE_TYPE", "classic"),
        ]))
        .unwrap();
        assert_eq!(classic.amqp.unwrap().queue_type, QueueType::Classic);

        let sentinel = Config::from_source(&env(&[
            db,
            ("REDIS_URL", "redis://:secret@primary/3"),
            ("REDIS_SENTINELS", "s-0:26379, s-1:26379"),
        ]))
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(sentinel.sentinels, ["s-0:26379", "s-1:26379"]);
        assert_eq!(sentinel.sentinel_master, "mymaster");

        for (var, value) in [
            ("REDIS_SENTINELS", "s-0"),
            ("REDIS_SENTINELS", "s-0:26379"),
            ("AMQP_URL", "amqp://mq-0,amqps://mq-1"),
            ("AMQP_URL", "amqp://mq-0,http://mq-1"),
            ("AMQP_URL", " , "),
            ("AMQP_QUEUE_TYPE", "mirrored"),
            ("REPLICA_DB_URL", "mysql://replica"),
            ("REPLICA_MAX_LAG_MS", "1"),
        ] {
            let mut vars = vec![db, (var, value)];
            if var == "AMQP_QUEUE_TYPE" {
                vars.push(("AMQP_URL", "amqp://127.0.0.1"));
            }
            let error = Config::from_source(&env(&vars)).unwrap_err();
            assert_eq!(error.var, var, "{var}={value}: {error}");
        }
    }

    #[test]
    fn tls_urls_and_their_certificate_authorities() {
        let dir = std::env::temp_dir().join(format!("stampede-config-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.join("key.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let ca = ca.display().to_string();
        let db = ("DATABASE_URL", "postgres://127.0.0.1/stampede");

        let config = Config::from_source(&env(&[
            db,
            ("REDIS_URL", "rediss://cache.example:6380/0"),
            ("REDIS_TLS_CA_FILE", &ca),
            ("AMQP_URL", "amqps://u:p@mq.example:5671/%2f"),
            ("AMQP_TLS_CA_FILE", &ca),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
        ]))
        .unwrap();
        assert!(
            config
                .redis
                .unwrap()
                .tls_ca
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(config.amqp.unwrap().tls_ca.is_some());
        assert!(config.telemetry.otlp_ca.is_some());

        // A CA for a plain URL, a missing file or one without a certificate is refused, named.
        let cases: &[(&str, &str, &str)] = &[
            ("REDIS_URL", "redis://127.0.0.1", "REDIS_TLS_CA_FILE"),
            ("AMQP_URL", "amqp://127.0.0.1", "AMQP_TLS_CA_FILE"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
        ];
        for (url_var, url, ca_var) in cases {
            let err = Config::from_source(&env(&[db, (url_var, url), (ca_var, &ca)])).unwrap_err();
            assert_eq!(&err.var, ca_var, "{err}");
            assert!(err.to_string().contains(url_var), "{err}");
        }
        let missing = dir.join("missing.pem").display().to_string();
        for path in [missing.as_str(), &not_pem.display().to_string()] {
            let err = Config::from_source(&env(&[
                db,
                ("REDIS_URL", "rediss://127.0.0.1"),
                ("REDIS_TLS_CA_FILE", path),
            ]))
            .unwrap_err();
            assert_eq!(err.var, "REDIS_TLS_CA_FILE", "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn s3_needs_its_bucket_and_credentials() {
        let err = Config::from_source(&env(&[
            ("DATABASE_URL", "postgres://127.0.0.1/stampede"),
            ("S3_ENABLED", "true"),
            ("S3_BUCKET", "media"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "AWS_ACCESS_KEY_ID");

        let config = Config::from_source(&env(&[
            ("DATABASE_URL", "postgres://127.0.0.1/stampede"),
            ("S3_ENABLED", "true"),
            ("S3_BUCKET", "media"),
            ("S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap();
        let StorageConfig::S3(s3) = config.storage else {
            panic!("expected S3")
        };
        assert!(
            s3.force_path_style,
            "a custom endpoint defaults to path style"
        );
        assert_eq!(s3.region, "us-east-1");
    }
}
