"""Drives the newer parts of Stampede's client API with Mastodon.py, a real client library.

Called by the integration test `compat::mastodon_py_drives_the_client_api_extras`:

    mastodon_py_client_api.py BASE_URL TOKENS_JSON   (tokens of alice, bob, carol)

The operator has added the custom emoji :blobcat: and one announcement before. The script runs
a small web server on loopback that serves a page with OpenGraph tags and plays a Web Push
service; Stampede must be allowed to reach loopback (ALLOWED_PRIVATE_ADDRESSES). Pushes are
decrypted with Mastodon.py's own Web Push code (http_ece, the older aesgcm coding). Any failed
expectation raises.
"""

import http.server
import json
import queue
import sys
import threading
import time

from mastodon import Mastodon

PAGE = b"""<!doctype html><html lang="en"><head><title>x</title>
<meta property="og:title" content="Loopback story">
<meta property="og:description" content="Told on one machine."></head><body></body></html>"""


def until(what, check, timeout=20):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def serve():
    pushes = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(PAGE)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            pushes.put((self.headers, body))  # case-insensitive look-ups
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], pushes


def main(base, tokens):
    a, b, c = (Mastodon(access_token=tokens[n], api_base_url=base) for n in ("alice", "bob", "carol"))
    alice, bob, carol = a.me(), b.me(), c.me()
    port, pushes = serve()

    # Custom emojis and announcements, made by the operator.
    assert [e["shortcode"] for e in a.custom_emojis()] == ["blobcat"], a.custom_emojis()
    announcements = a.announcements()
    assert len(announcements) == 1, announcements
    a.announcement_reaction_create(announcements[0], "👍")
    reaction = a.announcements()[0]["reactions"][0]
    assert reaction["name"] == "👍" and reaction["count"] == 1 and reaction["me"], reaction
    a.announcement_dismiss(announcements[0])
    assert a.announcements() == []

    # Web Push: a mention reaches the push service, and Mastodon.py decrypts it.
    private, public = a.push_subscription_generate_keys()
    subscription = a.push_subscription_set(f"http://127.0.0.1:{port}/push", public, mention_events=True)
    assert subscription["alerts"]["mention"] and not subscription["alerts"]["follow"], subscription
    assert subscription["server_key"] == a.instance_v2()["configuration"]["vapid"]["public_key"]
    b.status_post("@alice are you there?")
    headers, body = pushes.get(timeout=20)
    push = a.push_subscription_decrypt_push(body, private, headers["Encryption"], headers["Crypto-Key"])
    assert push["notification_type"] == "mention", push
    assert push["title"] == "bob mentioned you", push
    assert str(push["notification_id"]) == str(a.notifications()[0]["id"])
    a.push_subscription_update(follow_events=True, mention_events=False)
    assert a.push_subscription()["alerts"]["follow"]
    a.push_subscription_delete()

    # Grouped notifications: two favourites of one status are one group.
    mine = a.status_post("favourite this")
    b.status_favourite(mine)
    c.status_favourite(mine)
    groups = a.grouped_notifications()
    favourites = [g for g in groups["notification_groups"] if g["type"] == "favourite"]
    assert len(favourites) == 1 and favourites[0]["notifications_count"] == 2, groups
    key = favourites[0]["group_key"]
    assert {acc["username"] for acc in a.grouped_notification_accounts(key)} == {"bob", "carol"}
    assert a.grouped_notification(key)["notification_groups"][0]["notifications_count"] == 2

    # The policy files strangers' mentions as requests.
    policy = a.update_notifications_policy(for_not_following="filter")
    assert policy["for_not_following"] == "filter", policy
    c.status_post("@alice hello from a stranger")
    requests = until("a request", a.notification_requests)
    assert requests[0]["account"]["username"] == "carol", requests
    a.accept_notification_request(requests[0])
    assert a.notification_requests() == []
    assert any(n["account"]["username"] == "carol" and n["type"] == "mention" for n in a.notifications())

    # Domain blocks and reports.
    a.domain_block("spam.example")
    assert list(a.domain_blocks()) == ["spam.example"]
    a.domain_unblock("spam.example")
    assert list(a.domain_blocks()) == []
    report = a.report(carol["id"], comment="testing reports", category="spam")
    assert report["category"] == "spam" and report["target_account"]["id"] == carol["id"], report

    # Link previews, link trends and the link timeline.
    link = f"http://127.0.0.1:{port}/story"
    first = b.status_post(f"read {link}")
    c.status_post(f"also {link}")
    card = until("a card", lambda: a.status(first)["card"])
    assert card["title"] == "Loopback story", card
    links = until("a trending link", a.trending_links)
    assert links[0]["url"] == link, links
    assert len(a.timeline_link(link)) == 2

    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
