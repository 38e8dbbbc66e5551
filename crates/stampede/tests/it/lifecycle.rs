//! Workers as separate processes exchanging work with web through RabbitMQ; killed mid-job
//! (SIGKILL) they lose nothing, stopped (SIGTERM) they finish what they hold.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use stampede_queue::amqp::AmqpQueue;
use stampede_queue::{Queue, WorkQueue};
use stampede_runtime::canary;
use stampede_test_support::{AppOptions, TestDb, amqp_url, test_env};

use crate::process::{free_port, migrate, spawn, wait_ready};

async fn cluster() -> (PgPool, Vec<(String, String)>) {
    let db = TestDb::new().await.unwrap();
    let env = test_env(
        &db,
        &AppOptions {
            amqp: true,
            redis: true,
            ..AppOptions::default()
        },
    );
    migrate(&env).await;
    (PgPool::connect(&db.url).await.unwrap(), env)
}

/// Waits until the canary's message has left the outbox and the queue: a worker holds it
/// (RabbitMQ counts only messages ready for delivery, not those a consumer holds).
async fn wait_taken(pool: &PgPool, env: &[(String, String)]) {
    let prefix = env
        .iter()
        .find(|(k, _)| k == "AMQP_QUEUE_PREFIX")
        .unwrap()
        .1
        .clone();
    let queue = Queue::Amqp(AmqpQueue::new(&amqp_url(), &prefix, "test"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(pool)
            .await
            .unwrap();
        if backlog == 0 && queue.depth(WorkQueue::Distribute).await == Some(0) {
            // Give the worker a moment to start holding it.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        assert!(Instant::now() < deadline, "canary never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn applied(pool: &PgPool, id: i64) -> i32 {
    canary::status(pool, &[id]).await.unwrap()[0].applied_count
}

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_and_applies_once() {
    let (pool, env) = cluster().await;
    let web_port = free_port();
    let _web = spawn(&env, &["web"], web_port);
    wait_ready(web_port, 200).await;
    let worker_port = free_port();
    let worker = spawn(&env, &["delivery"], worker_port);
    wait_ready(worker_port, 200).await;

    let id = canary::send(&pool, WorkQueue::Distribute, Duration::from_secs(3))
        .await
        .unwrap();
    wait_taken(&pool, &env).await;
    worker.signal("KILL");
    drop(worker);
    assert_eq!(applied(&pool, id).await, 0, "killed before it finished");

    let second_port = free_port();
    let _second = spawn(&env, &["delivery"], second_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied(&pool, id).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the message was never redelivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(applied(&pool, id).await, 1);
}

#[tokio::test]
async fn sigterm_lets_the_job_in_hand_finish() {
    let (pool, env) = cluster().await;
    let web_port = free_port();
    let _web = spawn(&env, &["web"], web_port);
    wait_ready(web_port, 200).await;
    let worker_port = free_port();
    let mut worker = spawn(&env, &["delivery"], worker_port);
    wait_ready(worker_port, 200).await;

    let id = canary::send(&pool, WorkQueue::Distribute, Duration::from_secs(2))
        .await
        .unwrap();
    wait_taken(&pool, &env).await;
    worker.signal("TERM");
    let status = worker
        .wait_exit(Duration::from_secs(20))
        .expect("exits after finishing");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        applied(&pool, id).await,
        1,
        "finished by the stopping worker"
    );
}

#[tokio::test]
async fn web_and_delivery_exchange_canaries_through_rabbitmq() {
    let (_pool, env) = cluster().await;
    let web_port = free_port();
    let _web = spawn(&env, &["web"], web_port);
    let worker_port = free_port();
    let _worker = spawn(&env, &["delivery"], worker_port);
    let media_port = free_port();
    let _media = spawn(&env, &["media"], media_port);
    wait_ready(web_port, 200).await;
    wait_ready(worker_port, 200).await;
    wait_ready(media_port, 200).await;

    for queue in ["distribute", "deliver", "ingress", "fetch", "mail", "media"] {
        let output = crate::process::command(
            &env,
            &[
                "admin",
                "canary",
                "--queue",
                queue,
                "--count",
                "10",
                "--timeout",
                "90",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{queue}: {out}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(report["completed"], 10, "{report}");
    }

    let queues = crate::process::command(&env, &["admin", "queues"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(queues.status.success());
    let text = String::from_utf8_lossy(&queues.stdout);
    assert_eq!(text.lines().count(), WorkQueue::ALL.len(), "{text}");
    assert!(text.contains(r#""parked":0"#), "{text}");
}

/// `stampede admin workers`: its JSON lines and whether it exited 0.
fn admin_workers(env: &[(String, String)]) -> (bool, Vec<serde_json::Value>) {
    let output = crate::process::command(env, &["admin", "workers"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (output.status.success(), rows)
}

/// The row of `worker` in a process whose role is `role`.
fn row<'a>(
    rows: &'a [serde_json::Value],
    role: &str,
    worker: &str,
) -> Option<&'a serde_json::Value> {
    rows.iter().find(|r| {
        r["worker"] == worker
            && r["process"]
                .as_str()
                .is_some_and(|p| p.starts_with(&format!("{role}@")))
    })
}

#[tokio::test]
async fn background_loops_report_their_state_and_a_vanished_process_shows_as_gone() {
    let (pool, env) = cluster().await;
    let worker_port = free_port();
    let delivery = spawn(&env, &["delivery"], worker_port);
    let media_port = free_port();
    let mut media = spawn(&env, &["media"], media_port);
    wait_ready(worker_port, 200).await;
    wait_ready(media_port, 200).await;

    // Each process lists its own loops, all running; the clock has had a round within 5 s.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed: serde_json::Value = client
            .get(format!("http://127.0.0.1:{worker_port}/health/workers"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let clock = listed["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "delivery/clock")
            .cloned()
            .unwrap_or_default();
        if clock["rounds"].as_u64() >= Some(1) {
            break listed;
        }
        assert!(Instant::now() < deadline, "the clock never ran: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            assert_eq!(w["state"], "running", "{w}");
            w["name"].as_str().unwrap()
        })
        .collect();
    for expected in [
        "delivery/queue:distribute",
        "delivery/queue:deliver",
        "delivery/queue:mail",
        "delivery/outbox-relay",
        "delivery/queue-depths",
        "delivery/domain-health",
        "delivery/key-pool",
        "delivery/prune",
        "delivery/clock",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let clock = &listed["workers"].as_array().unwrap()
        [names.iter().position(|n| *n == "delivery/clock").unwrap()];
    assert_eq!(clock["period_seconds"], 5.0);
    assert_eq!(clock["failures"], 0, "{clock}");

    // Across processes, from their heartbeats: every loop healthy, so the command exits 0.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let (ok, rows) = admin_workers(&env);
        if row(&rows, "stampede-delivery", "delivery/clock")
            .is_some_and(|r| r["rounds"].as_i64() >= Some(1))
            && row(&rows, "stampede-media", "media/sweep").is_some()
        {
            assert!(ok, "{rows:?}");
            break rows;
        }
        assert!(Instant::now() < deadline, "no heartbeat: {rows:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for r in &rows {
        assert_eq!(r["health"], "ok", "{r}");
    }

    // A process stopped with SIGTERM says so: its loops are stopped, not a problem.
    media.signal("TERM");
    media
        .wait_exit(Duration::from_secs(20))
        .expect("media exits");
    let (ok, rows) = admin_workers(&env);
    assert!(ok, "{rows:?}");
    let sweep = row(&rows, "stampede-media", "media/sweep").unwrap();
    assert_eq!(sweep["health"], "stopped", "{sweep}");
    assert_eq!(
        row(&rows, "stampede-media", "media/queue:media").unwrap()["health"],
        "stopped"
    );

    // A killed process writes nothing more: once its heartbeats are a minute old (aged here
    // rather than waited for), its loops show as gone and the command fails.
    delivery.signal("KILL");
    drop(delivery);
    sqlx::query(
        "UPDATE worker_heartbeats SET seen_at = seen_at - interval '2 minutes' \
         WHERE process LIKE 'stampede-delivery@%'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, rows) = admin_workers(&env);
    assert!(!ok, "a vanished process fails the command: {rows:?}");
    assert_eq!(
        row(&rows, "stampede-delivery", "delivery/clock").unwrap()["health"],
        "gone"
    );
    assert_eq!(
        row(&rows, "stampede-media", "media/sweep").unwrap()["health"],
        "stopped"
    );
}

/// Each command starts on the allocator chosen for it (ADR 0035), and STAMPEDE_ALLOCATOR
/// overrides the choice: the starting log line names the allocator the process really uses.
#[tokio::test]
async fn each_command_starts_on_its_allocator() {
    let (_pool, mut env) = cluster().await;
    env.retain(|(k, _)| k != "LOG_FORMAT");
    env.push(("LOG_FORMAT".into(), "json".into()));
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("web", None, "mimalloc"),
        ("all", None, "mimalloc"),
        ("streaming", None, "system"),
        ("delivery", None, "system"),
        ("streaming", Some("mimalloc"), "mimalloc"),
        ("web", Some("system"), "system"),
    ];
    for (command, chosen, expected) in cases {
        let mut env = env.clone();
        env.extend(chosen.map(|a| ("STAMPEDE_ALLOCATOR".to_string(), a.to_string())));
        let allocator = tokio::task::spawn_blocking(move || starting_allocator(&env, command))
            .await
            .unwrap();
        assert_eq!(allocator, expected, "{command} with {chosen:?}");
    }
}

/// Starts `stampede <command>` and returns the allocator its starting log line names.
fn starting_allocator(env: &[(String, String)], command: &str) -> String {
    use std::io::BufRead;
    let mut child = crate::process::command(env, &[command])
        .env("PORT", free_port().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut found = None;
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["fields"]["message"] == "starting" {
            found = entry["fields"]["allocator"].as_str().map(str::to_owned);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found.unwrap_or_else(|| panic!("`stampede {command}` logged no starting line"))
}
