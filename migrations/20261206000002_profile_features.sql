-- What an account shows on its profile besides statuses, and keeps for itself.

-- Private notes on other accounts (Relationship.note).
CREATE TABLE account_notes (
    account_id         bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    comment            text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, target_account_id)
);

-- Accounts featured on a profile (endorsements). `id` orders and pages the list.
CREATE TABLE account_pins (
    id                 bigint      PRIMARY KEY,
    account_id         bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    UNIQUE (account_id, target_account_id)
);

-- Hashtags featured on a profile.
CREATE TABLE featured_tags (
    id          bigint      PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    tag_id      bigint      NOT NULL REFERENCES tags ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, tag_id)
);

-- Follow suggestions an account dismissed (`DELETE /api/v1/suggestions/:account_id`).
CREATE TABLE suggestion_dismissals (
    account_id         bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    target_account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (account_id, target_account_id)
);
