-- Federation, part two: accounts and statuses from other servers, and the activities that
-- linked them.

ALTER TABLE accounts
    ADD COLUMN uri              text,           -- remote: the actor's id
    ADD COLUMN url              text,           -- remote: its profile page
    ADD COLUMN inbox_url        text,
    ADD COLUMN shared_inbox_url text,
    ADD COLUMN followers_url    text,
    ADD COLUMN fetched_at       timestamptz;    -- remote: when its actor document was read
CREATE UNIQUE INDEX accounts_uri ON accounts (uri) WHERE uri IS NOT NULL;

-- The view expands a.* when it is made: make it again so that it has the new columns.
DROP VIEW accounts_with_stats;
CREATE VIEW accounts_with_stats AS
SELECT a.*,
       coalesce(s.statuses_count, 0)  AS statuses_count,
       coalesce(s.following_count, 0) AS following_count,
       coalesce(s.followers_count, 0) AS followers_count,
       s.last_status_at
FROM accounts a LEFT JOIN account_stats s ON s.account_id = a.id;

ALTER TABLE statuses
    ADD COLUMN uri text,                        -- remote: the object's id
    ADD COLUMN url text;                        -- remote: its page
CREATE UNIQUE INDEX statuses_uri ON statuses (uri) WHERE uri IS NOT NULL;

-- The Follow activity's id: ours for a follow we asked for, theirs for one we were asked.
ALTER TABLE follow_requests ADD COLUMN uri text;
ALTER TABLE follows ADD COLUMN uri text;

-- Inbound activities already applied, by id: a redelivered activity changes nothing.
CREATE TABLE inbox_activities (
    id          text        PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
