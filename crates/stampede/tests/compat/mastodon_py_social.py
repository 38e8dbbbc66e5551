"""Drives Stampede's social API with Mastodon.py, a real Mastodon client library.

Called by the integration test `compat::mastodon_py_drives_the_social_api`:

    mastodon_py_social.py BASE_URL TOKENS_JSON   (tokens of alice, bob (locked), carol, eve)

Alice follows locked Bob (he accepts), Carol and Bob post, reply, boost, favourite; every
timeline is read and paginated; Eve, who follows nobody, probes for what she must not see.
Any failed expectation raises, which the test reports with this script's output.
"""

import json
import sys
import time

from mastodon import Mastodon, MastodonNotFoundError


def until(what, check, timeout=15):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def main(base, tokens):
    a, b, c, e = (Mastodon(access_token=tokens[n], api_base_url=base) for n in ("alice", "bob", "carol", "eve"))
    bob, carol = b.me(), c.me()

    # A locked account: the follow is a request until accepted.
    a.timeline_home()  # Alice's feed exists from now on
    rel = a.account_follow(bob["id"])
    assert rel["requested"] and not rel["following"], rel
    requests = b.follow_requests()
    assert [r["acct"] for r in requests] == ["alice"], requests
    b.follow_request_authorize(requests[0]["id"])
    assert a.account_relationships(bob["id"])[0]["following"]
    a.account_follow(carol["id"])

    # Posting, replying, boosting, favouriting.
    public = b.status_post("hello from bob #stampede https://example.com/x", visibility="public")
    assert "#<span>stampede</span>" in public["content"], public["content"]
    private = b.status_post("for my followers", visibility="private")
    reply = a.status_reply(public, "nice post")
    assert reply["in_reply_to_id"] == public["id"], reply
    assert reply["mentions"][0]["acct"] == "bob", reply["mentions"]
    boost = a.status_reblog(public)
    assert boost["reblog"]["id"] == public["id"], boost
    fav = a.status_favourite(public)
    assert fav["favourited"] and fav["favourites_count"] == 1, fav
    context = b.status_context(public["id"])
    assert [s["id"] for s in context["descendants"]] == [reply["id"]], context
    kinds = {n["type"] for n in b.notifications()}
    assert {"follow_request", "mention", "reblog", "favourite"} <= kinds, kinds
    mentions = b.notifications(types=["mention"])
    assert [n["status"]["id"] for n in mentions] == [reply["id"]], mentions

    # Alice's home holds Bob's public and private statuses (she follows him) and her own.
    home_ids = until("alice's home", lambda: (
        lambda ids: ids if {public["id"], private["id"], reply["id"]} <= set(ids) else None
    )([s["id"] for s in a.timeline_home(limit=40)]))
    assert boost["id"] in home_ids, home_ids

    # Pagination: Carol posts 25; Alice pages through them 10 at a time with the Link header.
    posted = [c.status_post(f"carol {i} #paging")["id"] for i in range(25)]
    until("carol's posts in alice's home", lambda: posted[-1] in [s["id"] for s in a.timeline_home(limit=5)])
    page = a.timeline_home(limit=10)
    seen = []
    while page:
        seen.extend(s["id"] for s in page)
        page = a.fetch_next(page)
    assert seen == sorted(seen, key=int, reverse=True), "pages out of order"
    assert set(posted) <= set(seen), "pagination lost statuses"
    tag = c.timeline_hashtag("paging", limit=10)
    tag_seen = []
    while tag:
        tag_seen.extend(s["id"] for s in tag)
        tag = c.fetch_next(tag)
    assert tag_seen == list(reversed(posted)), tag_seen
    public_ids = [s["id"] for s in e.timeline_public(limit=40)]
    local_ids = [s["id"] for s in e.timeline_local(limit=40)]
    assert public["id"] in public_ids and public["id"] in local_ids
    assert boost["id"] not in public_ids, "boosts are not in the public timeline"

    # Eve follows nobody and must not see Bob's private status anywhere.
    try:
        e.status(private["id"])
        raise AssertionError("eve read a private status")
    except MastodonNotFoundError:
        pass
    for where, statuses in (
        ("public", e.timeline_public(limit=40)),
        ("local", e.timeline_local(limit=40)),
        ("bob's profile", e.account_statuses(bob["id"], limit=40)),
        ("search", e.search_v2("followers", result_type="statuses")["statuses"]),
        ("home", e.timeline_home(limit=40)),
    ):
        assert private["id"] not in [s["id"] for s in statuses], f"private status leaked to eve via {where}"
    assert private["id"] in [s["id"] for s in a.account_statuses(bob["id"], limit=40)]

    # Delete and redraft: the deleted status comes back with its text, and leaves the feeds.
    deleted = b.status_delete(public["id"])
    assert deleted["text"] == "hello from bob #stampede https://example.com/x", deleted
    until("deleted status gone", lambda: public["id"] not in [s["id"] for s in a.timeline_home(limit=40)])
    print(json.dumps({"ok": True, "paged": len(seen)}))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
