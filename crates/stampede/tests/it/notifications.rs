//! Grouped notifications (`/api/v2/notifications`), the notification policy and its requests,
//! through the HTTP API against the real services.

use reqwest::Method;
use serde_json::{Value, json};
use stampede_test_support::{AppOptions, spawn_app};

use crate::social::{User, call, get, post, post_status, seed_user};

fn groups(answer: &Value) -> Vec<(String, i64, Vec<String>)> {
    answer["notification_groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {answer}"))
        .iter()
        .map(|g| {
            (
                g["type"].as_str().unwrap().to_string(),
                g["notifications_count"].as_i64().unwrap(),
                g["sample_account_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn query_of(link: &str, rel: &str) -> String {
    let part = link
        .split(", ")
        .find(|p| p.ends_with(&format!("rel=\"{rel}\"")))
        .unwrap();
    let url = &part[1..part.find('>').unwrap()];
    url[url.find("/api/").unwrap()..].to_string()
}

#[tokio::test]
async fn grouped_notifications_page_by_group_and_expand_accounts() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let [bob, carol, dave, erin]: [User; 4] = [
        seed_user(&app, "bob", false).await,
        seed_user(&app, "carol", false).await,
        seed_user(&app, "dave", false).await,
        seed_user(&app, "erin", false).await,
    ];
    let status = post_status(&app, &alice, json!({ "status": "Hello" })).await;
    for fan in [&bob, &carol, &dave] {
        let fav = post(
            &app,
            &format!("/api/v1/statuses/{status}/favourite"),
            fan,
            json!({}),
        )
        .await;
        assert_eq!(fav.status, 200, "{:?}", fav.body);
    }
    post(
        &app,
        &format!("/api/v1/statuses/{status}/reblog"),
        &erin,
        json!({}),
    )
    .await;
    for follower in [&bob, &carol] {
        let answer = post(
            &app,
            &format!("/api/v1/accounts/{}/follow", alice.id),
            follower,
            json!({}),
        )
        .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    post_status(&app, &dave, json!({ "status": "@alice look" })).await;

    // Newest group first: the mention, the two follows, the boost, the three favourites.
    let all = get(&app, "/api/v2/notifications", &alice).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(
        groups(&all.body),
        vec![
            ("mention".into(), 1, vec![dave.id.clone()]),
            ("follow".into(), 2, vec![carol.id.clone(), bob.id.clone()]),
            ("reblog".into(), 1, vec![erin.id.clone()]),
            (
                "favourite".into(),
                3,
                vec![dave.id.clone(), carol.id.clone(), bob.id.clone()]
            ),
        ]
    );
    let favourites = &all.body["notification_groups"][3];
    assert_eq!(favourites["status_id"], status.as_str());
    assert!(
        favourites["group_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("favourite-{status}-"))
    );
    assert!(favourites["most_recent_notification_id"].is_i64());
    assert!(favourites["page_min_id"].is_string());
    assert!(favourites["latest_page_notification_at"].is_string());
    assert!(
        all.body["notification_groups"][0]["group_key"]
            .as_str()
            .unwrap()
            .starts_with("ungrouped-")
    );
    // Every account and status once, in full by default.
    assert_eq!(all.body["accounts"].as_array().unwrap().len(), 4);
    assert_eq!(all.body["statuses"].as_array().unwrap().len(), 2);
    assert!(all.body.get("partial_accounts").is_none());

    // Two groups a page. As in Mastodon, the next page starts below the page's last
    // notification, so a group can go on there: Bob's follow comes again, counted up to
    // the page's newest notification.
    let first = get(&app, "/api/v2/notifications?limit=2", &alice).await;
    let kinds: Vec<String> = groups(&first.body).into_iter().map(|g| g.0).collect();
    assert_eq!(kinds, vec!["mention", "follow"]);
    let next = query_of(first.link.as_deref().unwrap(), "next");
    assert!(next.contains("limit=2"), "{next}");
    let second = get(&app, &next, &alice).await;
    assert_eq!(
        groups(&second.body),
        vec![
            ("follow".into(), 1, vec![bob.id.clone()]),
            ("reblog".into(), 1, vec![erin.id.clone()]),
        ]
    );
    let third = get(
        &app,
        &query_of(second.link.as_deref().unwrap(), "next"),
        &alice,
    )
    .await;
    let kinds: Vec<String> = groups(&third.body).into_iter().map(|g| g.0).collect();
    assert_eq!(kinds, vec!["favourite"]);
    assert_eq!(
        third.body["notification_groups"][0]["page_min_id"],
        all.body["notification_groups"][3]["page_min_id"]
    );
    let prev = query_of(second.link.as_deref().unwrap(), "prev");
    let back = get(&app, &prev, &alice).await;
    let kinds: Vec<String> = groups(&back.body).into_iter().map(|g| g.0).collect();
    assert_eq!(kinds, vec!["mention", "follow"]);

    // Partial avatars: the newest account of each group in full, the rest in brief.
    let partial = get(
        &app,
        "/api/v2/notifications?expand_accounts=partial_avatars",
        &alice,
    )
    .await;
    let full: Vec<&str> = partial.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(full, vec![&dave.id, &carol.id, &erin.id]);
    let brief = &partial.body["partial_accounts"];
    assert_eq!(brief.as_array().unwrap().len(), 1);
    assert_eq!(brief[0]["id"], bob.id.as_str());
    assert!(brief[0]["avatar"].is_string());
    assert!(brief[0].get("display_name").is_none());
    let bad = get(&app, "/api/v2/notifications?expand_accounts=all", &alice).await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);

    // Grouping only the kinds asked for: follows alone.
    let some = get(&app, "/api/v2/notifications?grouped_types[]=follow", &alice).await;
    let counts: Vec<i64> = groups(&some.body).into_iter().map(|g| g.1).collect();
    assert_eq!(counts, vec![1, 2, 1, 1, 1, 1]);
    let only = get(&app, "/api/v2/notifications?types[]=favourite", &alice).await;
    assert_eq!(groups(&only.body).len(), 1);

    // One group, its accounts, the unread count, and dismissing it.
    let key = favourites["group_key"].as_str().unwrap();
    let one = get(&app, &format!("/api/v2/notifications/{key}"), &alice).await;
    assert_eq!(one.status, 200, "{:?}", one.body);
    assert_eq!(groups(&one.body)[0].1, 3);
    assert!(
        one.body["notification_groups"][0]
            .get("page_min_id")
            .is_none()
    );
    let people = get(
        &app,
        &format!("/api/v2/notifications/{key}/accounts"),
        &alice,
    )
    .await;
    let names: Vec<&str> = people
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["dave", "carol", "bob"]);
    let unread = get(&app, "/api/v2/notifications/unread_count", &alice).await;
    assert_eq!(unread.body["count"], 4);
    let v1_unread = get(&app, "/api/v1/notifications/unread_count", &alice).await;
    assert_eq!(v1_unread.body["count"], 7);
    let gone = post(
        &app,
        &format!("/api/v2/notifications/{key}/dismiss"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(gone.status, 200);
    let unread = get(&app, "/api/v2/notifications/unread_count", &alice).await;
    assert_eq!(unread.body["count"], 3);
    let missing = get(&app, &format!("/api/v2/notifications/{key}"), &alice).await;
    assert_eq!(missing.status, 404);
    // Someone else's group is as missing as a dismissed one.
    let mention_key = all.body["notification_groups"][0]["group_key"]
        .as_str()
        .unwrap();
    let theirs = get(&app, &format!("/api/v2/notifications/{mention_key}"), &bob).await;
    assert_eq!(theirs.status, 404);
    // v1 shows the group key too.
    let v1 = get(&app, "/api/v1/notifications?types[]=follow", &alice).await;
    assert!(
        v1.body[0]["group_key"]
            .as_str()
            .unwrap()
            .starts_with("follow-")
    );
    app.stop().await;
}

#[tokio::test]
async fn notification_policy_files_requests_to_accept_or_dismiss() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let [frank, gina, henry, ivan]: [User; 4] = [
        seed_user(&app, "frank", false).await,
        seed_user(&app, "gina", false).await,
        seed_user(&app, "henry", false).await,
        seed_user(&app, "ivan", false).await,
    ];

    let policy = get(&app, "/api/v2/notifications/policy", &alice).await;
    assert_eq!(policy.status, 200, "{:?}", policy.body);
    assert_eq!(policy.body["for_not_following"], "accept");
    assert_eq!(policy.body["for_private_mentions"], "filter");
    assert_eq!(policy.body["summary"]["pending_requests_count"], 0);

    // A private mention from a stranger is filtered by default.
    post_status(
        &app,
        &ivan,
        json!({ "status": "@alice psst", "visibility": "direct" }),
    )
    .await;
    let requests = get(&app, "/api/v1/notifications/requests", &alice).await;
    assert_eq!(
        requests.body.as_array().unwrap().len(),
        1,
        "{:?}",
        requests.body
    );
    assert_eq!(requests.body[0]["account"]["username"], "ivan");

    let wrong = call(
        &app,
        Method::PATCH,
        "/api/v2/notifications/policy",
        Some(&alice.token),
        Some(json!({ "for_not_following": "maybe" })),
    )
    .await;
    assert_eq!(wrong.status, 422, "{:?}", wrong.body);
    let set = call(
        &app,
        Method::PATCH,
        "/api/v2/notifications/policy",
        Some(&alice.token),
        Some(json!({ "for_not_following": "filter" })),
    )
    .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(set.body["for_not_following"], "filter");
    assert_eq!(set.body["for_private_mentions"], "filter");

    // Frank and Gina, whom Alice does not follow, mention her: filtered into two requests.
    let franks = post_status(&app, &frank, json!({ "status": "@alice hi" })).await;
    let again = post_status(&app, &frank, json!({ "status": "@alice hi again" })).await;
    post_status(&app, &gina, json!({ "status": "@alice hello" })).await;
    let listed = get(&app, "/api/v1/notifications", &alice).await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        0,
        "{:?}",
        listed.body
    );
    let grouped = get(&app, "/api/v2/notifications", &alice).await;
    assert_eq!(groups(&grouped.body).len(), 0);
    let with = get(&app, "/api/v1/notifications?include_filtered=true", &alice).await;
    assert_eq!(with.body.as_array().unwrap().len(), 4);
    let requests = get(&app, "/api/v1/notifications/requests", &alice).await;
    let senders: Vec<&str> = requests
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["account"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(senders, vec!["gina", "frank", "ivan"]);
    let from_frank = &requests.body[1];
    assert_eq!(from_frank["notifications_count"], "2");
    assert_eq!(from_frank["last_status"]["id"], again.as_str());
    let policy = get(&app, "/api/v2/notifications/policy", &alice).await;
    assert_eq!(policy.body["summary"]["pending_requests_count"], 3);
    assert_eq!(policy.body["summary"]["pending_notifications_count"], 4);
    let frank_request = from_frank["id"].as_str().unwrap();
    let shown = get(
        &app,
        &format!("/api/v1/notifications/requests/{frank_request}"),
        &alice,
    )
    .await;
    assert_eq!(shown.body["account"]["username"], "frank");
    let not_hers = get(
        &app,
        &format!("/api/v1/notifications/requests/{frank_request}"),
        &gina,
    )
    .await;
    assert_eq!(not_hers.status, 404);

    // Accepting Frank shows his mentions and lets the next one through.
    let accepted = post(
        &app,
        &format!("/api/v1/notifications/requests/{frank_request}/accept"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    let merged = get(&app, "/api/v1/notifications/requests/merged", &alice).await;
    assert_eq!(merged.body["merged"], true);
    post_status(&app, &frank, json!({ "status": "@alice thanks" })).await;
    let listed = get(&app, "/api/v1/notifications", &alice).await;
    let statuses: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["account"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["frank", "frank", "frank"]);
    assert_eq!(listed.body[2]["status"]["id"], franks.as_str());
    let twice = post(
        &app,
        &format!("/api/v1/notifications/requests/{frank_request}/accept"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(twice.status, 404);

    // Dismissing the rest at once removes them and what they held.
    let ids: Vec<String> = requests
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("id[]={}", r["id"].as_str().unwrap()))
        .collect();
    let dismissed = post(
        &app,
        &format!("/api/v1/notifications/requests/dismiss?{}", ids.join("&")),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(dismissed.status, 200, "{:?}", dismissed.body);
    let requests = get(&app, "/api/v1/notifications/requests", &alice).await;
    assert_eq!(requests.body.as_array().unwrap().len(), 0);
    let with = get(&app, "/api/v1/notifications?include_filtered=true", &alice).await;
    assert_eq!(with.body.as_array().unwrap().len(), 3);

    // Dropping: nothing is kept at all.
    call(
        &app,
        Method::PATCH,
        "/api/v2/notifications/policy",
        Some(&alice.token),
        Some(json!({ "for_not_following": "drop" })),
    )
    .await;
    post_status(&app, &henry, json!({ "status": "@alice anyone?" })).await;
    let with = get(&app, "/api/v1/notifications?include_filtered=true", &alice).await;
    assert_eq!(with.body.as_array().unwrap().len(), 3);
    let requests = get(&app, "/api/v1/notifications/requests", &alice).await;
    assert_eq!(requests.body.as_array().unwrap().len(), 0);
    app.stop().await;
}
