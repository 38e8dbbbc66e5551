//! A streaming read replica on loopback (issue 23): `pg_basebackup` of the test server into a
//! second cluster on another port, and Stampede with REPLICA_DB_URL pointing at it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::process::free_port;
use crate::social::{User, get, home_until, post, post_status, seed_user};

/// A hot standby of the test server (deploy/local/postgres-standby.sh), removed on drop.
struct Standby {
    dir: PathBuf,
    port: u16,
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/local/postgres-standby.sh"
);

impl Standby {
    fn script(&self, action: &str) {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg(action)
            .arg(&self.dir)
            .args((action == "start").then(|| self.port.to_string()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postgres-standby.sh {action} failed (the test server must allow replication \
             connections from 127.0.0.1: deploy/local/backing-services.sh adds that line): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Standby {
        let port = free_port();
        let standby = Standby {
            dir: std::env::temp_dir()
                .join(format!("stampede-replica-{}-{port}", std::process::id())),
            port,
        };
        standby.script("start");
        standby
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{{database}}", self.port)
    }

    fn stop(&self) {
        self.script("stop");
    }

    fn restart(&self) {
        self.script("start");
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            eprintln!("--- the replica's log ---\n{log}");
        }
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("remove")
            .arg(&self.dir)
            .output();
    }
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn until_metric(app: &TestApp, series: &str, want: f64) {
    let started = Instant::now();
    while metric(app, series).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{series} never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Another token of `user`'s account: one that never wrote.
async fn second_token(app: &TestApp, user: &User) -> User {
    let token = stampede_web::tokens::generate();
    sqlx::query(
        "INSERT INTO oauth_access_tokens (id, token_hash, account_id, scopes) \
         VALUES ($1, $2, $3, 'read write follow push')",
    )
    .bind(stampede_core::id::IdGenerator::new().next_id().as_i64())
    .bind(stampede_web::tokens::digest(&token))
    .bind(user.id.parse::<i64>().unwrap())
    .execute(&app.ctx.db)
    .await
    .unwrap();
    User {
        token,
        ..user.clone()
    }
}

fn ids(answer: &crate::social::Answer) -> Vec<String> {
    answer
        .body
        .as_array()
        .unwrap_or_else(|| panic!("{} {:?}", answer.status, answer.body))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn reads_use_a_streaming_replica_and_fall_back_to_the_primary() {
    let standby = Standby::start();
    let app = spawn_app(AppOptions {
        redis: true,
        amqp: true,
        workers: true,
        env: vec![
            ("REPLICA_DB_URL".into(), standby.url()),
            // Long enough that only the deliberate faults below set the replica aside.
            ("REPLICA_MAX_LAG_MS".into(), "60000".into()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let (alice, carol, erin) = (
        seed_user(&app, "alice", false).await,
        seed_user(&app, "carol", false).await,
        seed_user(&app, "erin", false).await,
    );
    let erin_reader = second_token(&app, &erin).await;
    until_metric(&app, "stampede_db_replica_in_use", 1.0).await;

    // Erin follows Alice (a write: her token reads the primary from now on); the replica
    // serves carol, who never wrote.
    let follow = post(
        &app,
        &format!("/api/v1/accounts/{}/follow", alice.id),
        &erin,
        json!({}),
    )
    .await;
    assert_eq!(follow.status, 200, "{:?}", follow.body);
    let first = post_status(&app, &alice, json!({"status": "before the pause"})).await;
    home_until(&app, &erin, |ids| ids.contains(&first)).await;
    let replica_reads = "stampede_db_reads_total{pool=\"replica\"}";
    let before = metric(&app, replica_reads).await;
    let started = Instant::now();
    loop {
        let public = get(&app, "/api/v1/timelines/public?local=true", &carol).await;
        if ids(&public).contains(&first) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metric(&app, replica_reads).await > before,
        "carol's read did not use the replica"
    );

    // The replica stops replaying: within the lag bound it still serves, stale.
    let replica = sqlx::PgPool::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        standby.port, app.db.name
    ))
    .await
    .unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&replica)
        .await
        .unwrap();
    let second = post_status(&app, &alice, json!({"status": "while the replica waits"})).await;
    let public = get(&app, "/api/v1/timelines/public?local=true", &carol).await;
    assert!(
        !ids(&public).contains(&second),
        "carol's public timeline came from the primary"
    );

    // Alice reads her own write at once (her post marked her token)…
    let own = get(&app, &format!("/api/v1/statuses/{second}"), &alice).await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    let mine = get(
        &app,
        &format!("/api/v1/accounts/{}/statuses", alice.id),
        &alice,
    )
    .await;
    assert!(ids(&mine).contains(&second));
    // …and a favourite shows at once to whoever gave it.
    let fav = post(
        &app,
        &format!("/api/v1/statuses/{first}/favourite"),
        &erin,
        json!({}),
    )
    .await;
    assert_eq!(fav.body["favourited"], true, "{:?}", fav.body);
    let seen = get(&app, &format!("/api/v1/statuses/{first}"), &erin).await;
    assert_eq!(seen.body["favourited"], true, "{:?}", seen.body);
    assert_eq!(seen.body["favourites_count"], 1, "{:?}", seen.body);

    // A home feed names a status the replica does not hold yet: the page comes from the
    // primary, whole, even for a token that never wrote.
    home_until(&app, &erin_reader, |ids| ids.contains(&second)).await;

    // The replica goes down: every read falls back to the primary, nothing fails.
    standby.stop();
    until_metric(&app, "stampede_db_replica_in_use", 0.0).await;
    let public = get(&app, "/api/v1/timelines/public?local=true", &carol).await;
    assert_eq!(public.status, 200, "{:?}", public.body);
    assert!(
        ids(&public).contains(&second),
        "the fallback read a stale replica"
    );
    let account = get(&app, &format!("/api/v1/accounts/{}", alice.id), &carol).await;
    assert_eq!(account.status, 200, "{:?}", account.body);
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a lost replica must not fail readiness"
    );

    // Back (replaying again after its restart): reads return to it, and it caught up.
    standby.restart();
    until_metric(&app, "stampede_db_replica_in_use", 1.0).await;
    let before = metric(&app, replica_reads).await;
    let public = get(&app, "/api/v1/timelines/public?local=true", &carol).await;
    assert!(ids(&public).contains(&second));
    assert!(metric(&app, replica_reads).await > before);
    drop(replica);
}
