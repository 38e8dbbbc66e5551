//! GIF animations, video and audio through ffmpeg. These need ffmpeg and fail, saying so, when
//! it is missing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fixtures::{contains, gif, require_ffmpeg, video_clip, wav_clip};
use crate::{Limits, MediaError, MediaKind, check_ffmpeg, ffmpeg_available, process};

fn duration(meta: &serde_json::Value) -> f64 {
    meta["original"]["duration"].as_f64().expect("a duration")
}

#[tokio::test]
async fn an_animated_gif_becomes_a_silent_mp4() {
    require_ffmpeg();
    let processed = process(Bytes::from(gif(2)), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.kind, MediaKind::Gifv);
    let original = &processed.original;
    assert_eq!((original.mime, original.extension), ("video/mp4", "mp4"));
    assert!(contains(&original.bytes[..64], b"ftyp"));
    assert_eq!((original.width, original.height), (Some(32), Some(24)));
    let small = processed.small.expect("the first frame");
    assert_eq!((small.mime, small.width), ("image/png", Some(32)));
    assert_eq!(processed.blurhash.map(|h| h.len()), Some(36));
    let meta = &processed.meta;
    assert_eq!(meta["original"]["width"], 32);
    assert!(meta["original"]["frame_rate"].is_string(), "{meta}");
    assert!((duration(meta) - 0.2).abs() < 0.15, "{meta}");
    assert!(meta.get("audio_encode").is_none());
    assert_eq!(meta["small"]["size"], "32x24");
}

#[tokio::test]
async fn an_mp4_video_is_transcoded_with_a_poster() {
    let upload = video_clip("mp4");
    assert!(contains(&upload, b"Secret title"));
    let processed = process(Bytes::from(upload), &Limits::default())
        .await
        .expect("processed");

    assert_eq!(processed.kind, MediaKind::Video);
    let original = &processed.original;
    assert_eq!(
        (original.mime, original.width, original.height),
        ("video/mp4", Some(320), Some(240))
    );
    assert!(contains(&original.bytes[..64], b"ftyp"));
    assert!(
        !contains(&original.bytes, b"Secret title"),
        "tags are dropped"
    );
    let small = processed.small.expect("a poster");
    assert_eq!(
        (small.mime, small.width, small.height),
        ("image/jpeg", Some(320), Some(240))
    );
    assert!(processed.blurhash.is_some_and(|h| h.len() == 36));

    let meta = &processed.meta;
    assert!((duration(meta) - 1.0).abs() < 0.2, "{meta}");
    assert_eq!(meta["original"]["frame_rate"], "10/1");
    assert!(
        meta["original"]["bitrate"].as_u64().is_some_and(|b| b > 0),
        "{meta}"
    );
    assert_eq!(meta["fps"], 10);
    assert_eq!(meta["size"], "320x240");
    assert_eq!(meta["small"]["size"], "320x240");
    assert!(
        meta["length"]
            .as_str()
            .is_some_and(|l| l.starts_with("0:00:01")),
        "{meta}"
    );
    assert!(
        meta["audio_encode"]
            .as_str()
            .is_some_and(|c| c.starts_with("aac")),
        "{meta}"
    );
    assert!(meta["audio_channels"].is_string(), "{meta}");
}

#[tokio::test]
async fn a_webm_video_is_transcoded_to_mp4() {
    let processed = process(Bytes::from(video_clip("webm")), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.kind, MediaKind::Video);
    assert_eq!(processed.original.mime, "video/mp4");
    assert!(
        (duration(&processed.meta) - 1.0).abs() < 0.2,
        "{}",
        processed.meta
    );
    assert!(processed.small.is_some());
}

#[tokio::test]
async fn a_large_video_is_scaled_within_original_pixels() {
    let limits = Limits {
        original_pixels: 20_000,
        small_pixels: 5_000,
        ..Limits::default()
    };
    let processed = process(Bytes::from(video_clip("mp4")), &limits)
        .await
        .expect("processed");
    let (w, h) = (
        processed.original.width.expect("w"),
        processed.original.height.expect("h"),
    );
    assert!(
        u64::from(w * h) <= 20_000 && w % 2 == 0 && h % 2 == 0,
        "{w}x{h}"
    );
    let small = processed.small.expect("a poster");
    assert!(u64::from(small.width.expect("w") * small.height.expect("h")) <= 5_000);
}

