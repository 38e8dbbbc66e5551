"""Uploads and sees media through Mastodon.py, a real Mastodon client library.

Called by the integration test `media::mastodon_py_uploads_attaches_and_sees_media_on_local_disk`:

    mastodon_py_media.py BASE_URL JSON   (tokens of alice and bob; the folder of test files)

Alice uploads a photo and a video (polling until each is processed, as apps do), posts them,
edits the post and describes an upload; Bob, who follows her, sees the attachments on his
stream, his home timeline and the status, and fetches the files. Alice sets an avatar and a
header. Bad files are refused with 422 and a reason. Any failed expectation raises.
"""

import json
import os
import sys
import threading
import time
import urllib.request

from mastodon import Mastodon, MastodonAPIError, StreamListener


class Recorder(StreamListener):
    def __init__(self):
        super().__init__()
        self.updates = []
        self.lock = threading.Lock()

    def on_update(self, status):
        with self.lock:
            self.updates.append(status)

    def wait_for(self, check, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for status in self.updates:
                    if check(status):
                        return status
            time.sleep(0.05)
        raise AssertionError(f"no matching update in {timeout} s; saw {len(self.updates)}")


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("content-type"), response.read()


def refused(call):
    try:
        call()
    except MastodonAPIError as error:
        assert error.args[1] == 422, error.args
        return str(error.args[-1])
    raise AssertionError("accepted what should be refused")


def main(base, config):
    files = config["dir"]
    path = lambda name: os.path.join(files, name)
    a = Mastodon(access_token=config["alice"], api_base_url=base)
    b = Mastodon(access_token=config["bob"], api_base_url=base)
    alice = a.me()
    b.account_follow(alice["id"])
    stream = Recorder()
    handle = b.stream_user(stream, run_async=True, reconnect_async=False)
    time.sleep(1)

    photo = a.media_post(path("photo.jpg"), description="a test pattern", focus=(0.5, -0.5),
                         synchronous=True)
    assert photo["type"] == "image", photo
    assert photo["url"].endswith(".jpg"), photo
    assert photo["meta"]["original"]["width"] == 1200, photo
    assert photo["meta"]["original"]["height"] == 900, photo
    assert photo["meta"]["small"]["width"] * photo["meta"]["small"]["height"] <= 230400, photo
    assert photo["meta"]["focus"] == {"x": 0.5, "y": -0.5}, photo
    assert photo["description"] == "a test pattern", photo
    assert photo["blurhash"], photo
    status, content_type, body = fetch(photo["url"])
    assert (status, content_type) == (200, "image/jpeg"), (status, content_type)
    assert body[:2] == b"\xff\xd8" and b"Exif" not in body
    status, _, _ = fetch(photo["preview_url"])
    assert status == 200

    clip = a.media_post(path("clip.webm"), synchronous=True)
    assert clip["type"] == "video", clip
    assert clip["url"].endswith(".mp4"), clip
    assert abs(clip["meta"]["original"]["duration"] - 1.0) < 0.5, clip
    status, content_type, body = fetch(clip["url"])
    assert (status, content_type) == (200, "video/mp4"), (status, content_type)
    assert b"ftyp" in body[:64]
    assert fetch(clip["preview_url"])[0] == 200

    # A video goes alone.
    refused(lambda: a.status_post("both", media_ids=[photo["id"], clip["id"]]))
    post = a.status_post("a picture", media_ids=[photo["id"]], visibility="public")
    assert [m["id"] for m in post["media_attachments"]] == [photo["id"]], post
    seen = stream.wait_for(lambda s: s["id"] == post["id"])
    assert seen["media_attachments"][0]["url"] == photo["url"], seen
    assert b.status(post["id"])["media_attachments"][0]["description"] == "a test pattern"
    home = b.timeline_home()
    assert home[0]["media_attachments"][0]["id"] == photo["id"], home[0]
    video_post = a.status_post("", media_ids=[clip["id"]])
    assert video_post["media_attachments"][0]["type"] == "video", video_post

    # Edits keep the attachments in the history; uploads can be described before posting.
    second = a.media_post(path("photo.jpg"), synchronous=True)
    second = a.media_update(second["id"], description="the same pattern, again")
    assert second["description"] == "the same pattern, again", second
    a.status_update(post["id"], "two pictures", media_ids=[photo["id"], second["id"]])
    edited = b.status(post["id"])
    assert [m["id"] for m in edited["media_attachments"]] == [photo["id"], second["id"]], edited
    history = a.status_history(post["id"])
    assert len(history[0]["media_attachments"]) == 1 and len(history[-1]["media_attachments"]) == 2

    # Avatar and header.
    me = a.account_update_credentials(avatar=path("avatar.png"), header=path("photo.jpg"))
    assert "missing" not in me["avatar"] and "missing" not in me["header"], me
    status, content_type, _ = fetch(me["avatar"])
    assert (status, content_type) == (200, "image/png"), (status, content_type)
    assert b.account(alice["id"])["avatar"] == me["avatar"]

    # Bad files: 422 with a reason, whatever the client claims they are.
    reasons = {}
    for name in ("notes.txt", "bomb.png", "truncated.jpg"):
        reasons[name] = refused(lambda: a.media_post(path(name), mime_type="image/png"))
    handle.close()
    print(json.dumps({"ok": True, "reasons": reasons}))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
