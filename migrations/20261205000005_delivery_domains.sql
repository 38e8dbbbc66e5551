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

-- Domains whose servers signed requests to us with RFC 9421 HTTP Message Signatures: our
-- deliveries to them are signed that way too (draft-cavage to everyone else).
CREATE TABLE domain_signatures (
    domain text PRIMARY KEY,
    rfc9421_seen_at timestamptz NOT NULL DEFAULT now()
);
