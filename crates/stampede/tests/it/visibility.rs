//! Property: no read path leaks a status its viewer may not see.
//!
//! Each case generates accounts (some locked), follows (some pending), blocks, mutes and
//! statuses of every visibility with random mentions, replies and boosts, from a seed, then a
//! moderator may suspend one account and silence another; a model of the rules decides what
//! each viewer (and nobody signed in) may see; then every read path —
//! the status itself, its context, home, public and hashtag timelines, account statuses,
//! search, notifications and conversations — is checked against the model, and so is every
//! stream (user, public, local, hashtag, direct; signed in and out) open while the statuses were
//! posted. A failure names
//! its seed, so it can be replayed.

// Accounts are numbered: the model and the users list share the index.
#![allow(clippy::needless_range_loop)]

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::social::{User, call, post, seed_user};

const ACCOUNTS: usize = 5;
const STATUSES_PER_ACCOUNT: usize = 4;
const CASES: u64 = 6;
const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

#[derive(Debug, Clone)]
struct ModelStatus {
    id: String,
    author: usize,
    visibility: &'static str,
    mentions: HashSet<usize>,
    reblog_of: Option<String>,
}

#[derive(Debug, Default)]
struct Model {
    follows: HashSet<(usize, usize)>,
    blocks: HashSet<(usize, usize)>,
    mutes: HashSet<(usize, usize)>,
    statuses: HashMap<String, ModelStatus>,
    /// Suspended by a moderator: gone for everyone.
    suspended: HashSet<usize>,
    /// Silenced: out of public places for those who do not follow it.
    silenced: HashSet<usize>,
}

impl Model {
    fn blocked(&self, a: usize, b: usize) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    fn sees_one(&self, viewer: Option<usize>, s: &ModelStatus) -> bool {
        if self.suspended.contains(&s.author) {
            return false;
        }
        let Some(v) = viewer else {
            return matches!(s.visibility, "public" | "unlisted");
        };
        if v == s.author {
            return true;
        }
        if self.blocked(v, s.author) {
            return false;
        }
        match s.visibility {
            "public" | "unlisted" => true,
            "private" => self.follows.contains(&(v, s.author)) || s.mentions.contains(&v),
            _ => s.mentions.contains(&v),
        }
    }

    fn sees(&self, viewer: Option<usize>, id: &str) -> bool {
        let Some(s) = self.statuses.get(id) else {
            return false;
        };
        self.sees_one(viewer, s)
            && s.reblog_of.as_ref().is_none_or(|o| {
                self.statuses
                    .get(o)
                    .is_some_and(|o| self.sees_one(viewer, o))
            })
    }

    fn muted(&self, viewer: Option<usize>, id: &str) -> bool {
        let (Some(v), Some(s)) = (viewer, self.statuses.get(id)) else {
            return false;
        };
        // One's own statuses and boosts are never hidden from oneself (Mastodon's home filter
        // lets them through first).
        if s.author == v {
            return false;
        }
        let original = s.reblog_of.as_ref().and_then(|o| self.statuses.get(o));
        self.mutes.contains(&(v, s.author))
            || original.is_some_and(|o| self.mutes.contains(&(v, o.author)))
    }
}

/// Every status id in a rendered status (itself and what it boosts).
fn status_ids(status: &Value) -> Vec<String> {
    let mut out = vec![status["id"].as_str().unwrap().to_string()];
    if let Some(inner) = status["reblog"].as_object() {
        out.push(inner["id"].as_str().unwrap().to_string());
    }
    out
}

/// Accounts (some locked), follows (some pending), blocks and mutes.
async fn graph(app: &TestApp, seed: u64, rng: &mut StdRng) -> (Vec<User>, Model) {
    let mut users = Vec::new();
    let mut locked = Vec::new();
    for i in 0..ACCOUNTS {
        let is_locked = rng.random_bool(0.3);
        users.push(seed_user(app, &format!("u{seed}x{i}"), is_locked).await);
        locked.push(is_locked);
    }
    let mut model = Model::default();
    for a in 0..ACCOUNTS {
        for b in 0..ACCOUNTS {
            if a == b {
                continue;
            }
            if rng.random_bool(0.5) {
                let path = format!("/api/v1/accounts/{}/follow", users[b].id);
                assert_eq!(post(app, &path, &users[a], json!({})).await.status, 200);
                // A locked account accepts some requests.
                if !locked[b] {
                    model.follows.insert((a, b));
                } else if rng.random_bool(0.5) {
                    let path = format!("/api/v1/follow_requests/{}/authorize", users[a].id);
                    assert_eq!(post(app, &path, &users[b], json!({})).await.status, 200);
                    model.follows.insert((a, b));
                }
            }
        }
    }
    for a in 0..ACCOUNTS {
        for b in 0..ACCOUNTS {
            if a != b && rng.random_bool(0.12) {
                let path = format!("/api/v1/accounts/{}/block", users[b].id);
                assert_eq!(post(app, &path, &users[a], json!({})).await.status, 200);
                model.blocks.insert((a, b));
                model.follows.remove(&(a, b));
                model.follows.remove(&(b, a));
            }
            if a != b && rng.random_bool(0.15) {
                let path = format!("/api/v1/accounts/{}/mute", users[b].id);
                assert_eq!(post(app, &path, &users[a], json!({})).await.status, 200);
                model.mutes.insert((a, b));
            }
        }
    }
    (users, model)
}

