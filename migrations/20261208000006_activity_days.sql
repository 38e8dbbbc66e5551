-- The admin dashboard's active users (issue 19, `/api/v1/admin/measures` `active_users` and
-- `/api/v1/admin/retention`): the days each user used the API. Noted when `last_active_at`
-- moves, which the token check does at most hourly per user, so this costs a write per user
-- and hour at most (and nothing more once the day is noted).
CREATE TABLE user_activity_days (
    day         date   NOT NULL,
    account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (day, account_id)
);
CREATE INDEX user_activity_days_account ON user_activity_days (account_id, day);

CREATE FUNCTION user_activity_noted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_activity_days (day, account_id)
    VALUES ((NEW.last_active_at AT TIME ZONE 'UTC')::date, NEW.account_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER user_activity_noted AFTER INSERT OR UPDATE OF last_active_at ON users
    FOR EACH ROW EXECUTE FUNCTION user_activity_noted();
