-- Fan-out reads each author's followers, and whether each shows the author's boosts, from the
-- index alone: with the follows of one author spread over as many heap pages as followers, the
-- heap visits were most of the statement's time (ADR 0034). It replaces `follows_target`.
-- IF NOT EXISTS: an operator may build both indexes beforehand with CREATE INDEX CONCURRENTLY
-- under these names (docs/operator-guide.md, "Migrations"); this then only drops the old one.
CREATE INDEX IF NOT EXISTS follows_target_fanout
    ON follows (target_account_id, account_id) INCLUDE (show_reblogs);
DROP INDEX IF EXISTS follows_target;

-- The few followers who asked to be told about an author's posts, without reading all of them.
CREATE INDEX IF NOT EXISTS follows_notify ON follows (target_account_id) WHERE notify;