/// Each account posts, replies and boosts (the model records what was made).
async fn post_statuses(
    app: &TestApp,
    seed: u64,
    rng: &mut StdRng,
    users: &[User],
    model: &mut Model,
) {
    let mut posted: Vec<String> = Vec::new();
    for round in 0..STATUSES_PER_ACCOUNT {
        for author in 0..ACCOUNTS {
            let visibility = VISIBILITIES[rng.random_range(0..VISIBILITIES.len())];
            let mentions: HashSet<usize> = (0..ACCOUNTS)
                .filter(|m| *m != author && rng.random_bool(0.3))
                .collect();
            let text: String = mentions
                .iter()
                .map(|m| format!("@{} ", users[*m].username))
                .collect::<String>()
                + &format!("word{seed} #t{seed} r{round}");
            let mut body = json!({"status": text, "visibility": visibility});
            // Reply to a random earlier status: the server must refuse one the author cannot see.
            if !posted.is_empty() && rng.random_bool(0.3) {
                let parent = posted[rng.random_range(0..posted.len())].clone();
                body["in_reply_to_id"] = json!(parent);
                let expect = model.sees(Some(author), &parent)
                    && model.statuses[&parent].reblog_of.is_none();
                let answer = post(app, "/api/v1/statuses", &users[author], body.clone()).await;
                if !expect {
                    assert_eq!(
                        answer.status, 404,
                        "seed {seed}: reply to an invisible status"
                    );
                    continue;
                }
                assert_eq!(answer.status, 200, "seed {seed}: {:?}", answer.body);
                let id = answer.body["id"].as_str().unwrap().to_string();
                model.statuses.insert(
                    id.clone(),
                    ModelStatus {
                        id: id.clone(),
                        author,
                        visibility,
                        mentions,
                        reblog_of: None,
                    },
                );
                posted.push(id);
                continue;
            }
            let answer = post(app, "/api/v1/statuses", &users[author], body).await;
            assert_eq!(answer.status, 200, "seed {seed}: {:?}", answer.body);
            let id = answer.body["id"].as_str().unwrap().to_string();
            model.statuses.insert(
                id.clone(),
                ModelStatus {
                    id: id.clone(),
                    author,
                    visibility,
                    mentions,
                    reblog_of: None,
                },
            );
            posted.push(id);
        }
        // Some boosts of what each account can see.
        for booster in 0..ACCOUNTS {
            if posted.is_empty() || !rng.random_bool(0.4) {
                continue;
            }
            let target = posted[rng.random_range(0..posted.len())].clone();
            let original = &model.statuses[&target];
            let allowed = model.sees(Some(booster), &target)
                && original.reblog_of.is_none()
                && (matches!(original.visibility, "public" | "unlisted")
                    || (original.visibility == "private" && original.author == booster));
            let path = format!("/api/v1/statuses/{target}/reblog");
            let answer = post(app, &path, &users[booster], json!({})).await;
            if !model.sees(Some(booster), &target) {
                assert_eq!(
                    answer.status, 404,
                    "seed {seed}: boost of an invisible status"
                );
                continue;
            }
            if !allowed {
                assert_eq!(
                    answer.status, 403,
                    "seed {seed}: forbidden boost {:?}",
                    answer.body
                );
                continue;
            }
            assert_eq!(answer.status, 200, "seed {seed}: {:?}", answer.body);
            let id = answer.body["id"].as_str().unwrap().to_string();
            if !model.statuses.contains_key(&id) {
                let visibility = if original.visibility == "private" {
                    "private"
                } else {
                    "public"
                };
                model.statuses.insert(
                    id.clone(),
                    ModelStatus {
                        id: id.clone(),
                        author: booster,
                        visibility,
                        mentions: HashSet::new(),
                        reblog_of: Some(target),
                    },
                );
            }
        }
    }
}

/// Streams open while the statuses are posted, each with its viewer (`None`: signed out).
type Streams = Vec<(Option<usize>, String, crate::streaming::Ws)>;

