// An independent ActivityPub peer built on Fedify, for Stampede's interop tests.
//
// One actor, `zed`, served at http://127.0.0.1:$PORT/users/zed, plus a small JSON
// control API under /control/ that the Rust test drives.  See README.md.

import http from "node:http";
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import process from "node:process";

import {
  createFederation,
  generateCryptoKeyPair,
  MemoryKvStore,
} from "@fedify/fedify";
import {
  Accept,
  Activity,
  Announce,
  Create,
  Delete,
  Endpoints,
  Follow,
  isActor,
  Like,
  Mention,
  Note,
  Person,
  PUBLIC_COLLECTION,
  Reject,
  Tombstone,
  Undo,
  Update,
} from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { configure, defaultTextFormatter } from "@logtape/logtape";

// ---------------------------------------------------------------------------
// Configuration

const PORT = Number.parseInt(process.env.PORT ?? "", 10);
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) {
  process.stderr.write("peer: PORT must be set to a TCP port number\n");
  process.exit(2);
}
const ORIGIN = `http://127.0.0.1:${PORT}`;
const USERNAME = "zed";
// Mastodon speaks draft-cavage; Fedify's own default would be RFC 9421 first.
const FIRST_KNOCK = process.env.FIRST_KNOCK ?? "draft-cavage-http-signatures-12";
const LOG_LEVEL = process.env.LOG_LEVEL ?? "info";

function log(...parts) {
  process.stderr.write(`[peer ${new Date().toISOString()}] ${parts.join(" ")}\n`);
}

// Fedify's own diagnostics (signature checks, deliveries) go to stderr.
await configure({
  contextLocalStorage: new AsyncLocalStorage(),
  sinks: {
    stderr(record) {
      process.stderr.write(defaultTextFormatter(record));
    },
  },
  loggers: [
    { category: "fedify", sinks: ["stderr"], lowestLevel: LOG_LEVEL },
    { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
  ],
});

// ---------------------------------------------------------------------------
// State (all in memory)

const rsaKeyPair = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");

/** Every activity that reached an inbox listener, oldest first. */
const received = [];
/** Activities that reached an inbox but failed signature verification. */
const rejected = [];
/** Notes zed wrote, by id (href). */
const notes = new Map();
/** Ids of notes zed deleted (served as 410 Gone with a Tombstone). */
const deletedNotes = new Set();
/** Activities zed sent, by id (href); served at their ids too. */
const sent = new Map();
/** zed's followers, by actor id: { id, inboxId, endpoints }. */
const followers = new Map();

/** Every POST to an inbox here: its path, signature scheme, answer and activity id. */
const inboundPosts = [];

/** Every POST zed made to a remote inbox, as it went on the wire. */
const deliveries = [];

// Fedify delivers with the global fetch(); wrap it to keep a copy of each
// outgoing POST (headers, body, answer) for /control/deliveries.
const originalFetch = globalThis.fetch;
globalThis.fetch = async function fetchAndRecord(input, init) {
  const method = (init?.method ?? (input instanceof Request ? input.method : "GET"))
    .toUpperCase();
  if (method !== "POST") return await originalFetch(input, init);
  const request = new Request(input, init);
  const bodyText = await request.clone().text();
  let activity = null;
  try {
    activity = JSON.parse(bodyText);
  } catch {
    activity = null;
  }
  const entry = {
    seq: deliveries.length + 1,
    at: new Date().toISOString(),
    inbox: request.url,
    headers: Object.fromEntries(request.headers),
    activity,
    status: null,
    responseBody: null,
    error: null,
  };
  deliveries.push(entry);
  try {
    const response = await originalFetch(request);
    entry.status = response.status;
    if (!response.ok) {
      entry.responseBody = (await response.clone().text()).slice(0, 2048);
    }
    log(`delivery POST ${request.url} -> ${response.status}`);
    return response;
  } catch (error) {
    entry.error = String(error?.message ?? error);
    throw error;
  }
};

function newActivityId() {
  return new URL(`/activities/${randomUUID()}`, ORIGIN);
}

// ---------------------------------------------------------------------------
// Federation

const federation = createFederation({
  kv: new MemoryKvStore(),
  origin: ORIGIN,
  // Loopback peers: lift Fedify's SSRF guard (tests only).
  allowPrivateAddress: true,
  firstKnock: FIRST_KNOCK,
  // Signature verification stays on (skipSignatureVerification is not set).
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== USERNAME) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: USERNAME,
      name: "Zed (Fedify peer)",
      summary: "<p>An ActivityPub peer built on Fedify for interop tests.</p>",
      url: ctx.getActorUri(identifier),
      inbox: ctx.getInboxUri(identifier),
      outbox: ctx.getOutboxUri(identifier),
      followers: ctx.getFollowersUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      manuallyApprovesFollowers: false,
      discoverable: true,
      published: Temporal.Instant.from("2024-01-01T00:00:00Z"),
      publicKey: keys[0]?.cryptographicKey,
      assertionMethods: keys.map((k) => k.multikey),
    });
  })
  .mapHandle((_ctx, username) => (username === USERNAME ? USERNAME : null))
  .setKeyPairsDispatcher((_ctx, identifier) =>
    identifier === USERNAME ? [rsaKeyPair] : []
  );

