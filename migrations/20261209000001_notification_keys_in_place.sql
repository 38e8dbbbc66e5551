-- Notifications that arrive classified skip the classification trigger (issue 20: the
-- migration-day regression).
--
-- A follow, favourite or boost to someone under Mastodon's default policy, from a sender who is
-- not limited, while the recipient's group bucket is current, cannot be filtered and takes the
-- bucket's key: the INSERT computes that key itself (`notification::group_key_in_place`), as
-- part of its own plan. The trigger now fires only for rows without a key, where it classifies
-- exactly as before (policies, limited senders, mentions, a bucket to open). A `WHEN` clause is
-- evaluated without calling PL/pgSQL, so the common row costs no function call and no
-- look-ups through SPI. Measured on the follow statement alone (pgbench, one client, no
-- fsync wait): 0.34–0.47 ms with the trigger on every row, 0.29–0.34 ms with keys in place,
-- 0.26–0.31 ms with no classification at all.

DROP TRIGGER notifications_classify ON notifications;
CREATE TRIGGER notifications_classify BEFORE INSERT ON notifications
    FOR EACH ROW WHEN (NEW.group_key IS NULL) EXECUTE FUNCTION notifications_classify();
