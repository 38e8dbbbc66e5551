-- Delivery health per remote domain (host[:port]), shared by every delivery process and kept
-- across restarts. A domain with failures on 7 distinct days is unavailable: deliveries to it
-- are skipped until one delivery to it or one signed request from it succeeds.
CREATE TABLE delivery_domains (
    domain text PRIMARY KEY,
    -- The distinct days (UTC) on which a delivery to the domain failed since its last success.
    failure_days date[] NOT NULL DEFAULT '{}',
    last_failure_at timestamptz,
    last_error text,
    -- The circuit breaker opened until then (held deliveries wait; a probe follows).
    open_until timestamptz,
    unavailable_since timestamptz
);

CREATE INDEX delivery_domains_unavailable ON delivery_domains (domain)
    WHERE unavailable_since IS NOT NULL;
