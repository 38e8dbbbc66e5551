"""Drives Stampede with Mastodon.py, a real Mastodon client library.

Called by the integration test `compat::mastodon_py_drives_the_account_flow` in two phases:

    mastodon_py_flow.py signup BASE_URL        -> prints {"client_id", "client_secret", "token"}
    mastodon_py_flow.py use BASE_URL CREDS_JSON -> prints {"ok": true, ...} after the e-mail is confirmed

Any failed expectation raises, which the test reports with this script's output.
"""

import json
import sys

from mastodon import Mastodon, MastodonUnauthorizedError

EMAIL = "pyuser@mail.example"
PASSWORD = "correct horse battery"


def signup(base):
    client_id, client_secret = Mastodon.create_app(
        "Mastodon.py compat",
        api_base_url=base,
        scopes=["read", "write", "follow"],
        redirect_uris="urn:ietf:wg:oauth:2.0:oob",
    )
    m = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
    instance = m.instance()
    assert instance["version"].startswith("4.5.0"), instance["version"]
    v2 = m.instance_v2()
    assert v2["registrations"]["enabled"] is True, v2["registrations"]

    # A bad sign-up comes back as Mastodon's 422 with details.
    token, error = m.create_account(
        "admin", PASSWORD, "x@mail.example", agreement=True, scopes=["read", "write"],
        return_detailed_error=True,
    )
    assert token is None, token
    assert error["details"]["username"][0]["error"] == "ERR_RESERVED", error

    token = m.create_account(
        "pyuser", PASSWORD, EMAIL, agreement=True, locale="en", scopes=["read", "write"]
    )
    print(json.dumps({"client_id": client_id, "client_secret": client_secret, "token": token}))


def use(base, creds):
    m = Mastodon(
        client_id=creds["client_id"], client_secret=creds["client_secret"], api_base_url=base
    )
    # allow_http: the test server has no TLS.
    token = m.log_in(EMAIL, PASSWORD, scopes=["read", "write"], allow_http=True)
    assert token
    me = m.account_verify_credentials()
    assert me["username"] == "pyuser", me
    assert me["source"]["privacy"] == "public", me["source"]

    m.account_update_credentials(
        display_name="Py User", note="hello from python", fields=[("site", "example")], locked=True
    )
    me = m.me()
    assert me["display_name"] == "Py User", me
    assert me["locked"] is True, me
    assert me["fields"][0]["name"] == "site", me["fields"]

    found = m.account_lookup("pyuser")
    assert found["id"] == me["id"], found
    assert m.account(me["id"])["display_name"] == "Py User"

    url = m.auth_request_url(
        scopes=["read"], redirect_uris="urn:ietf:wg:oauth:2.0:oob", allow_http=True
    )
    assert "/oauth/authorize" in url, url

    # The sign-up token also works now that the address is confirmed.
    first = Mastodon(access_token=creds["token"], api_base_url=base)
    assert first.me()["id"] == me["id"]

    m.revoke_access_token(allow_http=True)
    try:
        Mastodon(access_token=token, api_base_url=base, version_check_mode="none").me()
        raise AssertionError("a revoked token still works")
    except MastodonUnauthorizedError:
        pass
    print(json.dumps({"ok": True, "id": me["id"]}))


if __name__ == "__main__":
    phase, base = sys.argv[1], sys.argv[2]
    if phase == "signup":
        signup(base)
    else:
        use(base, json.loads(sys.argv[3]))
