//! A private working directory for one ffmpeg job, removed when the job ends however it ends.

use std::path::{Path, PathBuf};

use crate::MediaError;

/// The prefix of every job directory's name, so an operator can tell ours apart in `/tmp`.
const PREFIX: &str = "stampede-mediaproc-";

/// A directory under the system's temporary directory, readable only by this user, removed with
/// everything in it when dropped: on success, on error and on a cancelled future alike.
pub(crate) struct JobDir {
    path: PathBuf,
}

impl JobDir {
    /// Creates a fresh directory under [`std::env::temp_dir`].
    pub(crate) async fn create() -> Result<Self, MediaError> {
        Self::create_in(&std::env::temp_dir()).await
    }

    pub(crate) async fn create_in(root: &Path) -> Result<Self, MediaError> {
        let path = root.join(format!("{PREFIX}{}", uuid::Uuid::new_v4()));
        let mut builder = tokio::fs::DirBuilder::new();
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(&path).await.map_err(|e| {
            MediaError::Unavailable(format!(
                "This server could not create a working directory for processing: {e}"
            ))
        })?;
        Ok(JobDir { path })
    }

    /// A path for a file inside the directory.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for JobDir {
    /// Removes the directory synchronously: it holds a handful of files, and removing them
    /// takes far less time than the job did, while deferring it to a task would leave files
    /// behind if the runtime shut down first.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_directory_and_its_files_go_when_dropped() {
        let job = JobDir::create().await.expect("a job directory");
        let path = job.path().to_path_buf();
        tokio::fs::write(job.file("input"), b"bytes")
            .await
            .expect("a file in it");
        assert!(path.is_dir());
        drop(job);
        assert!(!path.exists());
    }
}
