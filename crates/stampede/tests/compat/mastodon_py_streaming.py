"""Listens to Stampede's streaming API with Mastodon.py, a real Mastodon client library.

Called by the integration test `compat::mastodon_py_streams_events`:

    mastodon_py_streaming.py BASE_URL JSON   (tokens of alice and bob; alice's app credentials)

Mastodon.py finds the streaming server through /api/v1/instance (urls.streaming_api). Alice, who
follows Bob, listens to her user stream, the public stream and the #stampede hashtag twice: as
three server-sent-event streams, and multiplexed over one WebSocket — while Bob posts, mentions
her, edits and deletes. Then Alice's token is revoked and every one of her streams must end.
Any failed expectation raises.
"""

import json
import sys
import threading
import time

from mastodon import Mastodon, StreamListener


class Recorder(StreamListener):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.events = []
        self.aborted = threading.Event()
        self.lock = threading.Lock()

    def _add(self, kind, value):
        with self.lock:
            self.events.append((kind, value))

    def on_update(self, status):
        self._add("update", status)

    def on_notification(self, notification):
        self._add("notification", notification)

    def on_delete(self, status_id):
        self._add("delete", status_id)

    def on_status_update(self, status):
        self._add("status.update", status)

    def on_abort(self, err):
        self.aborted.set()

    def wait_for(self, kind, check, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for k, value in self.events:
                    if k == kind and check(value):
                        return value
            time.sleep(0.05)
        with self.lock:
            seen = [(k, str(v)[:80]) for k, v in self.events]
        raise AssertionError(f"{self.name}: no {kind} event in {timeout} s; saw {seen}")


def main(base, config):
    a = Mastodon(
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        access_token=config["alice"],
        api_base_url=base,
    )
    b = Mastodon(access_token=config["bob"], api_base_url=base)
    bob = b.me()
    a.account_follow(bob["id"])

    user, public, tag = Recorder("user"), Recorder("public"), Recorder("hashtag")
    handles = [
        a.stream_user(user, run_async=True, reconnect_async=False),
        a.stream_public(public, run_async=True, reconnect_async=False),
        a.stream_hashtag("stampede", tag, run_async=True, reconnect_async=False),
    ]
    socket = a.stream_open_websocket()
    ws_user, ws_public, ws_tag = Recorder("ws user"), Recorder("ws public"), Recorder("ws hashtag")
    a.stream_user(ws_user, websocket_handle=socket)
    a.stream_public(ws_public, websocket_handle=socket)
    a.stream_hashtag("Stampede", ws_tag, websocket_handle=socket)
    handles.append(socket)
    time.sleep(1)  # the connections and subscriptions are registered

    posted = b.status_post("streaming from bob #stampede", visibility="public")
    for listener in (user, public, tag, ws_user, ws_public, ws_tag):
        listener.wait_for("update", lambda s: s["id"] == posted["id"])
    mention = b.status_post("@alice are you there?", visibility="public")
    for listener in (user, ws_user):
        note = listener.wait_for("notification", lambda n: n["type"] == "mention")
        assert note["status"]["id"] == mention["id"], note
        assert note["account"]["acct"] == "bob", note

    b.status_update(posted["id"], "edited from bob #stampede")
    for listener in (user, ws_user):
        edited = listener.wait_for("status.update", lambda s: s["id"] == posted["id"])
        assert "edited" in edited["content"], edited
    b.status_delete(posted["id"])
    for listener in (user, public, ws_user, ws_public):
        listener.wait_for("delete", lambda i: str(i) == str(posted["id"]))

    # Revoking the token ends the streams made with it.
    a.revoke_access_token(allow_http=True)  # the test server is plain HTTP on loopback
    deadline = time.time() + 15
    while any(h.is_alive() for h in handles) and time.time() < deadline:
        time.sleep(0.1)
    alive = [h.is_alive() for h in handles]
    assert not any(alive), f"streams still open after revocation: {alive}"
    everything = (user, public, tag, ws_user, ws_public, ws_tag)
    print(json.dumps({"ok": True, "events": sum(len(l.events) for l in everything)}))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
