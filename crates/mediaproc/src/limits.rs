//! How much this server accepts and where it finds ffmpeg.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The limits and tools for processing, one value per server. The defaults are Mastodon's
/// numbers where Mastodon has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The largest image upload, in bytes (GIF animations included). Mastodon: 16 MiB.
    pub image_bytes: u64,
    /// The largest video or audio upload, in bytes. Mastodon: 99 MiB.
    pub video_bytes: u64,
    /// The most pixels decoded from one image or video frame, checked against the header before
    /// anything is decoded, so a small file that claims to be enormous (a decompression bomb) is
    /// refused without allocating. Default 8192×8192.
    pub max_decode_pixels: u64,
    /// The most memory the image decoder may allocate (`image::Limits::max_alloc`).
    pub max_alloc: u64,
    /// Originals with more pixels than this are scaled down, keeping the aspect ratio.
    /// Mastodon: 8,294,400 (3840×2160).
    pub original_pixels: u64,
    /// The preview (`small`) is scaled to at most this many pixels. Mastodon: 230,400 (640×360).
    pub small_pixels: u64,
    /// The ffmpeg program: a bare name is looked up on `PATH`.
    pub ffmpeg: PathBuf,
    /// The ffprobe program. Left at the bare default while `ffmpeg` is a path, the ffprobe next
    /// to that ffmpeg is used when there is one (see [`Limits::ffprobe_program`]).
    pub ffprobe: PathBuf,
    /// How long one ffmpeg or ffprobe run may take before it is killed.
    pub ffmpeg_timeout: Duration,
    /// The longest video or audio accepted, in seconds.
    pub max_duration_secs: f64,
}

/// The default ffprobe program name, looked up on `PATH`.
const FFPROBE: &str = "ffprobe";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            image_bytes: 16 * 1024 * 1024,
            video_bytes: 99 * 1024 * 1024,
            max_decode_pixels: 8192 * 8192,
            max_alloc: 512 * 1024 * 1024,
            original_pixels: 8_294_400,
            small_pixels: 230_400,
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from(FFPROBE),
            ffmpeg_timeout: Duration::from_secs(5 * 60),
            max_duration_secs: 3600.0,
        }
    }
}

impl Limits {
    /// The ffprobe to run: `ffprobe` as configured, except that the bare default next to a
    /// configured ffmpeg path (`/opt/ffmpeg/bin/ffmpeg`) means the ffprobe in that directory, so
    /// an operator who points at one build gets both of its tools.
    pub fn ffprobe_program(&self) -> PathBuf {
        if self.ffprobe != Path::new(FFPROBE) {
            return self.ffprobe.clone();
        }
        let sibling = self
            .ffmpeg
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(FFPROBE));
        match sibling {
            Some(path) if path.is_file() => path,
            _ => self.ffprobe.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_is_found_next_to_a_configured_ffmpeg() {
        let dir = std::env::temp_dir().join(format!("mediaproc-tools-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).expect("a directory");
        std::fs::write(dir.join("ffprobe"), b"").expect("a stand-in ffprobe");
        let beside = Limits {
            ffmpeg: dir.join("ffmpeg"),
            ..Limits::default()
        };
        assert_eq!(beside.ffprobe_program(), dir.join("ffprobe"));
        let chosen = Limits {
            ffprobe: PathBuf::from("/opt/probe"),
            ..beside.clone()
        };
        assert_eq!(chosen.ffprobe_program(), PathBuf::from("/opt/probe"));
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(
            beside.ffprobe_program(),
            PathBuf::from("ffprobe"),
            "none there: PATH"
        );
        assert_eq!(
            Limits::default().ffprobe_program(),
            PathBuf::from("ffprobe")
        );
    }
}