federation
  .setFollowersDispatcher("/users/{identifier}/followers", (_ctx, identifier) => {
    if (identifier !== USERNAME) return null;
    return { items: [...followers.values()] };
  })
  .setCounter((_ctx, identifier) =>
    identifier === USERNAME ? followers.size : null
  );

federation
  .setOutboxDispatcher("/users/{identifier}/outbox", (_ctx, identifier) => {
    if (identifier !== USERNAME) return null;
    const items = [...sent.values()]
      .map((s) => s.activity)
      .filter((a) => a instanceof Create)
      .reverse();
    return { items };
  })
  .setCounter((_ctx, identifier) =>
    identifier === USERNAME
      ? [...sent.values()].filter((s) => s.activity instanceof Create).length
      : null
  );

federation.setObjectDispatcher(Note, "/notes/{id}", (ctx, values) => {
  return notes.get(ctx.getObjectUri(Note, values).href) ?? null;
});

// --- Inbox ------------------------------------------------------------------

function asArray(value) {
  if (value == null) return [];
  return Array.isArray(value) ? value : [value];
}

function refId(value) {
  if (value == null) return null;
  if (typeof value === "string") return value;
  if (typeof value === "object" && typeof value.id === "string") return value.id;
  if (typeof value === "object" && typeof value.href === "string") return value.href;
  return null;
}

function refIds(value) {
  return asArray(value).map(refId).filter((v) => v != null);
}

// Mastodon and others sometimes compact the public collection to "as:Public"/"Public".
function normalizeAudience(ids) {
  return ids.map((id) =>
    id === "as:Public" || id === "Public" ? PUBLIC_COLLECTION.href : id
  );
}

async function record(ctx, activity) {
  let raw = null;
  try {
    raw = await activity.toJsonLd();
  } catch (error) {
    log("could not serialise received activity:", String(error));
  }
  const rawObject =
    raw != null && typeof raw.object === "object" && !Array.isArray(raw.object)
      ? raw.object
      : null;
  const entry = {
    seq: received.length + 1,
    receivedAt: new Date().toISOString(),
    inbox: ctx.recipient == null ? "shared" : ctx.recipient,
    type:
      typeof raw?.type === "string" ? raw.type : activity.constructor.name,
    id: activity.id?.href ?? null,
    actor: activity.actorId?.href ?? null,
    to: activity.toIds.map((u) => u.href),
    cc: activity.ccIds.map((u) => u.href),
    object: activity.objectId?.href ?? refId(raw?.object),
    objectType: null,
    objectContent: null,
    objectTo: [],
    objectCc: [],
    objectInReplyTo: null,
    objectAttributedTo: null,
    objectTags: [],
    objectActor: null,
    objectObject: null,
    raw,
  };
  if (rawObject != null) {
    entry.objectType = typeof rawObject.type === "string"
      ? rawObject.type
      : asArray(rawObject.type)[0] ?? null;
    entry.objectContent = typeof rawObject.content === "string"
      ? rawObject.content
      : null;
    entry.objectTo = normalizeAudience(refIds(rawObject.to));
    entry.objectCc = normalizeAudience(refIds(rawObject.cc));
    entry.objectInReplyTo = refId(rawObject.inReplyTo);
    entry.objectAttributedTo = refId(rawObject.attributedTo);
    entry.objectTags = asArray(rawObject.tag).filter((t) =>
      t != null && typeof t === "object"
    ).map((t) => ({
      type: t.type ?? null,
      href: t.href ?? null,
      name: t.name ?? null,
    }));
    entry.objectActor = refId(rawObject.actor);
    entry.objectObject = refId(rawObject.object);
  }
  received.push(entry);
  log(
    `received ${entry.type} ${entry.id} from ${entry.actor}` +
      ` (object ${entry.object}${entry.objectType ? ` ${entry.objectType}` : ""})` +
      ` at ${entry.inbox} inbox`,
  );
  return entry;
}

