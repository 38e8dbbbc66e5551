-- Web processes keep bearer-token look-ups in memory (ADR 0030); PostgreSQL tells them when one
-- changes, whatever wrote the row (the API, the CLI, a worker, an operator's SQL). The payload
-- names a token (`token:<sha256 hex>`) or every token of an account (`account:<id>`); a
-- notification is sent at commit, and only for a change that decides what a token may do.

CREATE FUNCTION stampede_auth_token_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stampede_auth', 'token:' || OLD.token_hash);
    RETURN NULL;
END $$;

CREATE FUNCTION stampede_auth_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stampede_auth', 'account:' || OLD.account_id);
    RETURN NULL;
END $$;

CREATE FUNCTION stampede_auth_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stampede_auth', 'account:' || OLD.id);
    RETURN NULL;
END $$;

CREATE TRIGGER oauth_access_tokens_auth_update AFTER UPDATE ON oauth_access_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                       OR OLD.scopes IS DISTINCT FROM NEW.scopes
                       OR OLD.account_id IS DISTINCT FROM NEW.account_id
                       OR OLD.token_hash IS DISTINCT FROM NEW.token_hash)
    EXECUTE FUNCTION stampede_auth_token_changed();
CREATE TRIGGER oauth_access_tokens_auth_delete AFTER DELETE ON oauth_access_tokens
    FOR EACH ROW EXECUTE FUNCTION stampede_auth_token_changed();

CREATE TRIGGER users_auth_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role
                       OR OLD.confirmed_at IS DISTINCT FROM NEW.confirmed_at
                       OR OLD.approved IS DISTINCT FROM NEW.approved
                       OR OLD.disabled IS DISTINCT FROM NEW.disabled
                       OR OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION stampede_auth_user_changed();
CREATE TRIGGER users_auth_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION stampede_auth_user_changed();

CREATE TRIGGER accounts_auth_update AFTER UPDATE ON accounts
    FOR EACH ROW WHEN (OLD.suspended_at IS DISTINCT FROM NEW.suspended_at)
    EXECUTE FUNCTION stampede_auth_account_changed();
CREATE TRIGGER accounts_auth_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION stampede_auth_account_changed();
