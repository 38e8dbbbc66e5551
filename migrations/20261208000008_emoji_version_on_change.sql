-- The custom emojis' version moves only when rows changed (review of issue 19's change).
--
-- A statement trigger fires even when its statement changes nothing, and the inbox records a
-- remote note's emojis with `INSERT … ON CONFLICT DO UPDATE … WHERE changed` inside its
-- transaction: every inbound note with an emoji updated the one version row and held its lock
-- until the commit, so inbox workers queued behind each other. With transition tables the
-- trigger sees what the statement changed and leaves the row alone when that is nothing.
DROP TRIGGER custom_emojis_changed ON custom_emojis;
DROP FUNCTION custom_emojis_changed();

CREATE FUNCTION custom_emojis_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        UPDATE custom_emojis_version SET version = version + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER custom_emojis_inserted AFTER INSERT ON custom_emojis
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION custom_emojis_changed();
CREATE TRIGGER custom_emojis_updated AFTER UPDATE ON custom_emojis
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION custom_emojis_changed();
CREATE TRIGGER custom_emojis_deleted AFTER DELETE ON custom_emojis
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION custom_emojis_changed();
