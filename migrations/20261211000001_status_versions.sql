-- Web processes keep rendered statuses in memory under their row's version, PostgreSQL's xmin
-- (ADR 0032): any UPDATE of a status writes a new version. What a status is shown with but is
-- stored beside it (its media, its link card, its quote and the quotes of it, its poll) writes a
-- new version of the status's row when it changes, whatever wrote it.

-- A no-op UPDATE of each status in `ids`, except a row this transaction already wrote (a status
-- being created or edited has its new version already).
CREATE FUNCTION stampede_touch_statuses(ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE statuses SET conversation_id = conversation_id
    WHERE id = ANY(ids) AND xmin::text::bigint <> txid_current() % 4294967296
$$;

-- Statement-level: the statuses named in the changed rows' columns TG_ARGV (each status once).
CREATE FUNCTION stampede_touch_statuses_of() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text;
    ids bigint[];
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            EXECUTE format('SELECT array_agg(DISTINCT %I) FROM old_rows WHERE %I IS NOT NULL',
                           col, col) INTO ids;
            PERFORM stampede_touch_statuses(ids);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            EXECUTE format('SELECT array_agg(DISTINCT %I) FROM new_rows WHERE %I IS NOT NULL',
                           col, col) INTO ids;
            PERFORM stampede_touch_statuses(ids);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER media_attachments_touch_insert AFTER INSERT ON media_attachments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');
CREATE TRIGGER media_attachments_touch_update AFTER UPDATE ON media_attachments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');
CREATE TRIGGER media_attachments_touch_delete AFTER DELETE ON media_attachments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');

CREATE TRIGGER preview_cards_statuses_touch_insert AFTER INSERT ON preview_cards_statuses
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');
CREATE TRIGGER preview_cards_statuses_touch_update AFTER UPDATE ON preview_cards_statuses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');
CREATE TRIGGER preview_cards_statuses_touch_delete AFTER DELETE ON preview_cards_statuses
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');

CREATE TRIGGER quotes_touch_insert AFTER INSERT ON quotes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id', 'quoted_status_id');
CREATE TRIGGER quotes_touch_update AFTER UPDATE ON quotes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id', 'quoted_status_id');
CREATE TRIGGER quotes_touch_delete AFTER DELETE ON quotes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id', 'quoted_status_id');

-- A poll's counts and the viewer's votes are read on every page; only its existence is cached.
CREATE TRIGGER polls_touch_insert AFTER INSERT ON polls
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');
CREATE TRIGGER polls_touch_delete AFTER DELETE ON polls
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_statuses_of('status_id');

-- A card fetched again (a new title or image) shows on every status that links it.
CREATE FUNCTION stampede_touch_card_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stampede_touch_statuses(ARRAY(
        SELECT pcs.status_id FROM preview_cards_statuses pcs
        WHERE pcs.preview_card_id IN (SELECT id FROM new_rows)));
    RETURN NULL;
END $$;
CREATE TRIGGER preview_cards_touch_update AFTER UPDATE ON preview_cards
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stampede_touch_card_statuses();
