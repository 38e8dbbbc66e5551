-- Fan-out reads each author's followers, and whether each shows the author's boosts, from the
-- index alone: with the follows of one author spread over as many heap pages as followers, the
-- heap visits were most of the statement's time (ADR 0034).
DROP INDEX follows_target;
CREATE INDEX follows_target ON follows (target_account_id, account_id) INCLUDE (show_reblogs);

-- The few followers who asked to be told about an author's posts, without reading all of them.
CREATE INDEX follows_notify ON follows (target_account_id) WHERE notify;
