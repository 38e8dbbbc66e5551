//! The same storage behaviour against a real S3-protocol server and local disk.

use bytes::Bytes;
use stampede_config::{S3Config, StorageConfig};
use stampede_storage::{Storage, StorageError};
use stampede_test_support::{spawn_s3, unique};

async fn behaves(storage: &Storage) {
    storage.check().await.unwrap();
    let key = "media_attachments/files/110/original.png";
    assert_eq!(storage.get(key).await.unwrap(), None);
    storage
        .put(key, Bytes::from_static(b"\x89PNG..."), "image/png")
        .await
        .unwrap();
    assert_eq!(
        storage.get(key).await.unwrap(),
        Some(Bytes::from_static(b"\x89PNG..."))
    );
    storage
        .put(key, Bytes::from_static(b"replaced"), "image/png")
        .await
        .unwrap();
    assert_eq!(
        storage.get(key).await.unwrap(),
        Some(Bytes::from_static(b"replaced"))
    );
    storage.delete(key).await.unwrap();
    assert_eq!(storage.get(key).await.unwrap(), None);
    storage.delete(key).await.unwrap(); // deleting what is gone is fine
    assert!(matches!(
        storage.put("../escape", Bytes::new(), "text/plain").await,
        Err(StorageError::InvalidKey(_))
    ));
}

fn s3_config(server: &stampede_test_support::S3Server, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_string(),
        endpoint: Some(server.endpoint.parse().unwrap()),
        region: "us-east-1".into(),
        access_key_id: server.access_key.clone(),
        secret_access_key: server.secret_key.clone(),
        force_path_style: true,
    }
}

#[tokio::test]
async fn s3_storage_against_a_real_s3_server() {
    let server = spawn_s3().await.unwrap();
    let bucket = unique("media-");
    let storage = Storage::from_config(&StorageConfig::S3(s3_config(&server, &bucket)));
    let Storage::S3(s3) = &storage else {
        unreachable!()
    };
    s3.client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    behaves(&storage).await;

    let missing = Storage::from_config(&StorageConfig::S3(s3_config(&server, "no-such-bucket")));
    assert!(
        missing.check().await.is_err(),
        "a missing bucket is not ready"
    );

    let mut wrong = s3_config(&server, &bucket);
    wrong.secret_access_key = "wrong".into();
    let wrong = Storage::from_config(&StorageConfig::S3(wrong));
    assert!(
        wrong.get("media_attachments/x").await.is_err(),
        "bad credentials are refused"
    );
}

#[tokio::test]
async fn local_storage() {
    let root = std::env::temp_dir().join(unique("stampede-local-"));
    let storage = Storage::from_config(&StorageConfig::Local { root: root.clone() });
    behaves(&storage).await;
    let _ = std::fs::remove_dir_all(root);
}
