// masto.js (an independent Mastodon client library, pinned in package.json) against Stampede's
// client API, driven by the integration test `compat::masto_js_drives_the_client_api`:
//
//     node client_api.mjs BASE_URL TOKENS_JSON        (tokens of alice, bob and carol)
//
// Grouped notifications, the notification policy and its requests, v2 filters, Web Push
// subscriptions, announcements, custom emojis, domain blocks, reports, the profile, trends and
// the legal texts. Any failed expectation throws; the last line is {"ok":true}.

import assert from "node:assert/strict";
import { createECDH, randomBytes } from "node:crypto";
import { createRestAPIClient } from "masto";

const [base, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const client = (name) =>
  createRestAPIClient({ url: base, accessToken: tokens[name], log: process.env.MASTO_LOG ?? "warn" });
const [a, b, c] = ["alice", "bob", "carol"].map(client);

async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alice = await a.v1.accounts.verifyCredentials();
const carol = await c.v1.accounts.verifyCredentials();

// The instance: a real VAPID key, legal texts, custom emojis.
const instance = await a.v2.instance.fetch();
assert.equal(instance.configuration.vapid.publicKey.length, 87);
const policy = await a.v1.instance.privacyPolicy.fetch();
assert.match(policy.content, /<h1>/);
assert.ok(Array.isArray(await a.v1.customEmojis.list()));

// Grouped notifications: two favourites of one status are one group.
const status = await a.v1.statuses.create({ status: "favourite me" });
await b.v1.statuses.$select(status.id).favourite();
await c.v1.statuses.$select(status.id).favourite();
const grouped = await a.v2.notifications.list();
const favourites = grouped.notificationGroups.filter((g) => g.type === "favourite");
assert.equal(favourites.length, 1);
assert.equal(favourites[0].notificationsCount, 2);
assert.equal(favourites[0].sampleAccountIds.length, 2);
const people = await a.v2.notifications.$select(favourites[0].groupKey).accounts.fetch();
assert.deepEqual(people.map((p) => p.username).sort(), ["bob", "carol"]);
const unread = await a.v2.notifications.unreadCount.fetch();
assert.equal(unread.count, 1);

// The policy, and a stranger's mention filed as a request.
const set = await a.v2.notifications.policy.update({ forNotFollowing: "filter" });
assert.equal(set.forNotFollowing, "filter");
await c.v1.statuses.create({ status: "@alice hi from a stranger" });
const requests = await until("a request", async () => {
  const list = await a.v1.notifications.requests.list();
  return list.length ? list : null;
});
assert.equal(requests[0].account.id, carol.id);
await a.v1.notifications.requests.$select(requests[0].id).accept();
assert.equal((await a.v1.notifications.requests.merged.fetch()).merged, true);

// v2 filters.
const filter = await a.v2.filters.create({
  title: "Spoilers",
  context: ["home", "public"],
  filterAction: "warn",
  keywordsAttributes: [{ keyword: "finale" }],
});
assert.equal(filter.keywords[0].keyword, "finale");
const keyword = await a.v2.filters.$select(filter.id).keywords.create({ keyword: "ending", wholeWord: true });
assert.equal(keyword.wholeWord, true);
assert.equal((await a.v2.filters.list()).length, 1);
await a.v2.filters.$select(filter.id).remove();

// Web Push: subscribe, change the alerts, unsubscribe.
const ecdh = createECDH("prime256v1");
ecdh.generateKeys();
const subscription = await a.v1.push.subscription.create({
  subscription: {
    endpoint: "https://push.example/send/alice",
    keys: { p256dh: ecdh.getPublicKey("base64url"), auth: randomBytes(16).toString("base64url") },
  },
  data: { alerts: { mention: true, favourite: true } },
  policy: "followed",
});
assert.equal(subscription.alerts.mention, true);
assert.equal(subscription.alerts.follow, false);
assert.equal(subscription.policy, "followed");
assert.equal(subscription.serverKey, instance.configuration.vapid.publicKey);
const updated = await a.v1.push.subscription.update({ data: { alerts: { follow: true } } });
assert.equal(updated.alerts.follow, true);
assert.equal(updated.alerts.mention, false);
await a.v1.push.subscription.remove();
await assert.rejects(a.v1.push.subscription.fetch());

// Announcements (one was published by the operator before the script ran).
const announcements = await a.v1.announcements.list();
assert.equal(announcements.length, 1);
await a.v1.announcements.$select(announcements[0].id).reactions.$select("🎉").update();
const reacted = await a.v1.announcements.list();
assert.equal(reacted[0].reactions[0].name, "🎉");
assert.equal(reacted[0].reactions[0].me, true);
await a.v1.announcements.$select(announcements[0].id).dismiss();
assert.equal((await a.v1.announcements.list()).length, 0);

// Domain blocks, reports, the profile, trends.
await a.v1.domainBlocks.create({ domain: "spam.example" });
assert.deepEqual(await a.v1.domainBlocks.list(), ["spam.example"]);
await a.v1.domainBlocks.remove({ domain: "spam.example" });
assert.deepEqual(await a.v1.domainBlocks.list(), []);
const report = await a.v1.reports.create({ accountId: carol.id, comment: "testing", category: "spam" });
assert.equal(report.category, "spam");
assert.equal(report.targetAccount.id, carol.id);
const profile = await a.v1.profile.fetch?.();
if (profile) assert.equal(profile.id, alice.id);
assert.ok(Array.isArray(await a.v1.trends.links.list()));

console.log(JSON.stringify({ ok: true }));
