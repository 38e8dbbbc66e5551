//! A person's data, taken away and brought along: the CSV lists, the archive (prepared in the
//! background, downloaded by its owner only) and the CSV import into another account.

use std::io::Read;

use serde_json::{Value, json};
use stampede_test_support::{AppOptions, spawn_app};

use crate::deletion::busy_life;
use crate::federation::until;
use crate::mastodon::{Browser, hidden};
use crate::social::{get, post, seed_user};

#[tokio::test]
async fn the_archive_holds_everything_and_the_lists_move_to_another_account() {
    let app = spawn_app(AppOptions {
        workers: true,
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let domain = app.ctx.config.local_domain.clone();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;
    let erin = seed_user(&app, "erin", false).await;
    let dora = seed_user(&app, "dora", true).await;
    busy_life(&app, &alice, &bob).await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/block", carol.id),
        &alice,
        json!({}),
    )
    .await;
    post(
        &app,
        &format!("/api/v1/accounts/{}/mute", carol.id),
        &bob,
        json!({}),
    )
    .await;
    post(
        &app,
        "/api/v1/domain_blocks",
        &alice,
        json!({ "domain": "spam.example" }),
    )
    .await;

    // The CSV lists, for the signed-in owner only.
    let mut browser = Browser::signed_in(&app, &alice).await;
    let (status, follows, _) = browser.get("/settings/exports/follows.csv").await;
    assert_eq!(status, 200);
    assert_eq!(
        follows,
        format!(
            "Account address,Show boosts,Notify on new posts,Languages\nbob@{domain},true,false,\n"
        )
    );
    let (_, blocks, _) = browser.get("/settings/exports/blocks.csv").await;
    assert_eq!(blocks, format!("carol@{domain}\n"));
    let (_, domains, _) = browser.get("/settings/exports/domain_blocks.csv").await;
    assert_eq!(domains, "spam.example\n");
    let (_, lists, _) = browser.get("/settings/exports/lists.csv").await;
    assert_eq!(lists, format!("friends,bob@{domain}\n"));
    let (_, bookmarks, _) = browser.get("/settings/exports/bookmarks.csv").await;
    assert!(bookmarks.contains("/statuses/"), "{bookmarks}");
    let anonymous = app
        .client
        .get(app.url("/settings/exports/follows.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !anonymous.contains("bob@"),
        "sent to the sign-in page instead"
    );

    // The archive, built in the background.
    let (_, page, _) = browser.get("/settings/export").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let (status, _, _) = browser
        .post_form("/settings/export", &[("authenticity_token", &csrf)])
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = browser
        .post_form("/settings/export", &[("authenticity_token", &csrf)])
        .await;
    assert!(
        status == 422 || status == 200,
        "a second one is refused while the first is prepared, or the first is done: {status}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let link = loop {
        let (_, page, _) = browser.get("/settings/export").await;
        if let Some(at) = page.find("/settings/exports/archive/") {
            let rest = &page[at..];
            break rest[..rest.find('"').unwrap()].to_string();
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let zip_bytes = browser.get_bytes(&link).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut read = |name: &str| {
        let mut text = String::new();
        archive
            .by_name(name)
            .unwrap_or_else(|_| panic!("{name} is in the archive"))
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    let actor: Value = serde_json::from_str(&read("actor.json")).unwrap();
    assert_eq!(actor["preferredUsername"], "alice");
    let outbox: Value = serde_json::from_str(&read("outbox.json")).unwrap();
    assert_eq!(outbox["totalItems"], 1);
    assert_eq!(outbox["orderedItems"][0]["type"], "Create");
    assert_eq!(
        outbox["orderedItems"][0]["object"]["content"],
        "<p>my life in pictures</p>"
    );
    let likes: Value = serde_json::from_str(&read("likes.json")).unwrap();
    assert_eq!(likes["orderedItems"].as_array().map(Vec::len), Some(1));
    assert_eq!(read("follows.csv"), follows);
    assert_eq!(read("blocks.csv"), blocks);
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("media_attachments/")),
        "{names:?}"
    );
    // Nobody else gets it.
    let mut other = Browser::signed_in(&app, &erin).await;
    let (status, _, _) = other.get(&link).await;
    assert_eq!(status, 404);

    // Erin imports Alice's lists.
    let (_, page, _) = other.get("/settings/import").await;
    let csrf = hidden(&page, "authenticity_token").unwrap();
    let follows_and_dora = format!("{follows}dora@{domain},true,false,\n");
    for (kind, data) in [
        ("following", follows_and_dora.as_str()),
        ("blocking", blocks.as_str()),
        ("lists", lists.as_str()),
    ] {
        let (status, page, _) = other
            .post_form(
                "/settings/import",
                &[
                    ("authenticity_token", &csrf),
                    ("type", kind),
                    ("data", data),
                ],
            )
            .await;
        assert_eq!(status, 200, "{kind}: {page}");
    }
    let (status, page, _) = other
        .post_form(
            "/settings/import",
            &[
                ("authenticity_token", &csrf),
                ("type", "lists"),
                ("data", "no account here\n"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    until(
        &app,
        &erin,
        &format!(
            "/api/v1/accounts/relationships?id[]={}&id[]={}",
            bob.id, carol.id
        ),
        "the import is applied",
        |r| r[0]["following"] == true && r[1]["blocking"] == true,
    )
    .await;
    // A locked account is asked, not followed, as through the API.
    let asked = get(
        &app,
        &format!("/api/v1/accounts/relationships?id[]={}", dora.id),
        &erin,
    )
    .await;
    assert_eq!(asked.body[0]["following"], false);
    assert_eq!(asked.body[0]["requested"], true);
    let lists = until(&app, &erin, "/api/v1/lists", "the list is made", |l| {
        l.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    let members = get(
        &app,
        &format!(
            "/api/v1/lists/{}/accounts",
            lists[0]["id"].as_str().unwrap()
        ),
        &erin,
    )
    .await;
    assert_eq!(members.body[0]["username"], "bob");
    let (_, page, _) = other.get("/settings/import").await;
    assert!(page.contains("2/2 processed, 2 imported"), "{page}");
}
