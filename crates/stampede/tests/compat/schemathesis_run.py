#!/usr/bin/env python3
"""Runs schemathesis with Mastodon's OpenAPI description against a running Stampede server.

Only the operations Stampede serves are tested: the list is the one `tools/api_coverage.py
--covered` prints (the same route scan, imported). Every request carries the given user's
bearer token. Before the run the script creates a few resources with that token (statuses, a
poll, lists, filters, media, a scheduled status, a featured tag) and pins the path ids of the
operations that use them, so that responses about real entities are checked too; every other
path parameter is generated. Operations that delete get resources of their own.

Setup (schemathesis is pinned; other versions may word their reports differently; Python 3.12
or newer, see --workers):

    python3.13 -m venv /tmp/schemathesis-venv
    /tmp/schemathesis-venv/bin/pip install schemathesis==4.32.5

Run against a server started with RATE_LIMITS=false (the run signs up and signs in many times)
and listening on loopback only:

    /tmp/schemathesis-venv/bin/python crates/stampede/tests/compat/schemathesis_run.py \
        --base-url http://127.0.0.1:3300 --token TOKEN \
        [--schema interop/mastodon-openapi/schema.json] [--other-account-id ID]

--other-account-id names a second local account for the /accounts/{id}/... and
follow-request operations (default: the token's own account). Prints one line per operation
(ok / FAIL with the failed check codes / ERROR) and then, for each failure, schemathesis' own
description with a curl command that reproduces it (the token shown as $TOKEN). Exits 0 only
when every tested operation passed every check. Takes about a minute on 2 cores.
"""

import argparse
import importlib.util
import ipaddress
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
import zlib

HERE = pathlib.Path(__file__).resolve().parent
# crates/stampede/tests/compat -> repo root
ROOT = HERE.parents[3]
PINNED = "4.32.5"
METHODS = ("get", "post", "put", "patch", "delete")

CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
]

# schemathesis' failure codes (`st explain CODE`) for the checks run here.
CODE_NAMES = {"ST101": "not_a_server_error", "ST103": "status_code_conformance",
              "ST108": "response_schema_conformance"}

# Operations never sent, with the reason. (None at present.)
EXCLUDED = set()

# Server-sent event streams. A 200 is an endless `text/event-stream` body: schemathesis reads
# it until --stream-timeout passes (or one event arrives) and checks what it got, so these
# operations get a short timeout and few cases to keep the run short. The coverage phase is off
# for them because each of its dozens of cases would wait the full timeout.
STREAMING_PREFIX = "/api/v1/streaming/"
STREAMING_INSTANT = {("GET", "/api/v1/streaming/health")}


