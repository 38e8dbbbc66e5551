-- Custom emojis: this server's (added by the operator, stored in media storage) and other
-- servers' (learnt from the Emoji tags of their statuses and profiles, linked where they live).
CREATE TABLE custom_emojis (
    id                 bigint      PRIMARY KEY,
    shortcode          text        NOT NULL,
    domain             text,                     -- NULL: this server's
    image_key          text,                     -- local: the original, in storage
    static_key         text,                     -- local: the still PNG, in storage
    image_remote_url   text,                     -- remote: where the image lives
    uri                text,                     -- remote: the Emoji object's id
    visible_in_picker  boolean     NOT NULL DEFAULT true,
    category           text,
    disabled           boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (shortcode ~ '^[a-zA-Z0-9_]{2,}$')
);
CREATE UNIQUE INDEX custom_emojis_shortcode ON custom_emojis (shortcode, coalesce(domain, ''));

-- Moved by every change: each process keeps the emojis in memory and reloads them only when
-- this has moved (a sequence is read without locks, and a rolled-back change only costs a
-- reload).
CREATE SEQUENCE custom_emojis_version;
CREATE FUNCTION custom_emojis_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('custom_emojis_version');
    RETURN NULL;
END $$;
CREATE TRIGGER custom_emojis_changed AFTER INSERT OR UPDATE OR DELETE ON custom_emojis
    FOR EACH STATEMENT EXECUTE FUNCTION custom_emojis_changed();
