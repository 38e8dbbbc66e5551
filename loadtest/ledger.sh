#!/usr/bin/env bash
# The migration-day ledger: what the load generator was told succeeded (its summary.json)
# against what the database holds. Newcomers are m<run><n>, established accounts m<run>p<n>.
# Prints the ledger as one JSON object; exits 3 when a write answered 2xx is not stored.
#
#   loadtest/ledger.sh DATABASE_URL SUMMARY_JSON
set -euo pipefail
db="$1" summary="$2"
count() { psql -qAt "$db" -c "$1"; }
signed_up=$(count "SELECT count(*) FROM accounts WHERE username LIKE 'm%' AND username NOT LIKE 'm______p%'")
posts_stored=$(count "SELECT count(*) FROM statuses WHERE text LIKE 'hello from my first day (%' OR text LIKE 'fan-out probe %'")
follows_stored=$(count "SELECT count(*) FROM follows f JOIN accounts a ON a.id = f.account_id WHERE a.username NOT LIKE 'm______p%' AND a.username NOT LIKE 'chaos%'")
ledger=$(jq -c --argjson s "$signed_up" --argjson p "$posts_stored" --argjson f "$follows_stored" '{
    signups: {answered_2xx: (.operations.signup.responses["2xx"] // 0), stored: $s},
    posts: {answered_2xx: (.operations.post.responses["2xx"] // 0), stored: $p},
    follows: {answered_2xx: (.operations.follow.responses["2xx"] // 0), stored: $f}}' "$summary")
echo "$ledger"
lost=$(jq '[.[] | (.answered_2xx - .stored) | select(. > 0)] | add // 0' <<<"$ledger")
if [ "$lost" -gt 0 ]; then
    echo "LOST: $lost writes answered 2xx are not in the database: $ledger" >&2
    exit 3
fi
