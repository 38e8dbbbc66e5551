//! RabbitMQ as a cluster of three nodes on loopback (issue 23): with quorum queues, killing the
//! node that holds the queues' leaders under load loses no message and applies none twice.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::social::{get, home_until, post, seed_user};

/// Three nodes started by deploy/local/rabbitmq-cluster.sh; stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    name: String,
    port: u16,
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/local/rabbitmq-cluster.sh"
);

fn free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

impl Cluster {
    fn start() -> Cluster {
        // Three AMQP ports and their distribution ports (+20000), all free.
        let seed = std::process::id() as u16 % 2000;
        let port = (0..200)
            .map(|i| 30_000 + (seed + i * 7) % 9_000)
            .find(|p| (0..3).all(|o| free(p + o) && free(p + o + 20_000)))
            .expect("no free ports for the cluster");
        let name = format!("st{}x", std::process::id());
        let dir = std::env::temp_dir().join(format!("stampede-rabbit-{name}"));
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg(&dir)
            .arg(&name)
            .arg(port.to_string())
            .output()
            .unwrap();
        let cluster = Cluster { dir, name, port };
        assert!(
            out.status.success(),
            "the cluster did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn node(&self, n: usize) -> String {
        format!("{}{}", self.name, ["a", "b", "c"][n])
    }

    fn urls(&self) -> String {
        (0..3)
            .map(|o| format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port + o))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node holding `queue`'s leader, asked of node `via`.
    fn leader(&self, via: usize, queue: &str) -> usize {
        let out = Command::new("rabbitmqctl")
            .args(["-q", "-n", &format!("{}@localhost", self.node(via))])
            .args([
                "list_queues",
                "name",
                "type",
                "leader",
                "--formatter",
                "json",
            ])
            .output()
            .unwrap();
        let queues: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        let row = queues
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == queue)
            .unwrap_or_else(|| panic!("{queue} not declared: {queues}"));
        assert_eq!(row["type"], "quorum", "{row}");
        let leader = row["leader"].as_str().unwrap();
        (0..3)
            .find(|n| leader == format!("{}@localhost", self.node(*n)))
            .unwrap_or_else(|| panic!("leader {leader}"))
    }

    fn kill(&self, n: usize) {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("kill")
            .arg(&self.dir)
            .arg(self.node(n))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

async fn ready_detail(app: &TestApp) -> serde_json::Value {
    app.client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn killing_the_leaders_node_under_load_loses_nothing() {
    let cluster = Cluster::start();
    let app = spawn_app(AppOptions {
        amqp: true,
        redis: true,
        workers: true,
        env: vec![
            ("AMQP_URL".into(), cluster.urls()),
            ("AMQP_QUEUE_TYPE".into(), "quorum".into()),
        ],
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let alice = seed_user(&app, "alice", false).await;
    let bob = seed_user(&app, "bob", false).await;
    let mut followers = Vec::new();
    for i in 0..5 {
        let follower = seed_user(&app, &format!("follower{i}"), false).await;
        let answer = post(
            &app,
            &format!("/api/v1/accounts/{}/follow", alice.id),
            &follower,
            json!({}),
        )
        .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        followers.push(follower);
    }
    // The first status crosses the cluster before anything breaks.
    let first = post(
        &app,
        "/api/v1/statuses",
        &alice,
        json!({"status": "@bob hello"}),
    )
    .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let first = first.body["id"].as_str().unwrap().to_string();
    for follower in &followers {
        home_until(&app, follower, |ids| ids.contains(&first)).await;
    }
    let prefix = app
        .env
        .iter()
        .find(|(k, _)| k == "AMQP_QUEUE_PREFIX")
        .map(|(_, v)| v.clone())
        .unwrap();
    let queue = format!("{prefix}.distribute");
    let leader = cluster.leader(0, &queue);

    // Posts keep coming while the node holding the fan-out queue's leader is killed.
    const POSTS: usize = 30;
    let mut posted = vec![first];
    let mut killed_at = None;
    for i in 1..POSTS {
        if i == 10 {
            cluster.kill(leader);
            killed_at = Some(Instant::now());
        }
        let answer = post(
            &app,
            "/api/v1/statuses",
            &alice,
            json!({"status": format!("@bob number {i}")}),
        )
        .await;
        assert_eq!(answer.status, 200, "post {i}: {:?}", answer.body);
        posted.push(answer.body["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    // Every status reaches every follower's home…
    for follower in &followers {
        home_until(&app, follower, |ids| posted.iter().all(|p| ids.contains(p))).await;
    }
    let recovered = killed_at.unwrap().elapsed();
    // …a new leader was elected on a survivor…
    let survivor = (0..3).find(|n| *n != leader).unwrap();
    assert_ne!(cluster.leader(survivor, &queue), leader);
    // …and Bob was notified of each mention exactly once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (rows, distinct): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT status_id) FROM notifications \
             WHERE account_id = $1 AND type = 'mention'",
        )
        .bind(bob.id.parse::<i64>().unwrap())
        .fetch_one(&app.ctx.db)
        .await
        .unwrap();
        assert_eq!(rows, distinct, "a mention was notified twice");
        if rows == POSTS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {POSTS} mentions notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = get(&app, "/api/v1/notifications?types[]=mention&limit=40", &bob).await;
    assert_eq!(
        answer.body.as_array().map(Vec::len),
        Some(POSTS),
        "{:?}",
        answer.body
    );

    // Readiness names the node the process talks to now: no longer the dead one.
    let ready = ready_detail(&app).await;
    let dead = format!("127.0.0.1:{}", cluster.port + leader as u16);
    assert!(ready.to_string().contains("127.0.0.1:"), "{ready}");
    assert!(
        !ready.to_string().contains(&dead),
        "still on the dead node: {ready}"
    );
    eprintln!("fail-over: all {POSTS} statuses in every home {recovered:?} after the kill");
}
