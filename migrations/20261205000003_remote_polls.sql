-- Polls from other servers: their counts are the origin's (sent in the Question and its
-- Updates), not counted here; local voters' votes are also recorded in poll_votes.
ALTER TABLE polls
    ADD COLUMN remote_counts bigint[],
    ADD COLUMN remote_voters bigint;
