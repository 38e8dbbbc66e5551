"""Drives Stampede's admin API with Mastodon.py, as an admin client would.

Called by the integration test `compat::mastodon_py_drives_the_admin_api`:

    mastodon_py_admin.py BASE_URL TOKENS_JSON   (tokens of root, an admin, and of bob and carol)

Each moderator action is checked by its effect on what another person (carol) sees. Any failed
expectation raises.
"""

import datetime
import json
import sys

from mastodon import Mastodon
from mastodon.errors import MastodonAPIError, MastodonNotFoundError


def client(base, token):
    return Mastodon(access_token=token, api_base_url=base, version_check_mode="none")


def public_ids(m):
    return [s["id"] for s in m.timeline_public()]


def main():
    base, tokens = sys.argv[1], json.loads(sys.argv[2])
    root, bob, carol = (client(base, tokens[n]) for n in ("root", "bob", "carol"))
    bob_id = bob.me()["id"]
    post = bob.status_post("buy cheap followers now")
    assert post["id"] in public_ids(carol)

    # Accounts, filtered as admin clients ask.
    staff = root.admin_accounts_v2(origin="local", permissions="staff")
    assert [a["username"] for a in staff] == ["root"], staff
    assert [a["username"] for a in root.admin_accounts_v2(username="bo")] == ["bob"]
    assert root.admin_account(bob_id)["email"] == "bob@mail.example"

    # A report, worked by the moderator, and silence as its outcome.
    report = carol.report(bob_id, status_ids=[post["id"]], comment="spam", category="spam")
    queue = root.admin_reports()
    assert [r["id"] for r in queue] == [report["id"]], queue
    assigned = root.admin_report_assign(report["id"])
    assert assigned["assigned_account"]["username"] == "root"
    root.admin_account_moderate(bob_id, action="silence", report_id=report["id"], text="spam")
    assert root.admin_reports() == [], "resolved with the action"
    assert post["id"] not in public_ids(carol), "a silenced account leaves the public timeline"
    silenced = root.admin_accounts_v2(status="silenced")
    assert [a["username"] for a in silenced] == ["bob"], silenced
    root.admin_account_unsilence(bob_id)
    assert post["id"] in public_ids(carol)

    # Suspension hides everything; lifting it brings it back.
    root.admin_account_moderate(bob_id, action="suspend")
    try:
        carol.status(post["id"])
        raise AssertionError("a suspended account's status is still served")
    except MastodonNotFoundError:
        pass
    assert root.admin_account(bob_id)["suspended"] is True
    root.admin_account_unsuspend(bob_id)
    assert carol.status(post["id"])["id"] == post["id"]

    # Domain blocks.
    block = root.admin_create_domain_block("spam.example", severity="suspend", public_comment="spam")
    assert block["severity"] == "suspend" and len(block["digest"]) == 64
    try:
        root.admin_create_domain_block("spam.example", severity="silence")
        raise AssertionError("a second block of one domain is accepted")
    except MastodonAPIError as e:
        assert e.args[1] == 422, e.args
    assert [b["domain"] for b in root.admin_domain_blocks()] == ["spam.example"]
    changed = root.admin_update_domain_block(block["id"], severity="silence", reject_media=True)
    assert changed["severity"] == "silence" and changed["reject_media"] is True
    root.admin_delete_domain_block(block["id"])
    assert root.admin_domain_blocks() == []

    # Domain allows, e-mail domain blocks, canonical e-mail blocks and IP blocks.
    allow = root.admin_create_domain_allow("friends.example")
    assert [a["domain"] for a in root.admin_domain_allows()] == ["friends.example"]
    root.admin_delete_domain_allow(allow["id"])
    email = root.admin_create_email_domain_block("mail.spam")
    assert len(email["history"]) == 7
    assert [e["domain"] for e in root.admin_email_domain_blocks()] == ["mail.spam"]
    root.admin_delete_email_domain_block(email["id"])
    canonical = root.admin_create_canonical_email_block(email="Some.One+tag@mail.example")
    assert len(root.admin_test_canonical_email_block("someone@mail.example")) == 1
    root.admin_delete_canonical_email_block(canonical["id"])
    ip = root.admin_create_ip_block("192.0.2.0/24", "sign_up_block", comment="surge", expires_in=3600)
    assert ip["ip"] == "192.0.2.0/24" and ip["expires_at"] is not None
    updated = root.admin_update_ip_block(ip["id"], severity="no_access")
    assert updated["severity"] == "no_access"
    assert len(root.admin_ip_blocks()) == 1
    root.admin_delete_ip_block(ip["id"])
    assert root.admin_ip_blocks() == []

    # The dashboard: today's sign-ups, interactions and active people.
    today = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    measures = {
        m["key"]: m
        for m in root.admin_measures(
            today, today, new_users=True, active_users=True, interactions=True, opened_reports=True
        )
    }
    assert str(measures["new_users"]["total"]) == "3", measures
    assert str(measures["opened_reports"]["total"]) == "1", measures
    assert len(measures["new_users"]["data"]) == 1
    dimensions = {
        d["key"]: d for d in root.admin_dimensions(today, today, servers=True, software_versions=True)
    }
    assert str(dimensions["servers"]["data"][0]["value"]) == "1", dimensions
    assert any(v["key"] == "postgresql" for v in dimensions["software_versions"]["data"])
    cohorts = root.admin_retention(today, today)
    assert str(cohorts[0]["data"][0]["value"]) == "3", cohorts

    # Moderators cannot manage federation; suspended, then deleted at once by the admin.
    root.admin_account_moderate(bob_id, action="suspend")
    deleted = root.admin_account_delete(bob_id)
    assert deleted["username"] == "bob"
    try:
        carol.account(bob_id)
        raise AssertionError("a deleted account is still served")
    except MastodonNotFoundError:
        pass
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