function toRecipient(actor) {
  return {
    id: actor.id,
    inboxId: actor.inboxId,
    endpoints: actor.endpoints == null
      ? null
      : { sharedInbox: actor.endpoints.sharedInbox ?? null },
  };
}

async function onFollow(ctx, follow) {
  await record(ctx, follow);
  const target = ctx.parseUri(follow.objectId);
  if (target?.type !== "actor" || target.identifier !== USERNAME) {
    log("Follow is not for zed; ignored");
    return;
  }
  if (follow.id == null || follow.actorId == null) {
    log("Follow without id or actor; ignored");
    return;
  }
  const follower = await follow.getActor();
  if (!isActor(follower) || follower.inboxId == null) {
    log("could not resolve the follower actor", follow.actorId.href);
    return;
  }
  followers.set(follower.id.href, toRecipient(follower));
  const accept = new Accept({
    id: new URL(`/users/${USERNAME}#accepts/${randomUUID()}`, ORIGIN),
    actor: ctx.getActorUri(USERNAME),
    object: follow,
    to: follower.id,
  });
  await ctx.sendActivity({ identifier: USERNAME }, follower, accept);
  sent.set(accept.id.href, { activity: accept, at: new Date().toISOString() });
  log(`accepted follow ${follow.id.href} from ${follower.id.href}`);
}

async function onUndo(ctx, undo) {
  const entry = await record(ctx, undo);
  // Undo(Follow): forget the follower.
  if (entry.objectType === "Follow" || entry.objectType == null) {
    const actor = entry.actor;
    if (actor != null && followers.has(actor)) {
      const followObject = entry.objectObject;
      if (
        followObject == null ||
        followObject === new URL(`/users/${USERNAME}`, ORIGIN).href
      ) {
        followers.delete(actor);
        log(`follower ${actor} removed`);
      }
    }
  }
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Follow, onFollow)
  .on(Undo, onUndo)
  .on(Accept, async (ctx, activity) => void await record(ctx, activity))
  .on(Reject, async (ctx, activity) => void await record(ctx, activity))
  .on(Create, async (ctx, activity) => void await record(ctx, activity))
  .on(Update, async (ctx, activity) => void await record(ctx, activity))
  .on(Delete, async (ctx, activity) => void await record(ctx, activity))
  .on(Announce, async (ctx, activity) => void await record(ctx, activity))
  .on(Like, async (ctx, activity) => void await record(ctx, activity))
  // Anything else (Block, Move, Add, ...) is recorded too.
  .on(Activity, async (ctx, activity) => void await record(ctx, activity))
  // Signature verification stays on: a request that fails it gets Fedify's 401;
  // we only keep a note of it for /control/rejected.
  .onUnverifiedActivity((ctx, activity, reason) => {
    const entry = {
      seq: rejected.length + 1,
      at: new Date().toISOString(),
      path: new URL(ctx.request.url).pathname,
      type: activity.constructor.name,
      id: activity.id?.href ?? null,
      actor: activity.actorId?.href ?? null,
      reason: reason.type,
      keyId: reason.keyId?.href ?? null,
      signature: ctx.request.headers.get("signature"),
      signatureInput: ctx.request.headers.get("signature-input"),
    };
    rejected.push(entry);
    log(`rejected unverified ${entry.type} ${entry.id}: ${entry.reason}`);
  })
  .onError((_ctx, error) => {
    log("inbox listener error:", error?.stack ?? String(error));
  });

// ---------------------------------------------------------------------------
// Control API helpers

function controlContext() {
  return federation.createContext(new URL(ORIGIN), undefined);
}

