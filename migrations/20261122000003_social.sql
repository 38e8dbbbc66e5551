-- Statuses, the social graph, timelines' sources and notifications.

-- Each process claims a node number for the ids it makes (crates/core/src/id.rs), so processes
-- making ids in the same millisecond never collide.
CREATE SEQUENCE id_nodes MINVALUE 0 MAXVALUE 1023 START 0 CYCLE;

-- Counters shown on accounts, kept in the same transaction as the rows they count.
CREATE TABLE account_stats (
    account_id       bigint      PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    statuses_count   bigint      NOT NULL DEFAULT 0,
    following_count  bigint      NOT NULL DEFAULT 0,
    followers_count  bigint      NOT NULL DEFAULT 0,
    last_status_at   timestamptz
);
CREATE INDEX account_stats_followers ON account_stats (followers_count);

-- Accounts with their counters: what the API renders.
CREATE VIEW accounts_with_stats AS
SELECT a.*,
       coalesce(s.statuses_count, 0)  AS statuses_count,
       coalesce(s.following_count, 0) AS following_count,
       coalesce(s.followers_count, 0) AS followers_count,
       s.last_status_at
FROM accounts a LEFT JOIN account_stats s ON s.account_id = a.id;

-- When a user last used the API: home feeds are fanned out only to users active in the last
-- seven days, and rebuilt from here when they return.
ALTER TABLE users ADD COLUMN last_active_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX users_active ON users (account_id, last_active_at);

CREATE TABLE statuses (
    id                      bigint      PRIMARY KEY,        -- snowflake: ordered by time
    account_id              bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    application_id          bigint      REFERENCES oauth_applications ON DELETE SET NULL,
    text                    text        NOT NULL DEFAULT '', -- as typed
    content                 text        NOT NULL DEFAULT '', -- sanitised HTML
    spoiler_text            text        NOT NULL DEFAULT '',
    sensitive               boolean     NOT NULL DEFAULT false,
    visibility              text        NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private', 'direct')),
    language                text,
    in_reply_to_id          bigint      REFERENCES statuses ON DELETE SET NULL,
    in_reply_to_account_id  bigint      REFERENCES accounts ON DELETE SET NULL,
    reblog_of_id            bigint      REFERENCES statuses ON DELETE CASCADE,
    conversation_id         bigint      NOT NULL,           -- the thread's root id
    replies_count           bigint      NOT NULL DEFAULT 0,
    reblogs_count           bigint      NOT NULL DEFAULT 0,
    favourites_count        bigint      NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    edited_at               timestamptz,
    search                  tsvector    GENERATED ALWAYS AS
                            (to_tsvector('simple', spoiler_text || ' ' || text)) STORED
);
CREATE INDEX statuses_account ON statuses (account_id, id DESC);
CREATE INDEX statuses_public ON statuses (id DESC) WHERE visibility = 'public' AND reblog_of_id IS NULL;
CREATE INDEX statuses_reply ON statuses (in_reply_to_id) WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX statuses_reblog ON statuses (reblog_of_id, account_id) WHERE reblog_of_id IS NOT NULL;
CREATE UNIQUE INDEX statuses_one_reblog ON statuses (account_id, reblog_of_id) WHERE reblog_of_id IS NOT NULL;
CREATE INDEX statuses_search ON statuses USING gin (search);

CREATE TABLE status_edits (
    id            bigserial   PRIMARY KEY,
    status_id     bigint      NOT NULL REFERENCES statuses ON DELETE CASCADE,
    text          text        NOT NULL,
    content       text        NOT NULL,
    spoiler_text  text        NOT NULL,
    sensitive     boolean     NOT NULL,
    poll_options  jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_edits_status ON status_edits (status_id, id);

CREATE TABLE mentions (
    status_id   bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (status_id, account_id)
);
CREATE INDEX mentions_account ON mentions (account_id, status_id);

CREATE TABLE tags (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,                  -- as first written
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tags_name ON tags (lower(name));

CREATE TABLE statuses_tags (
    tag_id     bigint NOT NULL REFERENCES tags ON DELETE CASCADE,
    status_id  bigint NOT NULL REFERENCES statuses ON DELETE CASCADE,
    PRIMARY KEY (tag_id, status_id)
);
CREATE INDEX statuses_tags_status ON statuses_tags (status_id);

CREATE TABLE tag_follows (
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    tag_id      bigint NOT NULL REFERENCES tags ON DELETE CASCADE,
    PRIMARY KEY (account_id, tag_id)
);

-- An accepted follow. `id` orders the followers/following lists.
CREATE TABLE follows (
    id                 bigint      PRIMARY KEY,
    account_id         bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    show_reblogs       boolean     NOT NULL DEFAULT true,
    notify             boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, target_account_id)
);
CREATE INDEX follows_target ON follows (target_account_id, account_id);

CREATE TABLE follow_requests (
    id                 bigint      PRIMARY KEY,
    account_id         bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    show_reblogs       boolean     NOT NULL DEFAULT true,
    notify             boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, target_account_id)
);
CREATE INDEX follow_requests_target ON follow_requests (target_account_id, id);

