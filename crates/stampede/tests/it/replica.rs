//! A streaming read replica on loopback (issue 23): `pg_basebackup` of the test server into a
//! second cluster on another port, and Stampede with REPLICA_DB_URL pointing at it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use stampede_test_support::{AppOptions, TestApp, spawn_app};

use crate::social::{User, get, home_until, post, post_status, seed_user};

/// A hot standby of the test server, stopped and removed on drop.
struct Standby {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

/// PostgreSQL's server programs (`pg_ctl`), on PATH or in Debian's versioned directory.
fn server_bin() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .filter(|p| p.join("pg_ctl").exists())
        .expect("PostgreSQL's server programs (pg_ctl) are not installed")
}

/// Whether the tests run as root.
fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `program` as the `postgres` user when the tests run as root (PostgreSQL refuses root).
fn as_postgres(program: &Path) -> Command {
    if root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Standby {
    fn start() -> Standby {
        let bin = server_bin();
        let dir = std::env::temp_dir().join(format!(
            "stampede-replica-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if root() {
            run(
                Command::new("chown").arg("postgres").arg(&dir),
                "chown of the replica's directory",
            );
        }
        let data = dir.join("data");
        run(
            as_postgres(&bin.join("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "5432",
                    "-U",
                    "postgres",
                    "-X",
                    "stream",
                ])
                .args(["-c", "fast", "-R", "-D"])
                .arg(&data),
            "pg_basebackup (the test server must allow replication connections from \
             127.0.0.1: deploy/local/backing-services.sh adds that line to pg_hba.conf)",
        );
        // Debian keeps the server's configuration outside its data directory.
        let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
        for (name, text) in [("pg_hba.conf", hba), ("postgresql.conf", "")] {
            let path = data.join(name);
            if !path.exists() || name == "pg_hba.conf" {
                write_as_postgres(&path, text);
            }
        }
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
             -c hot_standby=on -c shared_buffers=32MB",
            dir.display()
        );
        run(
            as_postgres(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
            "starting the replica",
        );
        Standby { dir, port, bin }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{{database}}", self.port)
    }

    fn stop(&self) {
        run(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"]),
            "stopping the replica",
        );
    }

    fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
             -c hot_standby=on -c shared_buffers=32MB",
            self.port,
            self.dir.display()
        );
        run(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
            "restarting the replica",
        );
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            eprintln!("--- the replica's log ---\n{log}");
        }
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_as_postgres(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    if root() {
        run(
            Command::new("chown").arg("postgres").arg(path),
            "chown of the replica's configuration",
        );
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