/** Resolves an actor by id (URL) and fails loudly if it is not an actor. */
async function resolveActor(ctx, actorId) {
  if (typeof actorId !== "string" || actorId === "") {
    throw new Error("an actor id is required");
  }
  const object = await ctx.lookupObject(actorId);
  if (!isActor(object)) {
    throw new Error(`could not resolve ${actorId} to an actor`);
  }
  if (object.inboxId == null) throw new Error(`${actorId} has no inbox`);
  return object;
}

/**
 * Resolves a fediverse handle.  Fedify's own WebFinger lookup always uses
 * https://, so for a plain-http loopback server we fall back to fetching
 * http://host/.well-known/webfinger ourselves and then look up the
 * `self` link with Fedify.
 */
async function resolveHandle(ctx, handle) {
  if (typeof handle !== "string") throw new Error("handle is required");
  const bare = handle.replace(/^@/, "").replace(/^acct:/, "");
  const at = bare.lastIndexOf("@");
  if (at <= 0 || at === bare.length - 1) {
    throw new Error(`not a handle: ${handle}`);
  }
  const host = bare.slice(at + 1);
  const loopback = /^(127\.|localhost(:|$)|\[::1\])/.test(host);
  if (!loopback) {
    const object = await ctx.lookupObject(`@${bare}`);
    if (isActor(object)) return object;
  }
  const url = new URL(`http://${host}/.well-known/webfinger`);
  url.searchParams.set("resource", `acct:${bare}`);
  const response = await fetch(url, {
    headers: { Accept: "application/jrd+json" },
  });
  if (!response.ok) {
    throw new Error(`WebFinger ${url.href} answered ${response.status}`);
  }
  const selfHref = selfLink(await response.json());
  if (selfHref == null) throw new Error(`WebFinger for ${handle} has no self link`);
  return await resolveActor(ctx, selfHref);
}

function selfLink(jrd) {
  for (const link of jrd?.links ?? []) {
    if (link.rel !== "self" || link.href == null) continue;
    if (
      link.type === "application/activity+json" ||
      /^application\/ld\+json/.test(link.type ?? "")
    ) {
      return link.href;
    }
  }
  return null;
}

function handleOf(actor) {
  return `@${actor.preferredUsername}@${actor.id.host}`;
}

function optionalUrl(value, name) {
  if (value == null || value === "") return null;
  try {
    return new URL(value);
  } catch {
    throw new Error(`${name} is not a URL: ${value}`);
  }
}

function remember(activity) {
  sent.set(activity.id.href, { activity, at: new Date().toISOString() });
}

async function send(ctx, recipients, activity, options = {}) {
  await ctx.sendActivity({ identifier: USERNAME }, recipients, activity, {
    immediate: true,
    ...options,
  });
  remember(activity);
  log(`sent ${activity.constructor.name} ${activity.id.href}`);
}

// ---------------------------------------------------------------------------
// Control API routes