/// Every stream a viewer may open that carries statuses: user (home and notifications),
/// public, local public, the case's hashtag and direct; signed out, public and the hashtag.
async fn open_streams(app: &TestApp, seed: u64, users: &[User]) -> Streams {
    use crate::streaming::{Via, try_ws};
    let tag = format!("stream=hashtag&tag=t{seed}");
    let mut streams = Streams::new();
    for (v, user) in users.iter().enumerate() {
        for query in [
            "stream=user",
            "stream=public",
            "stream=public:local",
            &tag,
            "stream=direct",
        ] {
            let ws = try_ws(app.addr, query, Some(&user.token), Via::Header)
                .await
                .unwrap();
            streams.push((Some(v), query.to_string(), ws));
        }
    }
    for query in ["stream=public", tag.as_str()] {
        if let Ok(ws) = try_ws(app.addr, query, None, Via::Header).await {
            streams.push((None, query.to_string(), ws));
        }
    }
    streams
}

/// What each stream carried: no status its viewer may not see, none of a muted account on the
/// home and public streams, no notification from a blocked account.
async fn check_streams(seed: u64, users: &[User], model: &Model, streams: Streams) {
    let drained = futures_util::future::join_all(streams.into_iter().map(
        |(viewer, query, mut ws)| async move {
            let frames = ws.drain(std::time::Duration::from_secs(2)).await;
            (viewer, query, frames)
        },
    ))
    .await;
    let mut seen = 0;
    for (viewer, query, frames) in drained {
        let who = viewer.map_or("nobody".to_string(), |v| users[v].username.clone());
        for frame in frames {
            let Some(payload) = frame["payload"].as_str() else {
                continue;
            };
            let payload: Value = serde_json::from_str(payload).unwrap_or_default();
            let status = match frame["event"].as_str().unwrap_or_default() {
                "update" | "status.update" => payload.clone(),
                "notification" => {
                    if let (Some(v), Some(from)) = (
                        viewer,
                        users
                            .iter()
                            .position(|u| Some(u.id.as_str()) == payload["account"]["id"].as_str()),
                    ) {
                        assert!(
                            !model.blocked(v, from),
                            "seed {seed}: {query} notified {who} from a blocked account"
                        );
                    }
                    payload["status"].clone()
                }
                "conversation" => payload["last_status"].clone(),
                _ => continue,
            };
            if status.is_null() {
                continue;
            }
            seen += 1;
            // One's own boost shows on one's own streams whoever wrote what it boosts.
            let own = viewer.is_some_and(|v| status["account"]["id"] == users[v].id.as_str());
            for id in status_ids(&status) {
                assert!(
                    model.sees(viewer, &id),
                    "seed {seed}: {query} streamed {id} to {who}"
                );
                if frame["event"] == "update" && query != "stream=direct" && !own {
                    assert!(
                        !model.muted(viewer, &id),
                        "seed {seed}: {query} streamed muted {id} to {who}: {:?} in {}",
                        model.statuses.get(&id),
                        frame["payload"]
                    );
                }
            }
        }
    }
    assert!(seen > 0, "seed {seed}: the streams carried nothing at all");
}

/// A moderator suspends one account and silences another, each in some cases.
async fn moderate(app: &TestApp, seed: u64, users: &[User], model: &mut Model, rng: &mut StdRng) {
    let root = seed_user(app, &format!("root{seed}"), false).await;
    crate::moderation::make_admin(app, &root).await;
    let suspended = rng.random_range(0..ACCOUNTS);
    let silenced = (suspended + 1 + rng.random_range(0..ACCOUNTS - 1)) % ACCOUNTS;
    for (who, action, set) in [
        (suspended, "suspend", &mut model.suspended),
        (silenced, "silence", &mut model.silenced),
    ] {
        if rng.random_bool(0.6) {
            let path = format!("/api/v1/admin/accounts/{}/action", users[who].id);
            let answer = post(app, &path, &root, json!({ "type": action })).await;
            assert_eq!(answer.status, 200, "seed {seed}: {answer:?}");
            set.insert(who);
        }
    }
}

async fn list(app: &TestApp, path: &str, token: Option<&str>) -> Vec<Value> {
    let answer = call(app, Method::GET, path, token, None).await;
    assert!(
        answer.status == 200 || answer.status == 206,
        "{path}: {} {:?}",
        answer.status,
        answer.body
    );
    answer.body.as_array().cloned().unwrap_or_default()
}

