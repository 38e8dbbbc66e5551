-- Each process's background loops, written by its heartbeat every 15 s (stampede_runtime::workers)
-- and listed by `stampede admin workers`: a loop that failed or fell behind, and a process that
-- vanished (its rows stop being seen), show to the operator without reading every pod's logs.
CREATE TABLE worker_heartbeats (
    process        text        NOT NULL,
    worker         text        NOT NULL,
    state          text        NOT NULL,
    period_seconds double precision,
    rounds         bigint      NOT NULL DEFAULT 0,
    failures       bigint      NOT NULL DEFAULT 0,
    last_error     text,
    started_at     timestamptz NOT NULL,
    last_ok_at     timestamptz,
    seen_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (process, worker)
);