def patch_schema(doc):
    """Corrections to the OpenAPI file where it disagrees with what Mastodon really answers.

    Each one is applied only to the copy sent to schemathesis, never to the file itself.
    """
    paths = doc["paths"]
    ref_validation = "#/components/schemas/ValidationError"
    ref_error = "#/components/schemas/Error"
    # 1. The generator gives ~160 operations a 422 of `ValidationError`, which requires a
    #    `details` object. Mastodon answers 422 with `{"error": "..."}` only: its
    #    Api::ErrorHandling concern renders `{ error: e.to_s }` for RecordInvalid and
    #    ValidationError, and the documentation lists `details` for registration alone
    #    ("3.4.0 - added `details` to failure response" on POST /api/v1/accounts). So every
    #    other operation's 422 is checked against `Error` (error required, details absent).
    for path, item in paths.items():
        for method in METHODS:
            op = item.get(method)
            if op is None or (method, path) == ("post", "/api/v1/accounts"):
                continue
            content = op.get("responses", {}).get("422", {}).get("content", {}).get("application/json")
            if content and content.get("schema", {}).get("$ref") == ref_validation:
                content["schema"] = {"$ref": ref_error}
    # 2. GET /api/v1/filters returns an array (the response's own description says "List of
    #    [V1::Filter]"; Mastodon renders `@filters` with each_serializer), but the file gives a
    #    single V1Filter as the schema.
    filters = paths.get("/api/v1/filters", {}).get("get")
    if filters:
        content = filters["responses"]["200"]["content"]["application/json"]
        content["schema"] = {"type": "array", "items": content["schema"]}
    # 3. The instance's contact e-mail is `Setting.site_contact_email`, whose default in
    #    Mastodon's config/settings.yml is '' — so a Mastodon whose admin set none sends "",
    #    which `format: email` rejects. "" is allowed as well.
    schemas = doc["components"]["schemas"]
    for name, prop in (("V1Instance", ("email",)), ("Instance", ("contact", "email"))):
        node = schemas.get(name, {})
        for key in prop[:-1]:
            node = node.get("properties", {}).get(key, {})
        field = node.get("properties", {}).get(prop[-1])
        if field and field.get("format") == "email":
            description = field.pop("description", None)
            node["properties"][prop[-1]] = {"anyOf": [field, {"const": ""}]}
            if description:
                node["properties"][prop[-1]]["description"] = description
    # 4. ScheduledStatus `params` is the option hash PostStatusService stored, written back
    #    as it was: `visibility: status_params[:visibility]` is nil when the client sent none
    #    (the default privacy is applied to the status, not to the stored options), so
    #    Mastodon answers `"visibility": null` for such a scheduled status. null is allowed.
    scheduled = schemas.get("ScheduledStatus", {}).get("properties", {}).get("params", {}).get("properties", {})
    if "visibility" in scheduled:
        scheduled["visibility"] = {"anyOf": [scheduled["visibility"], {"type": "null"}]}
    # 5. 400s Mastodon answers that the file does not list (each verified in Mastodon's source):
    #    - GET /api/v2/notifications: `expand_accounts_param` raises InvalidParameterError
    #      ("Invalid value for 'expand_accounts': ...") for anything but full/partial_avatars,
    #      which Api::ErrorHandling renders as 400 {"error": ...}.
    #    - The hashtag and list streams: streaming/index.js (channelNameToIds) rejects a missing
    #      tag or list with a RequestError ("Missing tag name parameter" / "Missing list name
    #      parameter"), which the HTTP handler answers with 400 {"error": ...}.
    for path in ("/api/v2/notifications", "/api/v1/streaming/hashtag", "/api/v1/streaming/hashtag/local",
                 "/api/v1/streaming/list"):
        op = paths.get(path, {}).get("get")
        if op is not None:
            op["responses"].setdefault("400", {
                "description": "Bad Request",
                "content": {"application/json": {"schema": {"$ref": ref_error}}},
            })
    #    - Every operation that takes a body: a body that does not parse as its Content-Type
    #      says (`-d $'\x00'` with application/json) is refused by Rails before any controller
    #      runs (ActionDispatch::Http::Parameters::ParseError), answered 400.
    for path, item in paths.items():
        for method in METHODS:
            op = item.get(method)
            if op is not None and "requestBody" in op:
                op["responses"].setdefault("400", {
                    "description": "Bad Request",
                    "content": {"application/json": {"schema": {"$ref": ref_error}}},
                })
    # 6. DELETE /api/v2/filters/statuses/{id} answers `{}`: Api::V2::Filters::StatusesController
    #    #destroy is `@status_filter.destroy!; render_empty`, like the keyword one, but the file
    #    gives FilterStatus (required id, status_id) as the schema.
    unfilter = paths.get("/api/v2/filters/statuses/{id}", {}).get("delete")
    if unfilter:
        unfilter["responses"]["200"]["content"] = {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}
    return doc


# Checks switched off for single operations: {(METHOD, path): {check: reason}}. (None: where
# the file is wrong, patch_schema corrects it instead, which keeps the check.)
EXCLUDED_CHECKS = {}


