-- Accounts, their login users, OAuth applications and tokens, invites, and registration settings.

CREATE TABLE accounts (
    id             bigint      PRIMARY KEY,           -- snowflake
    username       text        NOT NULL,
    domain         text,                              -- NULL: a local account
    display_name   text        NOT NULL DEFAULT '',
    note           text        NOT NULL DEFAULT '',   -- as the user typed it; rendered on read
    locked         boolean     NOT NULL DEFAULT false,
    bot            boolean     NOT NULL DEFAULT false,
    discoverable   boolean,
    indexable      boolean     NOT NULL DEFAULT false,
    fields         jsonb       NOT NULL DEFAULT '[]',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    suspended_at   timestamptz
);
-- Usernames are unique case-insensitively, per domain.
CREATE UNIQUE INDEX accounts_username_domain ON accounts (lower(username), (coalesce(lower(domain), '')));

CREATE TABLE invites (
    id          bigserial   PRIMARY KEY,
    code        text        NOT NULL UNIQUE,
    max_uses    integer,                              -- NULL: unlimited
    uses        integer     NOT NULL DEFAULT 0,
    expires_at  timestamptz,
    autofollow  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oauth_applications (
    id                  bigint      PRIMARY KEY,
    name                text        NOT NULL,
    website             text,
    redirect_uris       text[]      NOT NULL,
    scopes              text        NOT NULL,
    client_id           text        NOT NULL UNIQUE,
    client_secret_hash  text        NOT NULL,         -- sha256, hex
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                        bigint      PRIMARY KEY,
    account_id                bigint      NOT NULL UNIQUE REFERENCES accounts ON DELETE CASCADE,
    email                     text        NOT NULL,
    password_hash             text        NOT NULL,   -- argon2id PHC string
    role                      text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'moderator', 'admin')),
    approved                  boolean     NOT NULL,
    confirmed_at              timestamptz,
    confirmation_token_hash   text UNIQUE,
    confirmation_sent_at      timestamptz,
    reset_token_hash          text UNIQUE,
    reset_sent_at             timestamptz,
    locale                    text,
    reason                    text,
    invite_id                 bigint      REFERENCES invites,
    sign_up_ip                inet,
    created_by_application_id bigint      REFERENCES oauth_applications ON DELETE SET NULL,
    source_privacy            text        NOT NULL DEFAULT 'public'
                              CHECK (source_privacy IN ('public', 'unlisted', 'private', 'direct')),
    source_sensitive          boolean     NOT NULL DEFAULT false,
    source_language           text,
    disabled                  boolean     NOT NULL DEFAULT false,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_pending ON users (created_at) WHERE NOT approved;

CREATE TABLE oauth_access_grants (
    code_hash              text        PRIMARY KEY,
    application_id         bigint      NOT NULL REFERENCES oauth_applications ON DELETE CASCADE,
    account_id             bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    redirect_uri           text        NOT NULL,
    scopes                 text        NOT NULL,
    code_challenge         text,
    code_challenge_method  text,
    expires_at             timestamptz NOT NULL,
    used_at                timestamptz
);

CREATE TABLE oauth_access_tokens (
    id              bigint      PRIMARY KEY,
    token_hash      text        NOT NULL UNIQUE,      -- sha256 of the bearer token, hex
    application_id  bigint      REFERENCES oauth_applications ON DELETE CASCADE,
    account_id      bigint      REFERENCES accounts ON DELETE CASCADE,   -- NULL: client credentials
    scopes          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX oauth_access_tokens_account ON oauth_access_tokens (account_id) WHERE revoked_at IS NULL;

-- Browser sessions of the HTML pages (sign-in, OAuth consent).
CREATE TABLE web_sessions (
    id_hash     text        PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_domain_blocks (
    domain      text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE server_rules (
    id          bigserial   PRIMARY KEY,
    text        text        NOT NULL,
    hint        text        NOT NULL DEFAULT '',
    position    integer     NOT NULL DEFAULT 0
);
