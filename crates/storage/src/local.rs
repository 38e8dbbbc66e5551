//! Objects as files below a directory (PAPERCLIP_ROOT_PATH). Writes go to a temporary file that
//! is renamed into place, so a reader never sees half an object.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::StorageError;

/// A directory of objects.
#[derive(Clone, Debug)]
pub struct LocalStorage {
    root: PathBuf,
}

fn unavailable(error: std::io::Error) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

impl LocalStorage {
    pub fn new(root: &Path) -> Self {
        LocalStorage {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        // validate_key has ruled out absolute paths and `..`.
        self.root.join(key)
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        body: Bytes,
        _content_type: &str,
    ) -> Result<(), StorageError> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(unavailable)?;
        }
        let temp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&temp, &body).await.map_err(unavailable)?;
        if let Err(error) = tokio::fs::rename(&temp, &path).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(unavailable(error));
        }
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(unavailable(e)),
            _ => Ok(()),
        }
    }

    pub(crate) async fn check(&self) -> Result<(), StorageError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(unavailable)?;
        let metadata = tokio::fs::metadata(&self.root).await.map_err(unavailable)?;
        if metadata.permissions().readonly() {
            return Err(StorageError::Unavailable(format!(
                "{} is read-only",
                self.root.display()
            )));
        }
        Ok(())
    }
}
