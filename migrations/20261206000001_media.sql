-- Media attachments: uploads of local accounts and media of remote statuses.
--
-- A local upload is stored as it came (`upload_key`), then the media service makes its variants
-- (`file_key`, `small_key`) and marks it ready. A remote attachment starts with `remote_url`
-- only; caching it fills the same columns. Media belongs to its uploader (`account_id`) until it
-- is attached to a status, after which it lives and dies with the status.
CREATE TABLE media_attachments (
    id             bigint      PRIMARY KEY,            -- snowflake
    account_id     bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    status_id      bigint      REFERENCES statuses ON DELETE SET NULL,
    position       smallint    NOT NULL DEFAULT 0,     -- order within the status
    type           text        NOT NULL CHECK (type IN ('image', 'gifv', 'video', 'audio', 'unknown')),
    state          text        NOT NULL DEFAULT 'processing'
                               CHECK (state IN ('processing', 'ready', 'failed', 'remote')),
    error          text,                                -- why processing failed (shown as the 422)
    content_type   text,                                -- of the processed original
    upload_key     text,                                -- the bytes as uploaded, until processed
    file_key       text,
    small_key      text,
    thumbnail_key  text,                                -- a custom preview the uploader gave
    file_size      bigint,
    meta           jsonb       NOT NULL DEFAULT '{}',
    description    text        NOT NULL DEFAULT '',
    focus_x        real,
    focus_y        real,
    blurhash       text,
    remote_url     text,                                -- remote: where the file lives
    preview_remote_url text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_attachments_status ON media_attachments (status_id, position) WHERE status_id IS NOT NULL;
-- Unattached uploads (and the media of deleted statuses, kept a while for "delete and
-- redraft"), for the cleanup of orphans: `updated_at` is when it was last attached or detached.
CREATE INDEX media_attachments_unattached ON media_attachments (updated_at) WHERE status_id IS NULL;
-- Cached remote files, for `stampede admin media remove --days N`.
CREATE INDEX media_attachments_cached_remote ON media_attachments (created_at)
    WHERE remote_url IS NOT NULL AND file_key IS NOT NULL;

-- What an edit showed: the attachments of each revision.
ALTER TABLE status_edits ADD COLUMN media_attachment_ids bigint[] NOT NULL DEFAULT '{}';

-- Avatars and headers: the stored (local, or cached remote) file and, for remote accounts,
-- where the original lives.
ALTER TABLE accounts
    ADD COLUMN avatar_key text,
    ADD COLUMN avatar_remote_url text,
    ADD COLUMN header_key text,
    ADD COLUMN header_remote_url text;

-- Objects the storage still holds but nothing references any more (a replaced avatar, a
-- deleted status's files): removed by the media service, so a failed delete is retried and a
-- rolled-back transaction removes nothing.
CREATE TABLE storage_garbage (
    key         text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The view expands a.* when it is made: make it again so that it has the new columns.
DROP VIEW accounts_with_stats;
CREATE VIEW accounts_with_stats AS
SELECT a.*,
       coalesce(s.statuses_count, 0)  AS statuses_count,
       coalesce(s.following_count, 0) AS following_count,
       coalesce(s.followers_count, 0) AS followers_count,
       s.last_status_at
FROM accounts a LEFT JOIN account_stats s ON s.account_id = a.id;