def load_coverage():
    spec = importlib.util.spec_from_file_location("api_coverage", ROOT / "tools" / "api_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def served_operations(schema_path):
    """The [METHOD, path] pairs that `tools/api_coverage.py --covered` prints."""
    coverage = load_coverage()
    exact, wildcards = coverage.server_routes()
    return [(op[0], op[1]) for op in coverage.operations(schema_path) if coverage.covered(op, exact, wildcards)]


def check_loopback(base_url):
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        sys.exit(f"--base-url must be an http(s) URL, not {base_url!r}")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            sys.exit(f"--base-url must be a loopback address (127.0.0.0/8, [::1], localhost), not {host}")


class Api:
    """A minimal client for creating the resources the run uses."""

    def __init__(self, base_url, token):
        self.base = base_url.rstrip("/")
        self.token = token
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.problems = []

    def call(self, method, path, body=None, files=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if files is not None:
            boundary = uuid.uuid4().hex
            parts = []
            for name, (filename, ctype, content) in files.items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {ctype}\r\n\r\n".encode() + content + b"\r\n"
                )
            data = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        if status >= 300:
            self.problems.append(f"{method} {path} -> {status} {str(payload)[:200]}")
            return None
        return payload

    def id_of(self, method, path, body=None, files=None, key="id"):
        payload = self.call(method, path, body, files)
        if isinstance(payload, dict) and payload.get(key) is not None:
            return str(payload[key])
        return None


def tiny_png():
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def create_fixtures(api, other_account_id):
    """Creates resources and returns {(METHOD, path): {"path.NAME": value}} for the run."""
    me = api.call("GET", "/api/v1/accounts/verify_credentials") or {}
    me_id = str(me.get("id")) if me.get("id") else None
    account = other_account_id or me_id
    tag = "schemathesis"

    def status(text, **extra):
        return api.id_of("POST", "/api/v1/statuses", {"status": text, **extra})

    status_id = status(f"schemathesis #{tag}")
    doomed_status = status("schemathesis, to be deleted")
    poll_payload = api.call("POST", "/api/v1/statuses",
                            {"status": "schemathesis poll", "poll": {"options": ["a", "b"], "expires_in": 86400}})
    poll_id = str(poll_payload["poll"]["id"]) if isinstance(poll_payload, dict) and poll_payload.get("poll") else None
    direct = api.call("POST", "/api/v1/statuses", {"status": "schemathesis direct", "visibility": "direct"})
    conversations = api.call("GET", "/api/v1/conversations") or []
    conversation_id = str(conversations[0]["id"]) if conversations else None
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7 * 86400))
    scheduled = api.id_of("POST", "/api/v1/statuses", {"status": "schemathesis scheduled", "scheduled_at": later})
    doomed_scheduled = api.id_of("POST", "/api/v1/statuses", {"status": "schemathesis scheduled 2", "scheduled_at": later})
    list_id = api.id_of("POST", "/api/v1/lists", {"title": "schemathesis"})
    doomed_list = api.id_of("POST", "/api/v1/lists", {"title": "schemathesis, to be deleted"})
    filter_v1 = api.id_of("POST", "/api/v1/filters", {"phrase": "schemathesis-v1", "context": ["home"]})
    doomed_filter_v1 = api.id_of("POST", "/api/v1/filters", {"phrase": "schemathesis-v1b", "context": ["home"]})
    filter_v2 = api.id_of("POST", "/api/v2/filters", {"title": "schemathesis", "context": ["home", "public"]})
    doomed_filter_v2 = api.id_of("POST", "/api/v2/filters", {"title": "schemathesis 2", "context": ["home"]})
    keyword = keyword2 = filter_status = filter_status2 = None
    if filter_v2:
        keyword = api.id_of("POST", f"/api/v2/filters/{filter_v2}/keywords", {"keyword": "schemathesis-kw"})
        keyword2 = api.id_of("POST", f"/api/v2/filters/{filter_v2}/keywords", {"keyword": "schemathesis-kw2"})
        if status_id:
            filter_status = api.id_of("POST", f"/api/v2/filters/{filter_v2}/statuses", {"status_id": status_id})
        if doomed_status:
            filter_status2 = api.id_of("POST", f"/api/v2/filters/{filter_v2}/statuses", {"status_id": doomed_status})
    featured = api.id_of("POST", "/api/v1/featured_tags", {"name": f"schemathesis{int(time.time())}"})
    tag_entity = api.call("GET", f"/api/v1/tags/{tag}") or {}
    tag_id = str(tag_entity["id"]) if isinstance(tag_entity, dict) and tag_entity.get("id") else None
    png = {"file": ("pixel.png", "image/png", tiny_png())}
    media = api.id_of("POST", "/api/v2/media", files=png)
    doomed_media = api.id_of("POST", "/api/v2/media", files=png)
    if list_id and other_account_id:
        api.call("POST", f"/api/v1/accounts/{other_account_id}/follow")
        api.call("POST", f"/api/v1/lists/{list_id}/accounts", {"account_ids": [other_account_id]})
    del direct

    pins = {}

    def pin(method, path, **values):
        values = {f"path.{k}": v for k, v in values.items() if v is not None}
        if values:
            pins[(method, path)] = values

    for method, path in (
        ("GET", "/api/v1/accounts/{id}"), ("POST", "/api/v1/accounts/{id}/block"),
        ("POST", "/api/v1/accounts/{id}/endorse"), ("GET", "/api/v1/accounts/{id}/endorsements"),
        ("GET", "/api/v1/accounts/{id}/featured_tags"), ("POST", "/api/v1/accounts/{id}/follow"),
        ("GET", "/api/v1/accounts/{id}/followers"), ("GET", "/api/v1/accounts/{id}/following"),
        ("GET", "/api/v1/accounts/{id}/lists"), ("POST", "/api/v1/accounts/{id}/mute"),
        ("POST", "/api/v1/accounts/{id}/note"), ("POST", "/api/v1/accounts/{id}/pin"),
        ("POST", "/api/v1/accounts/{id}/remove_from_followers"), ("GET", "/api/v1/accounts/{id}/statuses"),
        ("POST", "/api/v1/accounts/{id}/unblock"), ("POST", "/api/v1/accounts/{id}/unendorse"),
        ("POST", "/api/v1/accounts/{id}/unfollow"), ("POST", "/api/v1/accounts/{id}/unmute"),
        ("POST", "/api/v1/accounts/{id}/unpin"),
    ):
        pin(method, path, id=account)
    for method, path in (("POST", "/api/v1/follow_requests/{account_id}/authorize"),
                         ("POST", "/api/v1/follow_requests/{account_id}/reject"),
                         ("DELETE", "/api/v1/suggestions/{account_id}")):
        pin(method, path, account_id=other_account_id)
    for suffix in ("", "/bookmark", "/context", "/favourite", "/favourited_by", "/history", "/mute", "/pin",
                   "/reblog", "/reblogged_by", "/source", "/unbookmark", "/unfavourite", "/unmute", "/unpin",
                   "/unreblog"):
        method = "GET" if suffix in ("", "/context", "/favourited_by", "/history", "/reblogged_by", "/source") else "POST"
        pin(method, "/api/v1/statuses/{id}" + suffix, id=status_id)
    pin("PUT", "/api/v1/statuses/{id}", id=status_id)
    pin("DELETE", "/api/v1/statuses/{id}", id=doomed_status)
    pin("GET", "/api/v1/polls/{id}", id=poll_id)
    pin("POST", "/api/v1/polls/{id}/votes", id=poll_id)
    pin("POST", "/api/v1/conversations/{id}/read", id=conversation_id)
    pin("GET", "/api/v1/scheduled_statuses/{id}", id=scheduled)
    pin("PUT", "/api/v1/scheduled_statuses/{id}", id=scheduled)
    pin("DELETE", "/api/v1/scheduled_statuses/{id}", id=doomed_scheduled)
    for method in ("GET", "PUT", "POST"):
        pin(method, "/api/v1/lists/{id}", id=list_id)
        pin(method, "/api/v1/lists/{id}/accounts", id=list_id)
    pin("DELETE", "/api/v1/lists/{id}/accounts", id=list_id)
    pin("DELETE", "/api/v1/lists/{id}", id=doomed_list)
    pin("GET", "/api/v1/timelines/list/{list_id}", list_id=list_id)
    pin("GET", "/api/v1/filters/{id}", id=filter_v1)
    pin("PUT", "/api/v1/filters/{id}", id=filter_v1)
    pin("DELETE", "/api/v1/filters/{id}", id=doomed_filter_v1)
    pin("GET", "/api/v2/filters/{id}", id=filter_v2)
    pin("PUT", "/api/v2/filters/{id}", id=filter_v2)
    pin("DELETE", "/api/v2/filters/{id}", id=doomed_filter_v2)
    for method in ("GET", "POST"):
        pin(method, "/api/v2/filters/{filter_id}/keywords", filter_id=filter_v2)
        pin(method, "/api/v2/filters/{filter_id}/statuses", filter_id=filter_v2)
    pin("GET", "/api/v2/filters/keywords/{id}", id=keyword)
    pin("PUT", "/api/v2/filters/keywords/{id}", id=keyword)
    pin("DELETE", "/api/v2/filters/keywords/{id}", id=keyword2)
    pin("GET", "/api/v2/filters/statuses/{id}", id=filter_status)
    pin("DELETE", "/api/v2/filters/statuses/{id}", id=filter_status2)
    pin("DELETE", "/api/v1/featured_tags/{id}", id=featured)
    pin("GET", "/api/v1/media/{id}", id=media)
    pin("PUT", "/api/v1/media/{id}", id=media)
    pin("DELETE", "/api/v1/media/{id}", id=doomed_media)
    pin("POST", "/api/v1/tags/{id}/feature", id=tag_id)
    pin("POST", "/api/v1/tags/{id}/unfeature", id=tag_id)
    for method, path in (("GET", "/api/v1/tags/{name}"), ("POST", "/api/v1/tags/{name}/follow"),
                         ("POST", "/api/v1/tags/{name}/unfollow")):
        pin(method, path, name=tag)
    pin("GET", "/api/v1/timelines/tag/{hashtag}", hashtag=tag)
    return pins


