-- The platform's own tables: the transactional outbox, consumer-side deduplication, and canaries.

-- Messages written in the same transaction as the change that causes them. The relay publishes
-- each row to RabbitMQ (or the in-process queue), waits for the broker's confirm, then deletes it.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    queue       text        NOT NULL,
    envelope    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Wake relays at commit instead of making them poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stampede_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Delivery is at-least-once: a consumer records each message id in the same transaction as the
-- message's effect, so a redelivered message is applied once in effect.
CREATE TABLE processed_messages (
    message_id    uuid        PRIMARY KEY,
    processed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_messages_processed_at ON processed_messages (processed_at);

-- Canaries: synthetic jobs an operator sends through outbox -> queue -> worker to see the whole
-- pipeline work and how long it takes (`stampede admin canary`).
CREATE TABLE canaries (
    id             bigserial PRIMARY KEY,
    queue          text        NOT NULL,
    hold_ms        integer     NOT NULL DEFAULT 0 CHECK (hold_ms >= 0),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at   timestamptz,
    applied_count  integer     NOT NULL DEFAULT 0
);
