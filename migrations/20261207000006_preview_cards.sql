-- Link previews: the first outside link of a status is fetched once (by the fetch workers) and
-- its OpenGraph description kept as a card; statuses that share a link share its card, which
-- is also what link trends and the link timeline count.
CREATE TABLE preview_cards (
    id                bigint      PRIMARY KEY,
    url               text        NOT NULL UNIQUE,
    title             text        NOT NULL DEFAULT '',
    description       text        NOT NULL DEFAULT '',
    type              text        NOT NULL DEFAULT 'link' CHECK (type IN ('link', 'photo', 'video', 'rich')),
    author_name       text        NOT NULL DEFAULT '',
    author_url        text        NOT NULL DEFAULT '',
    provider_name     text        NOT NULL DEFAULT '',
    provider_url      text        NOT NULL DEFAULT '',
    image_url         text,
    width             integer     NOT NULL DEFAULT 0,
    height            integer     NOT NULL DEFAULT 0,
    embed_url         text        NOT NULL DEFAULT '',
    language          text,
    published_at      timestamptz,
    fetched_at        timestamptz,
    -- Why the last fetch gave no card (an error page, not HTML, refused by the guard).
    failure           text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE preview_cards_statuses (
    status_id        bigint NOT NULL PRIMARY KEY REFERENCES statuses ON DELETE CASCADE,
    preview_card_id  bigint NOT NULL REFERENCES preview_cards ON DELETE CASCADE
);
CREATE INDEX preview_cards_statuses_card ON preview_cards_statuses (preview_card_id, status_id DESC);