CREATE TABLE blocks (
    id                 bigint      PRIMARY KEY,
    account_id         bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, target_account_id)
);
CREATE INDEX blocks_target ON blocks (target_account_id, account_id);

CREATE TABLE mutes (
    id                  bigint      PRIMARY KEY,
    account_id          bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id   bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    hide_notifications  boolean     NOT NULL DEFAULT true,
    expires_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, target_account_id)
);

CREATE TABLE conversation_mutes (
    account_id       bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    conversation_id  bigint NOT NULL,
    PRIMARY KEY (account_id, conversation_id)
);

CREATE TABLE favourites (
    id          bigint      PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id   bigint      NOT NULL REFERENCES statuses ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, status_id)
);
CREATE INDEX favourites_status ON favourites (status_id, id);

CREATE TABLE bookmarks (
    id          bigint      PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id   bigint      NOT NULL REFERENCES statuses ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, status_id)
);

CREATE TABLE status_pins (
    id          bigint      PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id   bigint      NOT NULL REFERENCES statuses ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, status_id)
);

CREATE TABLE polls (
    id           bigint      PRIMARY KEY,
    status_id    bigint      NOT NULL UNIQUE REFERENCES statuses ON DELETE CASCADE,
    options      text[]      NOT NULL,
    multiple     boolean     NOT NULL DEFAULT false,
    hide_totals  boolean     NOT NULL DEFAULT false,
    expires_at   timestamptz NOT NULL,
    notified     boolean     NOT NULL DEFAULT false   -- poll-ended notifications sent
);
CREATE INDEX polls_due ON polls (expires_at) WHERE NOT notified;

CREATE TABLE poll_votes (
    poll_id     bigint      NOT NULL REFERENCES polls ON DELETE CASCADE,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    choice      integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, account_id, choice)
);

CREATE TABLE scheduled_statuses (
    id            bigint      PRIMARY KEY,
    account_id    bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    application_id bigint     REFERENCES oauth_applications ON DELETE SET NULL,
    scheduled_at  timestamptz NOT NULL,
    params        jsonb       NOT NULL
);
CREATE INDEX scheduled_statuses_due ON scheduled_statuses (scheduled_at);

-- Idempotency-Key → the status it created (for a day).
CREATE TABLE idempotency_keys (
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    key         text        NOT NULL,
    status_id   bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

CREATE TABLE notifications (
    id               bigint      PRIMARY KEY,
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,  -- recipient
    from_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    type             text        NOT NULL,
    status_id        bigint      REFERENCES statuses ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_account ON notifications (account_id, id DESC);
-- One notification per (recipient, kind, actor, status): a repeated favourite does not repeat it.
CREATE UNIQUE INDEX notifications_once ON notifications
    (account_id, type, from_account_id, coalesce(status_id, 0));

CREATE TABLE lists (
    id              bigint      PRIMARY KEY,
    account_id      bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    title           text        NOT NULL,
    replies_policy  text        NOT NULL DEFAULT 'list' CHECK (replies_policy IN ('followed', 'list', 'none')),
    exclusive       boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lists_account ON lists (account_id);

CREATE TABLE list_accounts (
    list_id     bigint NOT NULL REFERENCES lists ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (list_id, account_id)
);
CREATE INDEX list_accounts_account ON list_accounts (account_id);

CREATE TABLE markers (
    account_id    bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    timeline      text        NOT NULL CHECK (timeline IN ('home', 'notifications')),
    last_read_id  bigint      NOT NULL,
    version       integer     NOT NULL DEFAULT 1,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, timeline)
);

-- Direct-message threads as each participant sees them.
CREATE TABLE account_conversations (
    id               bigint      PRIMARY KEY,
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    conversation_id  bigint      NOT NULL,
    participant_ids  bigint[]    NOT NULL,
    last_status_id   bigint      NOT NULL,
    unread           boolean     NOT NULL DEFAULT false,
    UNIQUE (account_id, conversation_id)
);
CREATE INDEX account_conversations_recent ON account_conversations (account_id, last_status_id DESC);

-- Who may see a status is not a function here: see crates/social/src/visibility.rs, whose
-- predicates every query embeds (a SQL function with subqueries is never inlined, and calling
-- one per row cost ~0.4 ms a row).