def toml_string(value):
    return json.dumps(str(value))


def config_toml(tested, pins, args):
    """schemathesis.toml for the run.

    The run's settings are here rather than on the command line: command-line options override
    every per-operation table, so `--checks` or `--max-examples` would undo the tables below.
    Operation tables are selected by `include-name` ("METHOD /path"): separate include-method
    and include-path keys would be OR-ed, and the first matching table wins.
    """
    phases = set(args.phases.split(","))
    lines = [
        f"seed = {args.seed}",
        f"request-timeout = {args.request_timeout}",
        # Never follow a redirect: it could lead off loopback (OAuth redirects, remote media).
        "max-redirects = 0",
        "",
        "[checks]",
        "enabled = false",
        *(f"{check}.enabled = true" for check in CHECKS),
        "",
        "[phases]",
        *(f"{phase}.enabled = {str(phase in phases).lower()}" for phase in ("examples", "coverage", "fuzzing", "stateful")),
        "",
        "[generation]",
        f"mode = {toml_string(args.mode)}",
        f"max-examples = {args.max_examples}",
        f"no-shrink = {str(not args.shrink).lower()}",
        'database = "none"',
        "",
        # No crash cache (.schemathesis/ in the working directory): it would replay the last
        # run's failures first and make runs depend on each other.
        "[cache]",
        "enabled = false",
        "",
    ]
    settings = {}
    for op, checks in EXCLUDED_CHECKS.items():
        settings.setdefault(op, []).extend(f"checks.{check}.enabled = false" for check in checks)
    for op, values in pins.items():
        inline = ", ".join(f"{toml_string(k)} = {toml_string(v)}" for k, v in values.items())
        settings.setdefault(op, []).append("parameters = { " + inline + " }")
    for op in tested:
        if op[1].startswith(STREAMING_PREFIX) and op not in STREAMING_INSTANT:
            settings.setdefault(op, []).extend([
                f"request-timeout = {args.stream_timeout}", "max-stream-events = 1",
                "phases.coverage.enabled = false", "generation.max-examples = 2",
            ])
    for (method, path), entries in sorted(settings.items()):
        if (method, path) in tested:
            lines += ["[[operations]]", f"include-name = {toml_string(f'{method} {path}')}", *entries, ""]
    return "\n".join(lines)


