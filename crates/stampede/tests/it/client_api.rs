//! Smaller parts of the client API: custom emojis (with the operator's command), the profile,
//! identity proofs and the direct timeline.

use reqwest::Method;
use serde_json::json;
use stampede_test_support::{AppOptions, spawn_app};

use crate::media::{get_bytes, path_of, png};
use crate::social::{call, get, post, post_status, seed_user};

#[tokio::test]
async fn custom_emojis_from_the_operator_show_in_statuses_names_and_notes() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let dir = tempfile_dir();
    let file = dir.join("blobcat.png");
    std::fs::write(&file, png(64, 64)).unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();

    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "emoji"];
        all.extend_from_slice(args);
        crate::process::command(&app.env, &all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let added = admin(&[
        "add",
        "blobcat",
        file.to_str().unwrap(),
        "--category",
        "Blobs",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let hidden = admin(&["add", "secret_cat", file.to_str().unwrap(), "--hidden"]);
    assert!(hidden.status.success());
    let bad = admin(&["add", "x", file.to_str().unwrap()]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("not a valid shortcode"), "{said}");
    let not_image = admin(&["add", "notes", text.to_str().unwrap()]);
    assert!(!not_image.status.success());
    let listed = admin(&["list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2);

    // The list, publicly; the files are served.
    let emojis = call(&app, Method::GET, "/api/v1/custom_emojis", None, None).await;
    assert_eq!(emojis.status, 200);
    let list = emojis.body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["shortcode"], "blobcat");
    assert_eq!(list[0]["category"], "Blobs");
    assert_eq!(list[0]["visible_in_picker"], true);
    assert_eq!(list[1]["visible_in_picker"], false);
    let (status, kind, bytes) = get_bytes(&app, &path_of(&list[0]["url"])).await;
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert!(bytes.starts_with(b"\x89PNG"));
    let (status, _, _) = get_bytes(&app, &path_of(&list[0]["static_url"])).await;
    assert_eq!(status, 200);

    // Statuses and names that use them list them; a colon that touches a word does not.
    let id = post_status(
        &app,
        &alice,
        json!({ "status": "hello :blobcat: and :nope: and a:blobcat:", "spoiler_text": ":secret_cat:" }),
    )
    .await;
    let status = get(&app, &format!("/api/v1/statuses/{id}"), &alice).await;
    let codes: Vec<&str> = status.body["emojis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["shortcode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["blobcat", "secret_cat"]);
    let updated = call(
        &app,
        Method::PATCH,
        "/api/v1/accounts/update_credentials",
        Some(&alice.token),
        Some(json!({ "display_name": "Alice :blobcat:" })),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["emojis"][0]["shortcode"], "blobcat");

    // The Note that other servers fetch carries them as Emoji tags.
    let note = app
        .client
        .get(app.url(&format!("/users/alice/statuses/{id}")))
        .header("accept", "application/activity+json")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let emoji_tags: Vec<&serde_json::Value> = note["tag"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "Emoji")
        .collect();
    assert_eq!(emoji_tags.len(), 2, "{note}");
    assert_eq!(emoji_tags[0]["name"], ":blobcat:");
    assert!(
        emoji_tags[0]["icon"]["url"]
            .as_str()
            .unwrap()
            .ends_with(".png")
    );

    // Removing one takes it off the list and out of the status.
    let removed = admin(&["remove", "secret_cat"]);
    assert!(removed.status.success());
    let mut codes = Vec::new();
    for _ in 0..50 {
        let status = get(&app, &format!("/api/v1/statuses/{id}"), &alice).await;
        codes = status.body["emojis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["shortcode"].as_str().unwrap().to_string())
            .collect();
        if codes.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(codes, vec!["blobcat".to_string()]);
    std::fs::remove_dir_all(dir).ok();
    app.stop().await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(stampede_test_support::unique("emoji"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_profile_edits_and_hides_collections_and_old_endpoints_answer() {
    let app = spawn_app(AppOptions::default()).await.unwrap();
    let alice = seed_user(&app, "alice", true).await;
    let bob = seed_user(&app, "bob", false).await;
    let carol = seed_user(&app, "carol", false).await;

    let profile = get(&app, "/api/v1/profile", &alice).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    assert_eq!(profile.body["id"], alice.id.as_str());
    assert_eq!(profile.body["avatar"], serde_json::Value::Null);
    assert_eq!(profile.body["show_media"], true);
    assert_eq!(profile.body["hide_collections"], false);

    let patched = call(
        &app,
        Method::PATCH,
        "/api/v1/profile",
        Some(&alice.token),
        Some(json!({
            "note": "I *write*",
            "show_media": false,
            "hide_collections": true,
            "avatar_description": "A cat",
            "attribution_domains": ["Blog.Example.com", "news.example"],
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["note"], "I *write*");
    assert_eq!(patched.body["show_media"], false);
    assert_eq!(patched.body["avatar_description"], "A cat");
    assert_eq!(
        patched.body["attribution_domains"],
        json!(["blog.example.com", "news.example"])
    );
    let too_many = call(
        &app,
        Method::PATCH,
        "/api/v1/profile",
        Some(&alice.token),
        Some(json!({ "attribution_domains": ["a b c"], "show_featured": false })),
    )
    .await;
    assert_eq!(too_many.status, 422, "{:?}", too_many.body);
    let unchanged = get(&app, "/api/v1/profile", &alice).await;
    assert_eq!(unchanged.body["show_featured"], true);

    // Hidden collections: empty to others, whole to the owner.
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", bob.id),
        &alice,
        json!({}),
    )
    .await;
    let theirs = get(
        &app,
        &format!("/api/v1/accounts/{}/following", alice.id),
        &carol,
    )
    .await;
    assert_eq!(theirs.body, json!([]));
    let own = get(
        &app,
        &format!("/api/v1/accounts/{}/following", alice.id),
        &alice,
    )
    .await;
    assert_eq!(own.body.as_array().unwrap().len(), 1);
    let shown = get(&app, &format!("/api/v1/accounts/{}", alice.id), &carol).await;
    assert_eq!(shown.body["hide_collections"], true);

    // A follow request waiting shows in the credentials' source.
    post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &carol,
        json!({}),
    )
    .await;
    let me = get(&app, "/api/v1/accounts/verify_credentials", &alice).await;
    assert_eq!(me.body["source"]["follow_requests_count"], 1);

    // Identity proofs are gone from Mastodon: an empty list for an account that exists.
    let proofs = get(
        &app,
        &format!("/api/v1/accounts/{}/identity_proofs", bob.id),
        &alice,
    )
    .await;
    assert_eq!((proofs.status, proofs.body.clone()), (200, json!([])));
    let missing = get(&app, "/api/v1/accounts/1/identity_proofs", &alice).await;
    assert_eq!(missing.status, 404);

    // The old direct timeline: the DMs one wrote or is named in.
    let dm = post_status(
        &app,
        &bob,
        json!({ "status": "@alice just us", "visibility": "direct" }),
    )
    .await;
    post_status(&app, &bob, json!({ "status": "for everyone" })).await;
    let direct = get(&app, "/api/v1/timelines/direct", &alice).await;
    assert_eq!(direct.status, 200);
    let ids: Vec<&str> = direct
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![dm.as_str()]);
    let direct = get(&app, "/api/v1/timelines/direct", &bob).await;
    assert_eq!(direct.body.as_array().unwrap().len(), 1);
    let direct = get(&app, "/api/v1/timelines/direct", &carol).await;
    assert_eq!(direct.body, json!([]));
    app.stop().await;
}