async fn check(app: &TestApp, seed: u64, users: &[User], model: &Model) {
    let viewers: Vec<Option<usize>> = std::iter::once(None)
        .chain((0..ACCOUNTS).map(Some))
        .collect();
    for viewer in viewers {
        // A suspended account's own tokens are refused (the moderation tests check that).
        if viewer.is_some_and(|v| model.suspended.contains(&v)) {
            continue;
        }
        let token = viewer.map(|v| users[v].token.as_str());
        let who = viewer.map_or("nobody".to_string(), |v| users[v].username.clone());
        let leak = |path: &str, status: &Value, hide_muted: bool| {
            for id in status_ids(status) {
                assert!(
                    model.sees(viewer, &id),
                    "seed {seed}: {path} showed {id} to {who}"
                );
                if hide_muted {
                    assert!(
                        !model.muted(viewer, &id),
                        "seed {seed}: {path} showed muted {id} to {who}"
                    );
                }
            }
        };
        for status in model.statuses.values() {
            let path = format!("/api/v1/statuses/{}", status.id);
            let answer = call(app, Method::GET, &path, token, None).await;
            let expected = if model.sees(viewer, &status.id) {
                200
            } else {
                404
            };
            assert_eq!(
                answer.status, expected,
                "seed {seed}: {path} for {who}: {status:?}"
            );
            if expected == 200 {
                let context = call(app, Method::GET, &format!("{path}/context"), token, None).await;
                for part in ["ancestors", "descendants"] {
                    for s in context.body[part].as_array().unwrap() {
                        leak(&format!("{path}/context"), s, true);
                    }
                }
            }
        }
        for path in [
            "/api/v1/timelines/public?limit=40".to_string(),
            format!("/api/v1/timelines/tag/t{seed}?limit=40"),
        ] {
            for s in list(app, &path, token).await {
                leak(&path, &s, true);
                assert!(s["reblog"].is_null(), "seed {seed}: {path} has a boost");
                assert_eq!(s["visibility"], "public", "seed {seed}: {path}");
                let author = users
                    .iter()
                    .position(|u| u.id == s["account"]["id"].as_str().unwrap())
                    .unwrap();
                assert!(
                    !model.silenced.contains(&author)
                        || viewer
                            .is_some_and(|v| v == author || model.follows.contains(&(v, author))),
                    "seed {seed}: {path} showed a silenced account's status to {who}"
                );
            }
        }
        for (i, user) in users.iter().enumerate() {
            let path = format!("/api/v1/accounts/{}/statuses?limit=40", user.id);
            if model.suspended.contains(&i) {
                let answer = call(app, Method::GET, &path, token, None).await;
                assert!(
                    answer.status == 404 || answer.body == json!([]),
                    "seed {seed}: {path} of a suspended account for {who}: {:?}",
                    answer.body
                );
                continue;
            }
            for s in list(app, &path, token).await {
                leak(&path, &s, false);
                assert_ne!(s["visibility"], "direct", "seed {seed}: {path}");
                assert_eq!(s["account"]["id"], users[i].id.as_str());
            }
        }
        let Some(v) = viewer else { continue };
        for path in [
            "/api/v1/timelines/home?limit=40".to_string(),
            format!("/api/v2/search?q=word{seed}&type=statuses&limit=40"),
        ] {
            let items = if path.contains("search") {
                let answer = call(app, Method::GET, &path, token, None).await;
                answer.body["statuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                list(app, &path, token).await
            };
            for s in items {
                leak(&path, &s, true);
            }
        }
        for n in list(app, "/api/v1/notifications?limit=80", token).await {
            let from = users
                .iter()
                .position(|u| u.id == n["account"]["id"].as_str().unwrap())
                .unwrap();
            assert!(
                !model.blocked(v, from),
                "seed {seed}: notification from a blocked account to {who}"
            );
            assert!(
                !model.suspended.contains(&from),
                "seed {seed}: notification from a suspended account to {who}"
            );
            if !n["status"].is_null() {
                leak("/api/v1/notifications", &n["status"], false);
            }
        }
        for c in list(app, "/api/v1/conversations", token).await {
            if !c["last_status"].is_null() {
                leak("/api/v1/conversations", &c["last_status"], false);
            }
        }
    }
}

#[tokio::test]
async fn no_read_path_leaks_what_its_viewer_may_not_see() {
    for seed in 1..=CASES {
        let app = spawn_app(AppOptions {
            workers: true,
            streaming: true,
            ..AppOptions::default()
        })
        .await
        .unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let (users, mut model) = graph(&app, seed, &mut rng).await;
        let streams = open_streams(&app, seed, &users).await;
        post_statuses(&app, seed, &mut rng, &users, &mut model).await;
        check_streams(seed, &users, &model, streams).await;
        moderate(&app, seed, &users, &mut model, &mut rng).await;
        check(&app, seed, &users, &model).await;
        app.stop().await;
    }
}
