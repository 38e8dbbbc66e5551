-- Profile settings of Mastodon 4.6's /api/v1/profile. hide_collections is enforced (follower and
-- following lists are empty to everyone but the owner); the show_* switches and the image
-- descriptions are the owner's preferences for clients' profile pages; attribution_domains
-- lists the sites allowed to credit the account in link previews.
ALTER TABLE accounts
    ADD COLUMN avatar_description  text    NOT NULL DEFAULT '',
    ADD COLUMN header_description   text    NOT NULL DEFAULT '',
    ADD COLUMN hide_collections     boolean NOT NULL DEFAULT false,
    ADD COLUMN show_media           boolean NOT NULL DEFAULT true,
    ADD COLUMN show_media_replies   boolean NOT NULL DEFAULT true,
    ADD COLUMN show_featured        boolean NOT NULL DEFAULT true,
    ADD COLUMN attribution_domains  text[]  NOT NULL DEFAULT '{}';

-- The view expands a.* when it is made: make it again so that it has the new columns.
DROP VIEW accounts_with_stats;
CREATE VIEW accounts_with_stats AS
SELECT a.*,
       coalesce(s.statuses_count, 0)  AS statuses_count,
       coalesce(s.following_count, 0) AS following_count,
       coalesce(s.followers_count, 0) AS followers_count,
       s.last_status_at
FROM accounts a LEFT JOIN account_stats s ON s.account_id = a.id;
