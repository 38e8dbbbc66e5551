-- Announcements from the operator, the instance's legal texts, people's own domain blocks and
-- their reports.

CREATE TABLE announcements (
    id            bigint      PRIMARY KEY,
    text          text        NOT NULL,   -- as the operator wrote it
    content       text        NOT NULL,   -- rendered HTML
    starts_at     timestamptz,
    ends_at       timestamptz,
    all_day       boolean     NOT NULL DEFAULT false,
    published_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at)
);

CREATE TABLE announcement_dismissals (
    announcement_id  bigint      NOT NULL REFERENCES announcements ON DELETE CASCADE,
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (announcement_id, account_id)
);

CREATE TABLE announcement_reactions (
    announcement_id  bigint      NOT NULL REFERENCES announcements ON DELETE CASCADE,
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    name             text        NOT NULL,   -- a Unicode emoji or a local custom emoji's shortcode
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (announcement_id, account_id, name)
);

-- The privacy policy the operator wrote (none: the built-in one is shown).
CREATE TABLE privacy_policy (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    text        text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Terms of service, one version per effective date (Mastodon 4.4).
CREATE TABLE terms_of_service (
    id              bigint      PRIMARY KEY,
    text            text        NOT NULL,
    changelog       text        NOT NULL DEFAULT '',
    effective_date  date        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Domains a person hides: their accounts' statuses and notifications, and follows both ways.
CREATE TABLE account_domain_blocks (
    id          bigint      PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    domain      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, domain)
);

-- Reports from users to the moderators (issue 19 adds the moderators' side).
CREATE TABLE reports (
    id                 bigint      PRIMARY KEY,
    account_id         bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,  -- reporter
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_ids         bigint[]    NOT NULL DEFAULT '{}',
    rule_ids           bigint[]    NOT NULL DEFAULT '{}',
    category           text        NOT NULL DEFAULT 'other'
                                   CHECK (category IN ('spam', 'legal', 'violation', 'other')),
    comment            text        NOT NULL DEFAULT '',
    forwarded          boolean     NOT NULL DEFAULT false,
    action_taken_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_unresolved ON reports (id DESC) WHERE action_taken_at IS NULL;
CREATE INDEX reports_target ON reports (target_account_id);

-- Accounts by domain: a domain block's effects, and the streaming service's relations.
CREATE INDEX accounts_domain ON accounts (domain) WHERE domain IS NOT NULL;
