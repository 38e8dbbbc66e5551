-- Grouped notifications (Mastodon 4.3's /api/v2/notifications) and the notification policy with
-- its requests. One trigger decides both for every path that inserts a notification (the
-- API's interactions, follows, polls and the inbox), in the inserting transaction.

ALTER TABLE notifications
    ADD COLUMN group_key text,
    ADD COLUMN filtered  boolean NOT NULL DEFAULT false;
CREATE INDEX notifications_group ON notifications (account_id, group_key, id DESC)
    WHERE group_key IS NOT NULL;
CREATE INDEX notifications_filtered ON notifications (account_id, from_account_id, id DESC)
    WHERE filtered;

-- What a user does with notifications from people they may not want to hear from.
CREATE TABLE notification_policies (
    account_id            bigint      PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    for_not_following     text        NOT NULL DEFAULT 'accept',
    for_not_followers     text        NOT NULL DEFAULT 'accept',
    for_new_accounts      text        NOT NULL DEFAULT 'accept',
    for_private_mentions  text        NOT NULL DEFAULT 'filter',
    for_limited_accounts  text        NOT NULL DEFAULT 'filter',
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (for_not_following IN ('accept', 'filter', 'drop')
       AND for_not_followers IN ('accept', 'filter', 'drop')
       AND for_new_accounts IN ('accept', 'filter', 'drop')
       AND for_private_mentions IN ('accept', 'filter', 'drop')
       AND for_limited_accounts IN ('accept', 'filter', 'drop'))
);

-- Senders whose request the user accepted: the policy no longer applies to them.
CREATE TABLE notification_permissions (
    account_id       bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    from_account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, from_account_id)
);

-- Filtered mentions, one request per sender; the id is the first filtered notification's.
CREATE TABLE notification_requests (
    id                   bigint      PRIMARY KEY,
    account_id           bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    from_account_id      bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    last_status_id       bigint      REFERENCES statuses ON DELETE SET NULL,
    notifications_count  bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, from_account_id)
);
CREATE INDEX notification_requests_account ON notification_requests (account_id, id DESC);

-- The hour bucket each (recipient, kind[, status]) group last used: a group goes on while its
-- notifications come less than 12 hours after the bucket it started in (Mastodon's rule).
-- Rows older than a day are pruned.
CREATE TABLE notification_group_buckets (
    account_id  bigint      NOT NULL REFERENCES accounts ON DELETE CASCADE,
    prefix      text        NOT NULL,
    bucket      bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, prefix)
);

CREATE FUNCTION notifications_classify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    policy      notification_policies%ROWTYPE;
    following   boolean;
    follower    boolean;
    new_account boolean;
    unsolicited boolean := false;
    verdicts    text[] := ARRAY[]::text[];
    key_prefix  text;
    key_hour    bigint;
BEGIN
    -- Mastodon's filterable types; polls, edits and admin notices always come through.
    IF NEW.type IN ('mention', 'reblog', 'follow', 'follow_request', 'favourite')
       AND NOT EXISTS (SELECT 1 FROM notification_permissions
                       WHERE account_id = NEW.account_id AND from_account_id = NEW.from_account_id)
    THEN
        SELECT * INTO policy FROM notification_policies WHERE account_id = NEW.account_id;
        following := EXISTS (SELECT 1 FROM follows
                             WHERE account_id = NEW.account_id AND target_account_id = NEW.from_account_id);
        follower := EXISTS (SELECT 1 FROM follows
                            WHERE account_id = NEW.from_account_id AND target_account_id = NEW.account_id
                              AND created_at <= now() - interval '3 days');
        SELECT a.created_at > now() - interval '30 days' INTO new_account
        FROM accounts a WHERE a.id = NEW.from_account_id;
        IF NEW.type = 'mention' AND NOT following THEN
            -- A private mention is solicited when it answers the recipient's own post that
            -- mentioned the sender.
            SELECT s.visibility = 'direct' AND NOT EXISTS (
                       SELECT 1 FROM statuses p
                       WHERE p.id = s.in_reply_to_id AND p.account_id = NEW.account_id
                         AND EXISTS (SELECT 1 FROM mentions m
                                     WHERE m.status_id = p.id AND m.account_id = NEW.from_account_id))
            INTO unsolicited FROM statuses s WHERE s.id = NEW.status_id;
        END IF;
        IF NOT following THEN
            verdicts := verdicts || coalesce(policy.for_not_following, 'accept');
            IF new_account THEN
                verdicts := verdicts || coalesce(policy.for_new_accounts, 'accept');
            END IF;
            IF coalesce(unsolicited, false) THEN
                verdicts := verdicts || coalesce(policy.for_private_mentions, 'filter');
            END IF;
        END IF;
        IF NOT follower THEN
            verdicts := verdicts || coalesce(policy.for_not_followers, 'accept');
        END IF;
        IF 'drop' = ANY(verdicts) THEN
            RETURN NULL;
        END IF;
        NEW.filtered := 'filter' = ANY(verdicts);
    END IF;

    IF NOT NEW.filtered AND NEW.type IN ('favourite', 'reblog', 'follow', 'admin.sign_up') THEN
        key_prefix := CASE WHEN NEW.type IN ('favourite', 'reblog')
                       THEN NEW.type || '-' || coalesce(NEW.status_id::text, '')
                       ELSE NEW.type END;
        key_hour := floor(extract(epoch FROM NEW.created_at) / 3600)::bigint;
        INSERT INTO notification_group_buckets AS b (account_id, prefix, bucket)
        VALUES (NEW.account_id, key_prefix, key_hour)
        ON CONFLICT (account_id, prefix) DO UPDATE
            SET bucket = CASE WHEN EXCLUDED.bucket < b.bucket + 12 THEN b.bucket ELSE EXCLUDED.bucket END,
                updated_at = now()
        RETURNING b.bucket INTO key_hour;
        NEW.group_key := key_prefix || '-' || key_hour;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER notifications_classify BEFORE INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_classify();

CREATE FUNCTION notifications_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'mention' THEN
        INSERT INTO notification_requests AS r
            (id, account_id, from_account_id, last_status_id, notifications_count)
        VALUES (NEW.id, NEW.account_id, NEW.from_account_id, NEW.status_id, 1)
        ON CONFLICT (account_id, from_account_id) DO UPDATE
            SET last_status_id = EXCLUDED.last_status_id,
                notifications_count = r.notifications_count + 1,
                updated_at = now();
    ELSE
        UPDATE notification_requests SET notifications_count = notifications_count + 1, updated_at = now()
        WHERE account_id = NEW.account_id AND from_account_id = NEW.from_account_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER notifications_request AFTER INSERT ON notifications
    FOR EACH ROW WHEN (NEW.filtered) EXECUTE FUNCTION notifications_request();
