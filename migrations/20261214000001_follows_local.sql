-- Fan-out reads the local followers of each status's author from one partial index, without a
-- probe of `users` per follower (ADR 0039): whether the follower is local (has a users row)
-- is kept on the follow. A local account's users row is written in the same transaction as
-- its account, before any follow, and an account never changes between local and remote.
-- Every step may have been done beforehand (operator guide, "Migrations"): the column added,
-- filled in batches and the index built CONCURRENTLY; the UPDATE then changes no row.
ALTER TABLE follows ADD COLUMN IF NOT EXISTS follower_local boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION follows_note_local() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.follower_local := EXISTS (SELECT 1 FROM users WHERE account_id = NEW.account_id);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS follows_local ON follows;
CREATE TRIGGER follows_local BEFORE INSERT OR UPDATE OF account_id ON follows
    FOR EACH ROW EXECUTE FUNCTION follows_note_local();

UPDATE follows f SET follower_local = true
WHERE NOT f.follower_local AND EXISTS (SELECT 1 FROM users u WHERE u.account_id = f.account_id);

CREATE INDEX IF NOT EXISTS follows_target_local
    ON follows (target_account_id, account_id) INCLUDE (show_reblogs) WHERE follower_local;
