-- Filters (v2): a title, the contexts it applies in, what clients do with a match, and the
-- keywords and statuses that match. Expired filters stay (Mastodon lists them) but do not apply.
CREATE TABLE filters (
    id          bigint      PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    title       text        NOT NULL,
    context     text[]      NOT NULL,
    action      text        NOT NULL CHECK (action IN ('warn', 'hide', 'blur')),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX filters_account ON filters (account_id);

CREATE TABLE filter_keywords (
    id          bigint      PRIMARY KEY,
    filter_id   bigint      NOT NULL REFERENCES filters ON DELETE CASCADE,
    keyword     text        NOT NULL,
    whole_word  boolean     NOT NULL DEFAULT true
);
CREATE INDEX filter_keywords_filter ON filter_keywords (filter_id);

CREATE TABLE filter_statuses (
    id          bigint      PRIMARY KEY,
    filter_id   bigint      NOT NULL REFERENCES filters ON DELETE CASCADE,
    status_id   bigint      NOT NULL REFERENCES statuses ON DELETE CASCADE,
    UNIQUE (filter_id, status_id)
);