const routes = {
  "GET /control/health": () => ({
    ok: true,
    actor: new URL(`/users/${USERNAME}`, ORIGIN).href,
  }),

  "GET /control/received": () => received,

  "GET /control/followers": () => [...followers.keys()],

  "GET /control/deliveries": () => deliveries,

  "GET /control/rejected": () => rejected,
  "GET /control/inbound": () => inboundPosts,

  async "POST /control/follow"(body) {
    const ctx = controlContext();
    const target = await resolveHandle(ctx, body.handle);
    const follow = new Follow({
      id: newActivityId(),
      actor: ctx.getActorUri(USERNAME),
      object: target.id,
    });
    await send(ctx, target, follow);
    return { followId: follow.id.href, target: target.id.href };
  },

  async "POST /control/note"(body) {
    const ctx = controlContext();
    if (typeof body.content !== "string") {
      throw new Error("content is required");
    }
    const visibility = body.to ?? "public";
    // `mention` is one actor id, or a list of them (several Mention tags).
    const mentionIds = asArray(body.mention).filter((m) => m != null && m !== "");
    const mentioned = [];
    for (const id of mentionIds) mentioned.push(await resolveActor(ctx, id));
    const followersUri = ctx.getFollowersUri(USERNAME);
    let to, cc;
    switch (visibility) {
      case "public":
        to = [PUBLIC_COLLECTION];
        cc = [followersUri];
        break;
      case "unlisted":
        to = [followersUri];
        cc = [PUBLIC_COLLECTION];
        break;
      case "followers":
        to = [followersUri];
        cc = [];
        break;
      case "direct":
        if (mentioned.length === 0) {
          throw new Error("a direct note needs a mention");
        }
        to = [];
        cc = [];
        break;
      default:
        throw new Error(`unknown visibility: ${visibility}`);
    }
    for (const actor of mentioned) {
      if (visibility === "direct") to.push(actor.id);
      else cc.push(actor.id);
    }
    const noteId = ctx.getObjectUri(Note, { id: randomUUID() });
    const published = Temporal.Now.instant();
    const note = new Note({
      id: noteId,
      url: noteId,
      attribution: ctx.getActorUri(USERNAME),
      content: body.content,
      published,
      tos: to,
      ccs: cc,
      replyTarget: optionalUrl(body.inReplyTo, "inReplyTo"),
      tags: mentioned.map((actor) =>
        new Mention({ href: actor.id, name: handleOf(actor) })
      ),
    });
    notes.set(noteId.href, note);
    const create = new Create({
      id: new URL(`${noteId.href}/activity`),
      actor: ctx.getActorUri(USERNAME),
      object: note,
      published,
      tos: to,
      ccs: cc,
    });
    const recipients = [];
    recipients.push(...mentioned);
    if (visibility !== "direct") recipients.push(...followers.values());
    if (recipients.length > 0) {
      await send(ctx, recipients, create, {
        preferSharedInbox: body.sharedInbox ?? visibility !== "direct",
        orderingKey: noteId.href,
      });
    } else {
      remember(create);
    }
    return { id: noteId.href, activityId: create.id.href };
  },

  async "POST /control/like"(body) {
    const ctx = controlContext();
    const object = optionalUrl(body.object, "object");
    if (object == null) throw new Error("object is required");
    const target = await resolveActor(ctx, body.to);
    const like = new Like({
      id: newActivityId(),
      actor: ctx.getActorUri(USERNAME),
      object,
    });
    await send(ctx, target, like);
    return { id: like.id.href };
  },

  async "POST /control/announce"(body) {
    const ctx = controlContext();
    const object = optionalUrl(body.object, "object");
    if (object == null) throw new Error("object is required");
    const target = await resolveActor(ctx, body.to);
    const announce = new Announce({
      id: newActivityId(),
      actor: ctx.getActorUri(USERNAME),
      object,
      published: Temporal.Now.instant(),
      to: PUBLIC_COLLECTION,
      ccs: [ctx.getFollowersUri(USERNAME), target.id],
    });
    await send(ctx, target, announce);
    return { id: announce.id.href };
  },

  async "POST /control/update"(body) {
    const ctx = controlContext();
    const note = notes.get(body.id);
    if (note == null) throw new Error(`no note ${body.id} by zed`);
    if (typeof body.content !== "string") {
      throw new Error("content is required");
    }
    const target = await resolveActor(ctx, body.to);
    const updated = Temporal.Now.instant();
    const newNote = note.clone({ content: body.content, updated });
    notes.set(body.id, newNote);
    const update = new Update({
      id: newActivityId(),
      actor: ctx.getActorUri(USERNAME),
      object: newNote,
      published: updated,
      tos: newNote.toIds,
      ccs: newNote.ccIds,
    });
    await send(ctx, target, update, { orderingKey: body.id });
    return { id: update.id.href };
  },

  async "POST /control/delete"(body) {
    const ctx = controlContext();
    const note = notes.get(body.id);
    if (note == null) throw new Error(`no note ${body.id} by zed`);
    const target = await resolveActor(ctx, body.to);
    const del = new Delete({
      id: newActivityId(),
      actor: ctx.getActorUri(USERNAME),
      object: new Tombstone({ id: note.id }),
      to: PUBLIC_COLLECTION,
    });
    notes.delete(body.id);
    deletedNotes.add(body.id);
    await send(ctx, target, del, { orderingKey: body.id });
    return { id: del.id.href };
  },

  async "POST /control/undo"(body) {
    const ctx = controlContext();
    const original = sent.get(body.id)?.activity;
    if (original == null) throw new Error(`zed sent no activity ${body.id}`);
    if (
      !(original instanceof Like || original instanceof Announce ||
        original instanceof Follow)
    ) {
      throw new Error(`cannot undo a ${original.constructor.name}`);
    }
    const toId = body.to ?? (original instanceof Follow ? original.objectId?.href : null);
    const target = await resolveActor(ctx, toId);
    const undo = new Undo({
      id: newActivityId(),
      actor: ctx.getActorUri(USERNAME),
      object: original,
      tos: original.toIds,
      ccs: original.ccIds,
    });
    await send(ctx, target, undo);
    return { id: undo.id.href };
  },
};

