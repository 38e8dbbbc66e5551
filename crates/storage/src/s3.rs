//! An S3-compatible bucket through aws-sdk-s3: custom endpoint, region, path-style addressing and
//! static credentials, so AWS, MinIO, Garage, Ceph and the like all work. The HTTP client is
//! hyper with rustls on ring (no C toolchain needed for aws-lc).

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Builder, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bytes::Bytes;
use stampede_config::S3Config;

use crate::StorageError;

/// Every object's Cache-Control: keys are never reused (each file name carries a random token),
/// so what is stored under one never changes and browsers and CDNs may keep it for a year.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// A bucket.
#[derive(Clone, Debug)]
pub struct S3Storage {
    client: Client,
    bucket: String,
}

fn unavailable<E: std::error::Error>(error: E) -> StorageError {
    StorageError::Unavailable(DisplayErrorContext(error).to_string())
}

impl S3Storage {
    pub fn new(config: &S3Config) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut builder = Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(Credentials::new(
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
                None,
                None,
                "stampede-config",
            ))
            .force_path_style(config.force_path_style)
            .http_client(http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        S3Storage {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
        }
    }

    /// The SDK client, for operations this type does not wrap (tests create buckets with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(CACHE_CONTROL)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => {
                let body = output.body.collect().await.map_err(unavailable)?;
                Ok(Some(body.into_bytes()))
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetObjectError::NoSuchKey(_)) => {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
