-- A remote account's featured collection (its pins), as its actor names it.
ALTER TABLE accounts ADD COLUMN featured_url text;
