//! Moderators' side: reports through the admin API, account actions and their effects on
//! what others see, and the audit log.

use reqwest::Method;
use serde_json::json;
use stampede_test_support::{AppOptions, spawn_app};

use crate::social::{User, call, get, post, post_status, seed_user};

pub(crate) async fn make_admin(app: &stampede_test_support::TestApp, user: &User) {
    let id: i64 = user.id.parse().unwrap();
    sqlx::query("UPDATE users SET role = 'admin' WHERE account_id = $1")
        .bind(id)
        .execute(&app.ctx.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE oauth_access_tokens SET scopes = 'read write follow push admin:read admin:write' \
         WHERE account_id = $1",
    )
    .bind(id)
    .execute(&app.ctx.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn moderators_handle_reports_and_suspensions_hide_everything() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    make_admin(&app, &alice).await;
    let spam = post_status(&app, &bob, json!({ "status": "buy my stuff" })).await;

    let filed = post(
        &app,
        "/api/v1/reports",
        &carol,
        json!({ "account_id": bob.id, "status_ids": [spam], "category": "spam", "comment": "spam" }),
    )
    .await;
    assert_eq!(filed.status, 200, "{:?}", filed.body);
    let report = filed.body["id"].as_str().unwrap().to_string();

    // The moderators' queue.
    let forbidden = get(&app, "/api/v1/admin/reports", &carol).await;
    assert_eq!(forbidden.status, 403);
    let queue = get(&app, "/api/v1/admin/reports", &alice).await;
    assert_eq!(queue.status, 200, "{:?}", queue.body);
    let first = &queue.body[0];
    assert_eq!(first["id"], report.as_str());
    assert_eq!(first["account"]["username"], "carol");
    assert_eq!(first["target_account"]["username"], "bob");
    assert_eq!(first["statuses"][0]["id"], spam.as_str());
    assert_eq!(first["action_taken"], false);
    let assigned = post(
        &app,
        &format!("/api/v1/admin/reports/{report}/assign_to_self"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(assigned.body["assigned_account"]["username"], "alice");
    let unassigned = post(
        &app,
        &format!("/api/v1/admin/reports/{report}/unassign"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(unassigned.body["assigned_account"], serde_json::Value::Null);

    // Suspending with the report resolves it, and Bob disappears for everyone else.
    let bad = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", bob.id),
        &alice,
        json!({ "type": "banish" }),
    )
    .await;
    assert_eq!(bad.status, 422);
    let own = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", alice.id),
        &alice,
        json!({ "type": "suspend" }),
    )
    .await;
    assert_eq!(own.status, 403);
    let suspended = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", bob.id),
        &alice,
        json!({ "type": "suspend", "report_id": report, "text": "spam wave" }),
    )
    .await;
    assert_eq!(suspended.status, 200, "{:?}", suspended.body);
    let open = get(&app, "/api/v1/admin/reports", &alice).await;
    assert_eq!(open.body, json!([]));
    let resolved = get(&app, "/api/v1/admin/reports?resolved=true", &alice).await;
    assert_eq!(resolved.body[0]["action_taken"], true);
    assert_eq!(
        resolved.body[0]["action_taken_by_account"]["username"],
        "alice"
    );
    let gone = get(&app, &format!("/api/v1/statuses/{spam}"), &carol).await;
    assert_eq!(gone.status, 404);
    let public = get(&app, "/api/v1/timelines/public", &carol).await;
    assert_eq!(public.body, json!([]));
    let locked_out = get(&app, "/api/v1/accounts/verify_credentials", &bob).await;
    assert_eq!(locked_out.status, 403);
    let shown = get(&app, &format!("/api/v1/admin/accounts/{}", bob.id), &alice).await;
    assert_eq!(shown.body["suspended"], true);

    // Unsuspended, everything is back.
    let back = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/unsuspend", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    assert_eq!(back.body["suspended"], false);
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{spam}"), &carol)
            .await
            .status,
        200
    );

    // Sensitive: media behind a warning; disable: the login stops; and back.
    post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", bob.id),
        &alice,
        json!({ "type": "sensitive" }),
    )
    .await;
    let seen = get(&app, &format!("/api/v1/statuses/{spam}"), &carol).await;
    assert_eq!(seen.body["sensitive"], true);
    let shown = get(&app, &format!("/api/v1/admin/accounts/{}", bob.id), &alice).await;
    assert_eq!(shown.body["sensitized"], true);
    post(
        &app,
        &format!("/api/v1/admin/accounts/{}/unsensitive", bob.id),
        &alice,
        json!({}),
    )
    .await;
    let seen = get(&app, &format!("/api/v1/statuses/{spam}"), &carol).await;
    assert_eq!(seen.body["sensitive"], false);
    post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", bob.id),
        &alice,
        json!({ "type": "disable" }),
    )
    .await;
    assert_eq!(
        get(&app, "/api/v1/accounts/verify_credentials", &bob)
            .await
            .status,
        403
    );
    let enabled = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/enable", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(enabled.body["disabled"], false);
    assert_eq!(
        get(&app, "/api/v1/accounts/verify_credentials", &bob)
            .await
            .status,
        200
    );

    // Reopened; and every action is in the audit log.
    let reopened = post(
        &app,
        &format!("/api/v1/admin/reports/{report}/reopen"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(reopened.body["action_taken"], false);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM admin_action_logs WHERE account_id = $1 ORDER BY id",
    )
    .bind(alice.id.parse::<i64>().unwrap())
    .fetch_all(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(
        actions,
        vec![
            "assigned_to_self",
            "unassigned",
            "resolve",
            "suspend",
            "unsuspend",
            "sensitive",
            "unsensitive",
            "disable",
            "enable",
            "reopen"
        ]
    );
    let warnings: i64 =
        sqlx::query_scalar("SELECT count(*) FROM account_warnings WHERE target_account_id = $1")
            .bind(bob.id.parse::<i64>().unwrap())
            .fetch_one(&app.ctx.db)
            .await
            .unwrap();
    assert_eq!(warnings, 3);
    let _ = call(&app, Method::GET, "/api/v1/admin/reports", None, None).await;
    app.stop().await;
}

#[tokio::test]
async fn a_silenced_account_reaches_only_its_followers() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let dave = seed_user(&app, "dave", false).await;
    make_admin(&app, &alice).await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &dave,
        json!({}),
    )
    .await;
    let status = post_status(&app, &bob, json!({ "status": "#news from bob" })).await;

    let silenced = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/action", bob.id),
        &alice,
        json!({ "type": "silence" }),
    )
    .await;
    assert_eq!(silenced.status, 200, "{:?}", silenced.body);
    let shown = get(&app, &format!("/api/v1/admin/accounts/{}", bob.id), &alice).await;
    assert_eq!(shown.body["silenced"], true);
    // Out of public places for Carol, who does not follow Bob; still there for Dave, who does.
    assert_eq!(
        get(&app, "/api/v1/timelines/public", &carol).await.body,
        json!([])
    );
    assert_eq!(
        get(&app, "/api/v1/timelines/tag/news", &carol).await.body,
        json!([])
    );
    let seen = get(&app, "/api/v1/timelines/public", &dave).await;
    assert_eq!(seen.body[0]["id"], status.as_str());
    // A direct look still works, as in Mastodon.
    assert_eq!(
        get(&app, &format!("/api/v1/statuses/{status}"), &carol)
            .await
            .status,
        200
    );
    // Its mention of Carol is filtered into a request (for_limited_accounts).
    post_status(&app, &bob, json!({ "status": "@carol hello" })).await;
    let notes = get(&app, "/api/v1/notifications", &carol).await;
    assert_eq!(notes.body, json!([]));
    let requests = get(&app, "/api/v1/notifications/requests", &carol).await;
    assert_eq!(requests.body[0]["account"]["username"], "bob");

    let back = post(
        &app,
        &format!("/api/v1/admin/accounts/{}/unsilence", bob.id),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(back.body["silenced"], false);
    let public = get(&app, "/api/v1/timelines/public", &carol).await;
    assert_eq!(public.body.as_array().unwrap().len(), 2);
    app.stop().await;
}
