-- Account migration from this server (issue 19): the actor URIs a local account names as its
-- earlier accounts (`alsoKnownAs`), which lets those accounts move here.
ALTER TABLE accounts ADD COLUMN also_known_as text[] NOT NULL DEFAULT '{}';
