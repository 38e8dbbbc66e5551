-- The outbox notification carries the highest id the statement inserted, so that a relay can tell
-- a notification for rows it has already relayed (its commit raced the relay's last round) from
-- one for new rows, and skip a round that would find nothing.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stampede_outbox', (SELECT max(id)::text FROM inserted));
    RETURN NULL;
END
$$;

DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
