//! A real S3-protocol server (s3s-fs, files in a temporary directory) on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// A running S3 server and the credentials it accepts.
#[derive(Debug)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Starts an S3 server storing its buckets under a fresh temporary directory.
pub async fn spawn_s3() -> anyhow::Result<S3Server> {
    let root = std::env::temp_dir().join(crate::unique("stampede-s3-"));
    std::fs::create_dir_all(&root)?;
    let access_key = crate::unique("ak");
    let secret_key = crate::unique("sk");
    let fs = s3s_fs::FileSystem::new(&root)
        .map_err(|e| anyhow::anyhow!("cannot serve S3 from {}: {e:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(
        access_key.clone(),
        secret_key.clone(),
    ));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(S3Server {
        endpoint: format!("http://{addr}"),
        access_key,
        secret_key,
        root,
        task,
    })
}
