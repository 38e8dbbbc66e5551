-- Every visibility check leaves out suspended authors (`visibility::visible`), and the public,
-- hashtag and link timelines silenced ones too (`visibility::limited`). PostgreSQL may read the
-- suspended or silenced accounts once per statement, as a hashed subplan: without an index
-- that was a sequential scan of every account on every page (on the home benchmark's 10,000
-- accounts, 1.2 of the local timeline's 1.5 ms). These partial indexes hold only the few
-- accounts concerned. IF NOT EXISTS, so that an operator can build them CONCURRENTLY beforehand
-- (operator guide, "Migrations").
CREATE INDEX IF NOT EXISTS accounts_suspended ON accounts (id) WHERE suspended_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS accounts_silenced ON accounts (id) WHERE silenced_at IS NOT NULL;
