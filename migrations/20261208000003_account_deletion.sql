-- Account deletion (issue 19): a local account's owner (or a moderator's suspension) asks for
-- its deletion; after the grace period the delivery service purges everything the account
-- left on this server, and tells the other servers. What stays is a tombstone: the row with
-- its username (so nobody takes the name other servers remember) and its key (so the Delete
-- can still be signed), marked `deleted_at`.

ALTER TABLE accounts ADD COLUMN deleted_at timestamptz;

CREATE TABLE account_deletion_requests (
    account_id  bigint      PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    -- Who asked: the owner (`self`) or a moderator's suspension (`suspension`).
    reason      text        NOT NULL CHECK (reason IN ('self', 'suspension')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    due_at      timestamptz NOT NULL
);
CREATE INDEX account_deletion_requests_due ON account_deletion_requests (due_at);
