//! Who may see a status: the one definition every read path uses, as SQL predicates to embed
//! in queries (set-based, so the planner probes indexes per row instead of calling a function
//! per row).
//!
//! A viewer (NULL: nobody signed in) sees their own statuses; otherwise the author must not be
//! suspended, neither may block the other, and the status must be public or unlisted, or
//! private and the viewer an accepted follower, or mention the viewer (which is the only way
//! to see a direct status). A boost is visible when it and the status it boosts both are.
//! Mutes hide statuses (and boosts of statuses) of muted accounts from the muter's timelines,
//! notifications and search — not from a direct look-up; so does a person's block of the
//! author's domain.

/// `alias`'s row (of `statuses`) is visible to `viewer` (a bigint SQL expression, e.g. `$2`),
/// ignoring what it boosts.
fn visible_one(alias: &str, viewer: &str) -> String {
    format!(
        "(({viewer}::bigint IS NOT NULL AND {alias}.account_id = {viewer}) OR ( \
            NOT EXISTS (SELECT 1 FROM accounts {alias}_a \
                        WHERE {alias}_a.id = {alias}.account_id AND {alias}_a.suspended_at IS NOT NULL) \
            AND NOT EXISTS (SELECT 1 FROM blocks {alias}_b1 \
                        WHERE {alias}_b1.account_id = {alias}.account_id AND {alias}_b1.target_account_id = {viewer}) \
            AND NOT EXISTS (SELECT 1 FROM blocks {alias}_b2 \
                        WHERE {alias}_b2.account_id = {viewer} AND {alias}_b2.target_account_id = {alias}.account_id) \
            AND ({alias}.visibility IN ('public', 'unlisted') \
                 OR ({alias}.visibility = 'private' AND EXISTS (SELECT 1 FROM follows {alias}_f \
                        WHERE {alias}_f.account_id = {viewer} AND {alias}_f.target_account_id = {alias}.account_id)) \
                 OR EXISTS (SELECT 1 FROM mentions {alias}_m \
                        WHERE {alias}_m.status_id = {alias}.id AND {alias}_m.account_id = {viewer}))))"
    )
}

/// The status row `alias` may be seen by `viewer` as far as the row itself goes: for a boost,
/// the status it boosts must be checked too (as [`visible`] does). For a caller that reads the
/// boosted status as a row of its own and combines the two, or whose statement keeps boosts out.
pub fn visible_itself(alias: &str, viewer: &str) -> String {
    visible_one(alias, viewer)
}

/// The status row `alias` (of `statuses`) may be seen by `viewer`.
pub fn visible(alias: &str, viewer: &str) -> String {
    let original = format!("{alias}_o");
    format!(
        "({} AND ({alias}.reblog_of_id IS NULL OR EXISTS (SELECT 1 FROM statuses {original} \
            WHERE {original}.id = {alias}.reblog_of_id AND {})))",
        visible_one(alias, viewer),
        visible_one(&original, viewer)
    )
}

/// The author of status row `alias` is silenced and `viewer` neither is it nor follows it: the
/// status stays out of public places (the public and hashtag timelines, trends).
pub fn limited(alias: &str, viewer: &str) -> String {
    format!(
        "({alias}.account_id IN (SELECT id FROM accounts WHERE silenced_at IS NOT NULL) \
          AND ({viewer}::bigint IS NULL OR ({alias}.account_id <> {viewer} \
               AND NOT EXISTS (SELECT 1 FROM follows {alias}_sf WHERE {alias}_sf.account_id = {viewer} \
                               AND {alias}_sf.target_account_id = {alias}.account_id))))"
    )
}

/// The accounts of the domains `viewer` blocks: not correlated with any row, so the planner
/// reads it once per query (a hashed subplan) whatever the number of rows checked.
fn domain_blocked(viewer: &str) -> String {
    format!(
        "SELECT da.id FROM account_domain_blocks db JOIN accounts da ON da.domain = db.domain \
         WHERE db.account_id = {viewer}"
    )
}

/// `viewer` mutes the author of the status row `alias`, or of what it boosts, or hides the
/// domain either comes from (a person's own domain block).
pub fn muted(alias: &str, viewer: &str) -> String {
    format!(
        "({viewer}::bigint IS NOT NULL AND (EXISTS (SELECT 1 FROM mutes {alias}_mu \
            WHERE {alias}_mu.account_id = {viewer} \
              AND ({alias}_mu.expires_at IS NULL OR {alias}_mu.expires_at > now()) \
              AND ({alias}_mu.target_account_id = {alias}.account_id \
                   OR {alias}_mu.target_account_id = (SELECT {alias}_r.account_id FROM statuses {alias}_r \
                                                     WHERE {alias}_r.id = {alias}.reblog_of_id))) \
          OR {alias}.account_id IN ({blocked}) \
          OR (SELECT {alias}_r2.account_id FROM statuses {alias}_r2 \
              WHERE {alias}_r2.id = {alias}.reblog_of_id) IN ({blocked})))",
        blocked = domain_blocked(viewer),
    )
}

/// `viewer` mutes the author of the status row `alias`, or hides its domain, leaving aside what
/// it boosts: for a boost, [`muted`] is this of the boost or of the boosted status. For a caller
/// that reads the boosted status as a row of its own and combines the two, or whose statement
/// keeps boosts out.
pub fn muted_itself(alias: &str, viewer: &str) -> String {
    format!(
        "({viewer}::bigint IS NOT NULL AND (EXISTS (SELECT 1 FROM mutes {alias}_mu \
            WHERE {alias}_mu.account_id = {viewer} \
              AND ({alias}_mu.expires_at IS NULL OR {alias}_mu.expires_at > now()) \
              AND {alias}_mu.target_account_id = {alias}.account_id) \
          OR {alias}.account_id IN ({blocked})))",
        blocked = domain_blocked(viewer),
    )
}