#[tokio::test]
async fn audio_becomes_mp3_without_a_preview() {
    let upload = wav_clip();
    let processed = process(Bytes::from(upload), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.kind, MediaKind::Audio);
    let original = &processed.original;
    assert_eq!(
        (original.mime, original.extension, original.width),
        ("audio/mpeg", "mp3", None)
    );
    assert!(original.bytes.starts_with(b"ID3") || original.bytes.starts_with(&[0xFF]));
    assert!(!contains(&original.bytes, b"Someone"), "tags are dropped");
    assert!(processed.small.is_none() && processed.blurhash.is_none());
    let meta = &processed.meta;
    assert!((duration(meta) - 1.0).abs() < 0.2, "{meta}");
    assert!(meta["original"]["bitrate"].as_u64().is_some(), "{meta}");
    assert_eq!(meta["audio_encode"], "mp3");
}

#[tokio::test]
async fn a_video_container_with_only_sound_is_audio() {
    let upload = super::fixtures::ffmpeg_clip(
        &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"],
        "mp4",
    );
    let processed = process(Bytes::from(upload), &Limits::default())
        .await
        .expect("processed");
    assert_eq!(processed.kind, MediaKind::Audio);
}

#[tokio::test]
async fn without_ffmpeg_video_is_unavailable_at_once() {
    let clip = video_clip("mp4");
    let limits = Limits {
        ffmpeg: PathBuf::from("/nonexistent/ffmpeg"),
        ffprobe: PathBuf::from("/nonexistent/ffprobe"),
        ..Limits::default()
    };
    let started = Instant::now();
    let result = process(Bytes::from(clip), &limits).await;
    let Err(MediaError::Unavailable(message)) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(message.contains("need ffmpeg"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!ffmpeg_available(&limits).await);

    // ffprobe found on PATH but ffmpeg missing: still refused, with the same reason.
    let only_ffmpeg_missing = Limits {
        ffmpeg: PathBuf::from("/nonexistent/ffmpeg"),
        ..Limits::default()
    };
    let result = process(Bytes::from(video_clip("mp4")), &only_ffmpeg_missing).await;
    assert!(
        matches!(result, Err(MediaError::Unavailable(ref m)) if m.contains("need ffmpeg")),
        "{result:?}"
    );
    // Images need no ffmpeg.
    let image = super::fixtures::jpeg(&super::fixtures::photo(16, 16));
    assert!(process(Bytes::from(image), &limits).await.is_ok());
}

#[tokio::test]
async fn ffmpeg_is_available_here() {
    require_ffmpeg();
    check_ffmpeg(&Limits::default())
        .await
        .expect("ffmpeg with libx264, libmp3lame and aac");
}

#[tokio::test]
async fn too_long_and_too_slow_are_refused() {
    let clip = Bytes::from(video_clip("mp4"));
    let short = Limits {
        max_duration_secs: 0.5,
        ..Limits::default()
    };
    let result = process(clip.clone(), &short).await;
    assert!(
        matches!(result, Err(MediaError::TooLarge(ref m)) if m.contains("long")),
        "{result:?}"
    );

    let hasty = Limits {
        ffmpeg_timeout: Duration::from_millis(1),
        ..Limits::default()
    };
    let result = process(clip.clone(), &hasty).await;
    assert!(
        matches!(result, Err(MediaError::Unavailable(ref m)) if m.contains("longer than")),
        "{result:?}"
    );

    let small_frames = Limits {
        max_decode_pixels: 320 * 239,
        ..Limits::default()
    };
    let result = process(clip, &small_frames).await;
    assert!(
        matches!(result, Err(MediaError::TooLarge(ref m)) if m.contains("320x240")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_damaged_video_is_corrupt() {
    let clip = video_clip("mp4");
    let result = process(
        Bytes::copy_from_slice(&clip[..clip.len() / 4]),
        &Limits::default(),
    )
    .await;
    assert!(matches!(result, Err(MediaError::Corrupt(_))), "{result:?}");
}
