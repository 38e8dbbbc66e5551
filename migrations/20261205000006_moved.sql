-- An account that moved (an inbound Move, checked against the new account's alsoKnownAs) names
-- its new account; its local followers now follow that one.
ALTER TABLE accounts ADD COLUMN moved_to_account_id bigint REFERENCES accounts (id) ON DELETE SET NULL;
