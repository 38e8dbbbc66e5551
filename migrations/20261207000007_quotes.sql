-- Quote posts (Mastodon 4.5): who may quote a status, and the quotes made. Quotes are local
-- for now: the quoted status and the quoting one are both on this server's database (remote
-- statuses can be quoted by local accounts; FEP-044f quote requests are not exchanged yet).
ALTER TABLE statuses
    ADD COLUMN quote_approval_policy text NOT NULL DEFAULT 'public'
        CHECK (quote_approval_policy IN ('public', 'followers', 'nobody'));

CREATE TABLE quotes (
    id                 bigint      PRIMARY KEY,
    status_id          bigint      NOT NULL UNIQUE REFERENCES statuses ON DELETE CASCADE,  -- quoting
    quoted_status_id   bigint      REFERENCES statuses ON DELETE SET NULL,
    quoted_account_id  bigint      REFERENCES accounts ON DELETE SET NULL,
    state              text        NOT NULL CHECK (state IN ('pending', 'accepted', 'rejected', 'revoked')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quotes_quoted ON quotes (quoted_status_id, id DESC) WHERE quoted_status_id IS NOT NULL;
