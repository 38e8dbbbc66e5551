use stampede_test_support::{AppOptions, spawn_app};

#[tokio::test]
async fn health_metrics_and_mastodon_style_not_found() {
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        ..AppOptions::default()
    })
    .await
    .unwrap();

    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    for dep in ["postgres", "redis", "rabbitmq"] {
        assert_eq!(body["dependencies"][dep], "ok", "{body}");
    }

    let missing = app
        .client
        .get(app.url("/api/v1/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "error": "Record not found" }));

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"stampede_http_request_duration_seconds_count{method="GET",route="/health/live",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="unmatched",status="404""#),
        "unknown paths share one series: {text}"
    );
    assert!(
        text.contains(r#"stampede_dependency_up{dependency="rabbitmq"} 1"#),
        "{text}"
    );
    assert!(text.contains("stampede_outbox_backlog"), "{text}");

    // Once shutting down, the replica says so, so a load balancer stops sending to it.
    app.ctx.health.set_draining();
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["dependencies"]["process"], "shutting down");
    app.stop().await;
}

#[tokio::test]
async fn not_ready_while_a_configured_dependency_is_down() {
    let app = spawn_app(AppOptions {
        env: vec![
            // Nothing listens on port 1.
            ("REDIS_URL".into(), "redis://127.0.0.1:1/0".into()),
            (
                "AMQP_URL".into(),
                "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            ),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["dependencies"]["postgres"], "ok");
    assert_ne!(body["dependencies"]["redis"], "ok", "{body}");
    assert_ne!(body["dependencies"]["rabbitmq"], "ok", "{body}");
}
