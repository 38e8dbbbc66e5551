-- Moderation, first part: moderators' handling of reports, account actions with the warnings
-- they leave, and the audit log of every moderation action.
ALTER TABLE reports
    ADD COLUMN assigned_account_id        bigint REFERENCES accounts ON DELETE SET NULL,
    ADD COLUMN action_taken_by_account_id bigint REFERENCES accounts ON DELETE SET NULL;

-- Media of a sensitized account's statuses is shown behind a warning.
ALTER TABLE accounts ADD COLUMN sensitized_at timestamptz;

-- What a moderator did to an account, as the account is told (Mastodon's account warnings).
CREATE TABLE account_warnings (
    id                 bigint      PRIMARY KEY,
    account_id         bigint      REFERENCES accounts ON DELETE SET NULL,  -- the moderator
    target_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    action             text        NOT NULL CHECK (action IN ('none', 'disable', 'sensitive', 'silence', 'suspend')),
    text               text        NOT NULL DEFAULT '',
    report_id          bigint      REFERENCES reports ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_warnings_target ON account_warnings (target_account_id, id DESC);

-- Every moderation action: who did what to which record.
CREATE TABLE admin_action_logs (
    id                bigint      PRIMARY KEY,
    account_id        bigint      REFERENCES accounts ON DELETE SET NULL,
    action            text        NOT NULL,
    target_type       text        NOT NULL,
    target_id         bigint      NOT NULL,
    human_identifier  text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_action_logs_recent ON admin_action_logs (id DESC);

-- The view expands a.* when it is made: make it again so that it has the new column.
DROP VIEW accounts_with_stats;
CREATE VIEW accounts_with_stats AS
SELECT a.*,
       coalesce(s.statuses_count, 0)  AS statuses_count,
       coalesce(s.following_count, 0) AS following_count,
       coalesce(s.followers_count, 0) AS followers_count,
       s.last_status_at
FROM accounts a LEFT JOIN account_stats s ON s.account_id = a.id;