def filtered_schema(schema_path, keep, base_url):
    """The schema with only the operations in `keep`, served from `base_url`."""
    doc = json.loads(pathlib.Path(schema_path).read_text())
    doc["servers"] = [{"url": base_url.rstrip("/")}]
    paths = {}
    for path, item in doc["paths"].items():
        new = {k: v for k, v in item.items() if k not in METHODS or (k.upper(), path) in keep}
        if any(k in new for k in METHODS):
            paths[path] = new
    doc["paths"] = paths
    return patch_schema(doc)


def schemathesis_command():
    local = pathlib.Path(sys.executable).parent / "schemathesis"
    exe = str(local) if local.exists() else shutil.which("schemathesis")
    if exe is None:
        sys.exit(f"schemathesis is not installed: pip install schemathesis=={PINNED}")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    if PINNED not in version:
        print(f"warning: this script is written for schemathesis {PINNED}, found {version!r}", file=sys.stderr)
    return exe


def summarize(junit_path, tested, token):
    """Per-operation lines from schemathesis' JUnit report; returns (lines, details, failed)."""
    results = {}
    if junit_path.exists():
        for case in ElementTree.parse(junit_path).getroot().iter("testcase"):
            results[case.get("name")] = (case.findall("failure"), case.findall("error"), case.findall("skipped"))
    lines, details, failed = [], [], 0
    for method, path in tested:
        name = f"{method} {path}"
        failures, errors, skipped = results.get(name, ([], [], []))
        if failures:
            codes = sorted({c.strip() for f in failures for c in (f.get("message") or "").split(",") if c.strip()})
            named = ", ".join((c + " " + CODE_NAMES.get(c, "")).strip() for c in codes)
            lines.append(f"FAIL   {name}  [{named}]")
            details += [f"==== {name}"] + [f.text or "" for f in failures]
            failed += 1
        elif errors:
            first = (errors[0].text or errors[0].get("message") or "").strip().splitlines()
            lines.append(f"ERROR  {name}  {first[0] if first else ''}")
            for error in errors:
                text = (error.text or error.get("message") or "").strip().splitlines()
                # A traceback: its first and last lines say what happened.
                shown = text if len(text) <= 30 else text[:3] + ["    ..."] + text[-12:]
                details += [f"==== {name} (error)"] + [line[:300] for line in shown]
            failed += 1
        elif name not in results:
            lines.append(f"?      {name}  (not in schemathesis' report)")
        elif skipped:
            lines.append(f"skip   {name}  {(skipped[0].text or '').strip()[:100]}")
        else:
            lines.append(f"ok     {name}")
    details = [text.replace(token, "$TOKEN") for text in details]
    return lines, details, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="Stampede's web URL, e.g. http://127.0.0.1:3300")
    ap.add_argument("--token", required=True, help="a user's bearer token (scopes read write follow push)")
    ap.add_argument("--schema", default=None, help="Mastodon's OpenAPI schema.json")
    ap.add_argument("--other-account-id", default=None, help="a second local account for /accounts/{id}/...")
    ap.add_argument("--max-examples", type=int, default=10, help="cases per operation in the fuzzing phase")
    ap.add_argument("--seed", type=int, default=20250101)
    # Python 3.11's ast module can raise "SystemError: AST constructor recursion depth
    # mismatch" when two threads parse at once (CPython gh-106905, fixed in 3.12), which
    # Hypothesis does while describing strategies: one worker there, two from 3.12 on.
    ap.add_argument("--workers", default="2" if sys.version_info >= (3, 12) else "1")
    ap.add_argument("--phases", default="examples,coverage,fuzzing")
    ap.add_argument("--mode", default="all", choices=("positive", "negative", "all"))
    ap.add_argument("--request-timeout", type=float, default=10.0)
    ap.add_argument("--stream-timeout", type=float, default=1.0, help="seconds to read an event stream")
    ap.add_argument("--shrink", action="store_true", help="shrink failing cases (slower)")
    ap.add_argument("--no-fixtures", action="store_true", help="generate every path id")
    ap.add_argument("--report-dir", default=None, help="keep schemathesis' reports here")
    ap.add_argument("--include", action="append", default=[], help="only paths containing this text")
    args = ap.parse_args()

    check_loopback(args.base_url)
    schema = args.schema or str(load_coverage().default_schema())
    served = served_operations(schema)
    tested = [op for op in served if op not in EXCLUDED]
    if args.include:
        tested = [op for op in tested if any(text in op[1] for text in args.include)]
    print(f"served {len(served)} operations, testing {len(tested)}")
    exe = schemathesis_command()

    api = Api(args.base_url, args.token)
    pins = {} if args.no_fixtures else create_fixtures(api, args.other_account_id)
    for problem in api.problems:
        print(f"fixture not created: {problem}")

    work = pathlib.Path(args.report_dir) if args.report_dir else pathlib.Path(tempfile.mkdtemp(prefix="stampede-st-"))
    work.mkdir(parents=True, exist_ok=True)
    schema_file = work / "schema.json"
    schema_file.write_text(json.dumps(filtered_schema(schema, set(tested), args.base_url)))
    config_file = work / "schemathesis.toml"
    config_file.write_text(config_toml(set(tested), pins, args))
    junit = work / "junit.xml"

    cmd = [
        exe, "--config-file", str(config_file), "--no-color",
        "run", str(schema_file),
        "--url", args.base_url.rstrip("/"),
        "--header", f"Authorization: Bearer {args.token}",
        "--workers", args.workers,
        "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(junit),
        # Reproductions need the real bodies; the token is replaced by $TOKEN when printed.
        "--output-sanitize", "false",
        "--output-truncate", "true",
    ]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    log = work / "schemathesis.log"
    started = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work).returncode
    for path in (log, junit):
        if path.exists():
            path.write_text(path.read_text().replace(args.token, "$TOKEN"))

    lines, details, failed = summarize(junit, tested, args.token)
    print("\n".join(lines))
    if details:
        print("\n" + "\n".join(details))
    print(f"\nschemathesis took {time.monotonic() - started:.0f} s; its output: {log}")
    if rc != 0 and failed == 0:
        print(f"schemathesis exited {rc} without a failing operation in its report; the end of its output:")
        print("\n".join(log.read_text().splitlines()[-40:]))
    print(f"{len(tested) - failed} passed, {failed} failed")
    return 1 if rc != 0 or failed else 0


if __name__ == "__main__":
    sys.exit(main())