// ---------------------------------------------------------------------------
// node:http <-> fetch bridge

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function toRequest(req, body) {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  return new Request(new URL(req.url, ORIGIN), {
    method: req.method,
    headers,
    body: hasBody && body.length > 0 ? body : undefined,
  });
}

async function writeResponse(res, response, method) {
  const headers = {};
  response.headers.forEach((value, key) => {
    if (key === "set-cookie") return;
    headers[key] = value;
  });
  const body = Buffer.from(await response.arrayBuffer());
  if (headers["content-length"] == null) {
    headers["content-length"] = String(body.length);
  }
  res.writeHead(response.status, headers);
  res.end(method === "HEAD" ? undefined : body);
}

function json(status, value, extraHeaders = {}) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json", ...extraHeaders },
  });
}

async function handleControl(req, body) {
  const path = new URL(req.url, ORIGIN).pathname;
  const route = routes[`${req.method} ${path}`];
  if (route == null) return json(404, { error: `no route ${req.method} ${path}` });
  let input = {};
  if (req.method === "POST" && body.length > 0) {
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return json(400, { error: "the request body is not JSON" });
    }
  }
  try {
    return json(200, await route(input ?? {}));
  } catch (error) {
    process.stderr.write(
      `[peer] ${req.method} ${path} failed: ${error?.stack ?? error}\n`,
    );
    const detail = {
      error: error?.message ?? String(error),
    };
    if (error?.statusCode != null) detail.statusCode = error.statusCode;
    if (error?.responseBody != null) detail.responseBody = error.responseBody;
    if (error?.inbox != null) detail.inbox = String(error.inbox);
    return json(500, detail);
  }
}

/** Fallback for paths Fedify does not route: sent activities, deleted notes. */
async function notFound(request) {
  const url = new URL(request.url);
  const href = `${ORIGIN}${url.pathname}`;
  const activity = sent.get(href)?.activity;
  if (activity != null) {
    return new Response(JSON.stringify(await activity.toJsonLd()), {
      headers: { "content-type": "application/activity+json" },
    });
  }
  if (deletedNotes.has(href)) {
    const tombstone = new Tombstone({ id: new URL(href) });
    return new Response(JSON.stringify(await tombstone.toJsonLd()), {
      status: 410,
      headers: { "content-type": "application/activity+json" },
    });
  }
  return new Response("Not Found", {
    status: 404,
    headers: { "content-type": "text/plain" },
  });
}

const server = http.createServer(async (req, res) => {
  const started = Date.now();
  try {
    const body = await readBody(req);
    let response;
    if (req.url.startsWith("/control/")) {
      response = await handleControl(req, body);
    } else {
      response = await federation.fetch(toRequest(req, body), {
        contextData: undefined,
        onNotFound: notFound,
      });
    }
    await writeResponse(res, response, req.method);
    if (req.method === "POST" && !req.url.startsWith("/control/")) {
      let id = null;
      try {
        id = JSON.parse(body.toString("utf8"))?.id ?? null;
      } catch {
        id = null;
      }
      inboundPosts.push({
        path: req.url,
        id,
        scheme: req.headers["signature-input"] != null ? "rfc9421" : "draft-cavage",
        status: response.status,
      });
    }
    if (!req.url.startsWith("/control/received")) {
      log(`${req.method} ${req.url} -> ${response.status} (${Date.now() - started} ms)`);
    }
  } catch (error) {
    process.stderr.write(`[peer] ${req.method} ${req.url} crashed: ${error?.stack ?? error}\n`);
    if (!res.headersSent) {
      res.writeHead(500, { "content-type": "application/json" });
    }
    res.end(JSON.stringify({ error: String(error?.message ?? error) }));
  }
});

function shutdown(signal) {
  log(`${signal}: shutting down`);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

server.listen(PORT, "127.0.0.1", () => {
  process.stdout.write(`READY ${ORIGIN}\n`);
  log(`listening on ${ORIGIN}; actor ${ORIGIN}/users/${USERNAME}`);
});
