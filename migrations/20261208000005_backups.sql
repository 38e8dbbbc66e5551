-- Data export archives (issue 19, GDPR access): built by the media service, stored under an
-- unguessable key, downloaded by their owner.
CREATE TABLE backups (
    id           bigint      PRIMARY KEY,
    account_id   bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    progress     integer     NOT NULL DEFAULT 0,
    storage_key  text,
    size         bigint,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX backups_account ON backups (account_id, id DESC);

-- CSV imports (follows, blocks, mutes, domain blocks, lists, bookmarks), worked through in the
-- background by the delivery service.
CREATE TABLE bulk_imports (
    id               bigint      PRIMARY KEY,
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    kind             text        NOT NULL,
    total_items      integer     NOT NULL,
    processed_items  integer     NOT NULL DEFAULT 0,
    imported_items   integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX bulk_imports_account ON bulk_imports (account_id, id DESC);

CREATE TABLE bulk_import_rows (
    import_id  bigint  NOT NULL REFERENCES bulk_imports ON DELETE CASCADE,
    position   bigint  NOT NULL,
    data       jsonb   NOT NULL,
    processed  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (import_id, position)
);
