-- Web processes keep each viewer's flags for the statuses on their pages (whether they may see
-- each, mute it, favourited, boosted, bookmarked or pinned it, muted its conversation, follow
-- its author, have filters) under the viewer's version (ADR 0043). The version is the sum of
-- the viewer's rows here: every change to what those flags are read from adds a row for each
-- viewer it concerns, in the same transaction.
--
-- Rows are only ever added (and folded together by `stampede_fold_viewer_changes`), never
-- updated in place: a writer takes no lock another writer could wait on, so these triggers add
-- no edge to any lock cycle. A sum, not a maximum of ids, because transactions commit in
-- another order than they take ids: a count only grows, whichever commits first.
CREATE TABLE viewer_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL,
    weight bigint NOT NULL DEFAULT 1
);
CREATE INDEX viewer_changes_account ON viewer_changes (account_id) INCLUDE (weight);

-- A viewer's version.
CREATE FUNCTION stampede_viewer_version(viewer bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(weight), 0)::bigint FROM viewer_changes WHERE account_id = viewer
$$;

-- Folds a viewer's rows into one of the same total weight (their version does not move).
CREATE FUNCTION stampede_fold_viewer_changes(viewer bigint) RETURNS void LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM viewer_changes WHERE account_id = viewer RETURNING weight)
    INSERT INTO viewer_changes (account_id, weight)
    SELECT viewer, sum(weight) FROM gone HAVING count(*) > 0
$$;

-- Statement-level: a row for each account named in the changed rows' columns TG_ARGV.
CREATE FUNCTION stampede_viewer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text;
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            EXECUTE format('INSERT INTO viewer_changes (account_id) '
                           'SELECT DISTINCT %I FROM old_rows WHERE %I IS NOT NULL', col, col);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            EXECUTE format('INSERT INTO viewer_changes (account_id) '
                           'SELECT DISTINCT %I FROM new_rows WHERE %I IS NOT NULL', col, col);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('favourites', ARRAY['account_id']),
        ('bookmarks', ARRAY['account_id']),
        ('status_pins', ARRAY['account_id']),
        ('conversation_mutes', ARRAY['account_id']),
        ('filters', ARRAY['account_id']),
        ('mutes', ARRAY['account_id']),
        ('account_domain_blocks', ARRAY['account_id']),
        ('follows', ARRAY['account_id']),
        ('blocks', ARRAY['account_id', 'target_account_id'])
    ) AS v(tbl, cols) LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION stampede_viewer_changed(%s)',
                       t.tbl || '_viewer_insert', t.tbl, array_to_string(t.cols, ', '));
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I '
                       'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION stampede_viewer_changed(%s)',
                       t.tbl || '_viewer_update', t.tbl, array_to_string(t.cols, ', '));
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION stampede_viewer_changed(%s)',
                       t.tbl || '_viewer_delete', t.tbl, array_to_string(t.cols, ', '));
    END LOOP;
END $$;

-- A boost is a status: only those move their booster's version (row-level, so that a post
-- that boosts nothing pays only the WHEN test).
CREATE FUNCTION stampede_booster_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO viewer_changes (account_id) VALUES (OLD.account_id);
    ELSE
        INSERT INTO viewer_changes (account_id) VALUES (NEW.account_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER statuses_boost_insert AFTER INSERT ON statuses
    FOR EACH ROW WHEN (NEW.reblog_of_id IS NOT NULL) EXECUTE FUNCTION stampede_booster_changed();
CREATE TRIGGER statuses_boost_delete AFTER DELETE ON statuses
    FOR EACH ROW WHEN (OLD.reblog_of_id IS NOT NULL) EXECUTE FUNCTION stampede_booster_changed();
