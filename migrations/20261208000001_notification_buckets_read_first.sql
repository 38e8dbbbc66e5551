-- Notification grouping without a hot row (issue 20: the migration-day regression).
--
-- notifications_classify upserted the (recipient, prefix) bucket row on every grouped
-- notification, so every follow, favourite or boost of one popular account took the same row
-- lock until its transaction committed: concurrent follows of one account queued behind each
-- other while holding request connections. The bucket only changes once per 12 hours, so the
-- trigger now reads it and writes only when a new bucket starts. The pruning in the delivery
-- service deletes rows a day after their last write, which is after their 12 hours in any case.

CREATE OR REPLACE FUNCTION notifications_classify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    policy      notification_policies%ROWTYPE;
    following   boolean;
    follower    boolean;
    new_account boolean;
    limited     boolean;
    unsolicited boolean := false;
    verdicts    text[] := ARRAY[]::text[];
    key_prefix  text;
    key_hour    bigint;
    current_bucket bigint;
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
        SELECT a.created_at > now() - interval '30 days', a.silenced_at IS NOT NULL
        INTO new_account, limited
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
            IF limited THEN
                verdicts := verdicts || coalesce(policy.for_limited_accounts, 'filter');
            END IF;
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
        -- Read first: within a bucket's 12 hours the row is only read, so concurrent
        -- notifications to one popular account do not queue on its row lock. Only the first
        -- notification of a new bucket writes (and the upsert settles a race between two).
        SELECT b.bucket INTO current_bucket FROM notification_group_buckets b
        WHERE b.account_id = NEW.account_id AND b.prefix = key_prefix;
        IF current_bucket IS NOT NULL AND key_hour < current_bucket + 12 THEN
            key_hour := current_bucket;
        ELSE
            INSERT INTO notification_group_buckets AS b (account_id, prefix, bucket)
            VALUES (NEW.account_id, key_prefix, key_hour)
            ON CONFLICT (account_id, prefix) DO UPDATE
                SET bucket = CASE WHEN EXCLUDED.bucket < b.bucket + 12 THEN b.bucket ELSE EXCLUDED.bucket END,
                    updated_at = now()
            RETURNING b.bucket INTO key_hour;
        END IF;
        NEW.group_key := key_prefix || '-' || key_hour;
    END IF;
    RETURN NEW;
END $$;
