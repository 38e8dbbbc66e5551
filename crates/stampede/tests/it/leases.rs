//! Leased connections: a finished lease's connection is reused without a ping; one left in a
//! transaction (or mid-work) is closed and its work rolled back; kept connections never starve
//! the pool beside them.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use stampede_db::{Lease, Leases};
use stampede_test_support::TestDb;

async fn backend_pid(leases: &Leases) -> (i32, Lease) {
    let mut conn = leases.take().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (pid, conn)
}

#[tokio::test]
async fn a_finished_lease_is_kept_and_reused() {
    let db = TestDb::new().await.unwrap();
    let pool = PgPool::connect(&db.url).await.unwrap();
    // sqlx's default pool size is ten: two connections of its own.
    let leases = Leases::new(crate::saturation::ungated(&pool));

    let (first, conn) = backend_pid(&leases).await;
    conn.finish();
    assert_eq!((leases.kept_now(), leases.open_now()), (1, 1));
    let (again, conn) = backend_pid(&leases).await;
    assert_eq!(again, first, "the kept connection is handed out again");
    assert_eq!(leases.kept_now(), 0, "a lease holds its connection");
    conn.finish();

    // Three at once: two of its own, the third borrowed from the pool and not kept.
    let (a, one) = backend_pid(&leases).await;
    let (b, two) = backend_pid(&leases).await;
    let (c, three) = backend_pid(&leases).await;
    assert!(a != b && b != c && a != c);
    assert_eq!(leases.open_now(), 2);
    one.finish();
    two.finish();
    three.finish();
    assert_eq!((leases.kept_now(), leases.open_now()), (2, 2));

    // A lease dropped without finishing closes its connection.
    let (_, dropped) = backend_pid(&leases).await;
    drop(dropped);
    assert_eq!((leases.kept_now(), leases.open_now()), (1, 1));
}

#[tokio::test]
async fn a_lease_left_in_a_transaction_is_closed_and_its_work_rolled_back() {
    let db = TestDb::new().await.unwrap();
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE notes (id int PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let leases = Leases::new(crate::saturation::ungated(&pool));

    // A transaction dropped without commit queues a ROLLBACK; the lease must not keep it.
    let mut conn = leases.take().await.unwrap();
    {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO notes VALUES (2)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    conn.finish();
    assert_eq!((leases.kept_now(), leases.open_now()), (0, 0));

    // The closed connection's transaction is rolled back: its lock goes, its row never was.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET lock_timeout = '5s'")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("INSERT INTO notes VALUES (2)")
        .execute(&mut other)
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn kept_connections_do_not_starve_the_pool() {
    let db = TestDb::new().await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&db.url)
        .await
        .unwrap();
    let leases = Leases::new(crate::saturation::ungated(&pool));
    let (_, conn) = backend_pid(&leases).await;
    conn.finish();
    assert_eq!(leases.kept_now(), 1);

    // Every connection of the pool is still there for code that uses it directly, as when a
    // request holds a transaction and needs a second connection.
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    drop((first, second));
}
