-- Federation, part one: account keys and the pool they come from.
--
-- RSA-2048 key generation costs 50-150 ms of CPU; it never runs on the sign-up path. A background
-- loop keeps `key_pool` filled while the machine is quiet, and an account takes a key from the
-- pool the first time federation needs it (its actor document, its first signed delivery), or
-- generates one then if the pool is empty.

CREATE TABLE key_pool (
    id          bigserial   PRIMARY KEY,
    private_key text        NOT NULL,   -- PKCS#8 PEM
    public_key  text        NOT NULL,   -- SubjectPublicKeyInfo PEM
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE accounts
    ADD COLUMN private_key text,        -- local accounts only, once assigned
    ADD COLUMN public_key  text;

-- The instance actor (Mastodon's "Application" actor at /actor): one row, signs the server's own
-- fetches in authorized-fetch mode.
CREATE TABLE instance_actor (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    private_key text        NOT NULL,
    public_key  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
