//! The same cache behaviour against Redis and the in-process store.

use std::time::Duration;

use stampede_cache::memory::MemoryCache;
use stampede_cache::redis_backend::RedisCache;
use stampede_cache::{Cache, Message};
use stampede_test_support::{redis_url, unique};

async fn behaves(cache: Cache) {
    cache.check().await.unwrap();

    assert_eq!(cache.get("k").await.unwrap(), None);
    cache
        .set_ex("k", "v", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get("k").await.unwrap(), None, "expired");

    assert_eq!(cache.hit("rl", Duration::from_secs(60)).await.unwrap(), 1);
    assert_eq!(cache.hit("rl", Duration::from_secs(60)).await.unwrap(), 2);
    cache.del("rl").await.unwrap();
    assert_eq!(cache.hit("rl", Duration::from_secs(60)).await.unwrap(), 1);

    for id in 1..=8 {
        let entries = [
            ("feed:home:1".to_string(), vec![id]),
            ("feed:home:2".to_string(), vec![id]),
        ];
        assert_eq!(cache.feed_push(&entries, 5, &[]).await.unwrap(), 2);
    }
    // Several ids to one feed, and a feed given none, in the same round trip.
    let entries = [
        ("feed:home:1".to_string(), vec![9, 10]),
        ("feed:home:2".to_string(), vec![10, 9]),
        ("feed:home:3".to_string(), vec![]),
    ];
    assert_eq!(cache.feed_push(&entries, 5, &[]).await.unwrap(), 4);
    assert_eq!(
        cache
            .feed_range("feed:home:1", None, None, 20)
            .await
            .unwrap(),
        vec![10, 9, 8, 7, 6]
    );
    assert_eq!(
        cache
            .feed_range("feed:home:2", Some(9), Some(6), 20)
            .await
            .unwrap(),
        vec![8, 7]
    );
    assert_eq!(
        cache
            .feed_range("feed:home:2", None, None, 2)
            .await
            .unwrap(),
        vec![10, 9]
    );
    cache
        .feed_remove(&["feed:home:1".to_string()], &[9, 7])
        .await
        .unwrap();
    assert_eq!(
        cache
            .feed_range("feed:home:1", None, None, 20)
            .await
            .unwrap(),
        vec![10, 8, 6]
    );
    assert!(
        cache
            .feed_range("feed:home:3", None, None, 20)
            .await
            .unwrap()
            .is_empty()
    );

    // Kept feeds only: one with its marker, one being rebuilt; the third has neither, and an
    // expired marker counts as none.
    cache
        .set_ex("feed:k:1:ready", "1", Duration::from_secs(60))
        .await
        .unwrap();
    cache
        .set_ex("feed:k:2:rebuilding", "1", Duration::from_secs(60))
        .await
        .unwrap();
    cache
        .set_ex("feed:k:3:ready", "1", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let entries = [
        ("feed:k:1".to_string(), vec![1, 2]),
        ("feed:k:2".to_string(), vec![3]),
        ("feed:k:3".to_string(), vec![4]),
    ];
    let kept_by = [":ready", ":rebuilding"];
    assert_eq!(cache.feed_push(&entries, 5, &kept_by).await.unwrap(), 3);
    for (key, expected) in [
        ("feed:k:1", vec![2, 1]),
        ("feed:k:2", vec![3]),
        ("feed:k:3", vec![]),
    ] {
        assert_eq!(
            cache.feed_range(key, None, None, 20).await.unwrap(),
            expected,
            "{key}"
        );
    }

    // A feed read needs its marker: absent → None (rebuild); a fill sets it.
    let ttl = Duration::from_secs(60);
    assert_eq!(
        cache
            .feed_read("feed:home:4", "feed:home:4:ready", ttl, None, None, 20)
            .await
            .unwrap(),
        None
    );
    cache
        .feed_fill("feed:home:4", &[3, 1, 2, 5, 4], 4, "feed:home:4:ready", ttl)
        .await
        .unwrap();
    assert_eq!(
        cache
            .feed_read("feed:home:4", "feed:home:4:ready", ttl, Some(5), None, 20)
            .await
            .unwrap(),
        Some(vec![4, 3, 2])
    );
    cache.del("feed:home:4:ready").await.unwrap();
    assert_eq!(
        cache
            .feed_read("feed:home:4", "feed:home:4:ready", ttl, None, None, 20)
            .await
            .unwrap(),
        None
    );

    let mut rx = cache.subscribe();
    // A Redis subscription is made in the background; publish until someone hears it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache
        .publish("timeline:public", "{\"event\":\"update\"}")
        .await
        .unwrap()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message,
        Message {
            channel: "timeline:public".into(),
            payload: "{\"event\":\"update\"}".into()
        }
    );
}

#[tokio::test]
async fn redis_cache() {
    behaves(Cache::Redis(
        RedisCache::new(&redis_url(), &unique("t")).unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn in_process_cache() {
    behaves(Cache::Memory(MemoryCache::new())).await;
}

#[tokio::test]
async fn namespaces_keep_deployments_apart() {
    let a = Cache::Redis(RedisCache::new(&redis_url(), &unique("t")).unwrap());
    let b = Cache::Redis(RedisCache::new(&redis_url(), &unique("t")).unwrap());
    a.set_ex("shared", "a", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(b.get("shared").await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error() {
    let cache = Cache::Redis(RedisCache::new("redis://127.0.0.1:1/0", "t").unwrap());
    assert!(cache.check().await.is_err());
    assert!(cache.get("k").await.is_err());
}
