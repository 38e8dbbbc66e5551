-- Web Push: one subscription per access token (as in Mastodon), and the server's VAPID key when
-- the operator did not configure one (made on first use, kept here so every process signs with
-- the same key).
CREATE TABLE web_push_subscriptions (
    id               bigint      PRIMARY KEY,
    access_token_id  bigint      NOT NULL UNIQUE REFERENCES oauth_access_tokens ON DELETE CASCADE,
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    endpoint         text        NOT NULL,
    key_p256dh       text        NOT NULL,
    key_auth         text        NOT NULL,
    -- RFC 8291 (aes128gcm) when the client asked for `standard`; the older aesgcm otherwise.
    standard         boolean     NOT NULL DEFAULT false,
    alerts           jsonb       NOT NULL DEFAULT '{}',
    policy           text        NOT NULL DEFAULT 'all'
                                 CHECK (policy IN ('all', 'followed', 'follower', 'none')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_push_subscriptions_account ON web_push_subscriptions (account_id);

CREATE TABLE vapid_key (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    pkcs8       bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
