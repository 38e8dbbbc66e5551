//! Video, audio and GIF animations, through ffmpeg in a private working directory.
//!
//! ```text
//! upload ──► job dir/input ──► ffprobe (limits) ──► ffmpeg ──► ffprobe (meta)
//!                                                     │
//!                     video / gifv: H.264 MP4 ────────┴──► poster frame ──► small + blurhash
//!                     audio:        MP3
//! ```
//!
//! ffmpeg is told which demuxer to use (the sniffed one) instead of guessing, so it never reads
//! an upload as a playlist or another format that opens further files. Output carries no
//! metadata from the upload (`-map_metadata -1`: no GPS position, no device, no title) and
//! starts with its index (`+faststart`) so a browser can begin playing before it has it all.

use std::path::Path;

use bytes::Bytes;
use image::ImageFormat;

use crate::job::JobDir;
use crate::probe::{Probe, probe, tidy};
use crate::still::{self, Output, check_pixels};
use crate::tool::{Outcome, Run};
use crate::{Limits, MediaError, MediaKind, Processed, Sniffed, Variant, meta, run_blocking};

/// H.264 quality: 23 is x264's default, good for the sizes Mastodon shows.
const CRF: &str = "23";
/// AAC bit rate for a video's sound.
const AUDIO_BITRATE: &str = "128k";
/// LAME VBR quality for audio uploads (about 190 kbit/s).
const MP3_QUALITY: &str = "2";

/// Processes a video or audio upload (a video container holding only sound becomes audio).
pub(crate) async fn process(
    bytes: Bytes,
    sniffed: Sniffed,
    limits: &Limits,
) -> Result<Processed, MediaError> {
    let demuxer = crate::sniff::demuxer(sniffed.mime).ok_or_else(|| {
        MediaError::Unsupported(format!("{} files are not supported", sniffed.mime))
    })?;
    let job = JobDir::create().await?;
    let input = write_input(&job, &bytes).await?;
    let what = if sniffed.kind == MediaKind::Audio {
        "audio file"
    } else {
        "video"
    };
    let source = probe(limits, &input, Some(demuxer), what).await?;
    check_duration(&source, limits, what)?;
    if let Some(video) = &source.video {
        check_pixels(video.width, video.height, limits.max_decode_pixels, "video")?;
        return transcode_video(&job, &input, demuxer, &source, limits, MediaKind::Video).await;
    }
    transcode_audio(&job, &input, demuxer, &source, limits).await
}

/// Processes an animated GIF into a silent MP4, with its first frame as the preview.
pub(crate) async fn process_gifv(bytes: Bytes, limits: &Limits) -> Result<Processed, MediaError> {
    let job = JobDir::create().await?;
    let input = write_input(&job, &bytes).await?;
    let preview_limits = limits.clone();
    let first_frame =
        run_blocking(move || still::preview(&bytes, ImageFormat::Gif, None, &preview_limits));
    let animation = async {
        let source = probe(limits, &input, Some("gif"), "GIF animation").await?;
        check_duration(&source, limits, "GIF animation")?;
        transcode_video(&job, &input, "gif", &source, limits, MediaKind::Gifv).await
    };
    let (first_frame, animation) = tokio::join!(first_frame, animation);
    let (small, blurhash) = first_frame?;
    let mut processed = animation?;
    if let Some(object) = processed.meta.as_object_mut() {
        object.insert(
            "small".into(),
            meta::dimensions(small.width.unwrap_or(0), small.height.unwrap_or(0)),
        );
    }
    processed.small = Some(small);
    processed.blurhash = Some(blurhash);
    Ok(processed)
}

async fn write_input(job: &JobDir, bytes: &[u8]) -> Result<std::path::PathBuf, MediaError> {
    let input = job.file("input");
    tokio::fs::write(&input, bytes).await.map_err(|e| {
        MediaError::Unavailable(format!(
            "This server could not store the upload for processing: {e}"
        ))
    })?;
    Ok(input)
}

fn check_duration(source: &Probe, limits: &Limits, what: &str) -> Result<(), MediaError> {
    match source.duration {
        Some(duration) if duration > limits.max_duration_secs => {
            Err(MediaError::TooLarge(format!(
                "The {what} is {} long; the longest this server accepts is {}",
                meta::length(duration),
                meta::length(limits.max_duration_secs),
            )))
        }
        _ => Ok(()),
    }
}

/// Video or GIF animation → H.264 MP4 within `original_pixels`, then (video only) the poster.
async fn transcode_video(
    job: &JobDir,
    input: &Path,
    demuxer: &str,
    source: &Probe,
    limits: &Limits,
    kind: MediaKind,
) -> Result<Processed, MediaError> {
    let output = job.file("original.mp4");
    let video_index = source.video.as_ref().map_or(0, |v| v.index);
    let mut run = ffmpeg(limits)
        .args(["-f", demuxer, "-i"])
        .arg(input)
        .args(["-map", &format!("0:{video_index}")]);
    let audio = source.audio.as_ref().filter(|_| kind == MediaKind::Video);
    if let Some(audio) = audio {
        run = run.args([
            "-map",
            &format!("0:{}", audio.index),
            "-c:a",
            "aac",
            "-b:a",
            AUDIO_BITRATE,
        ]);
    } else {
        run = run.arg("-an");
    }
    run = run
        .args(["-t", &limits.max_duration_secs.to_string()])
        .args(["-vf", &scale_filter(limits.original_pixels, true)])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-crf", CRF, "-pix_fmt", "yuv420p",
        ])
        .args([
            "-max_muxing_queue_size",
            "1024",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ])
        .args(STRIP)
        .arg(&output);
    let what = if kind == MediaKind::Gifv {
        "GIF animation"
    } else {
        "video"
    };
    run_ffmpeg(run, limits, &output, what).await?;
    let result = probe(limits, &output, Some("mov"), what).await?;
    let (small, blurhash) = match kind {
        MediaKind::Video => {
            let (small, blurhash) = poster(job, &output, limits).await?;
            (Some(small), Some(blurhash))
        }
        _ => (None, None),
    };
    let small_size = small.as_ref().and_then(|s| Some((s.width?, s.height?)));
    let (width, height) = result
        .video
        .as_ref()
        .map_or((None, None), |v| (Some(v.width), Some(v.height)));
    Ok(Processed {
        kind,
        original: Variant {
            bytes: read(&output).await?,
            mime: "video/mp4",
            extension: "mp4",
            width,
            height,
        },
        small,
        blurhash,
        meta: meta::video(&result, small_size),
    })
}

/// The first frame of the processed video, scaled to `small_pixels`, as a JPEG with its blurhash.
async fn poster(
    job: &JobDir,
    video: &Path,
    limits: &Limits,
) -> Result<(Variant, String), MediaError> {
    let frame = job.file("poster.png");
    let run = ffmpeg(limits)
        .args(["-f", "mov", "-i"])
        .arg(video)
        .args([
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-vf",
            &scale_filter(limits.small_pixels, false),
        ])
        .args(["-f", "image2", "-c:v", "png"])
        .args(STRIP)
        .arg(&frame);
    run_ffmpeg(run, limits, &frame, "video's first frame").await?;
    let png = read(&frame).await?;
    let limits = limits.clone();
    run_blocking(move || still::preview(&png, ImageFormat::Png, Some(Output::Jpeg), &limits)).await
}

/// Audio → MP3, without cover art or tags.
async fn transcode_audio(
    job: &JobDir,
    input: &Path,
    demuxer: &str,
    source: &Probe,
    limits: &Limits,
) -> Result<Processed, MediaError> {
    let output = job.file("original.mp3");
    let audio_index = source.audio.as_ref().map_or(0, |a| a.index);
    let run = ffmpeg(limits)
        .args(["-f", demuxer, "-i"])
        .arg(input)
        .args(["-map", &format!("0:{audio_index}"), "-vn"])
        .args(["-t", &limits.max_duration_secs.to_string()])
        .args(["-c:a", "libmp3lame", "-q:a", MP3_QUALITY, "-f", "mp3"])
        .args(STRIP)
        .arg(&output);
    run_ffmpeg(run, limits, &output, "audio file").await?;
    let result = probe(limits, &output, Some("mp3"), "audio file").await?;
    Ok(Processed {
        kind: MediaKind::Audio,
        original: Variant {
            bytes: read(&output).await?,
            mime: "audio/mpeg",
            extension: "mp3",
            width: None,
            height: None,
        },
        small: None,
        blurhash: None,
        meta: meta::audio(&result),
    })
}

/// Options that drop everything but the media: tags, chapters, subtitles and data streams.
const STRIP: [&str; 6] = ["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"];

/// An ffmpeg run with the options every run here shares: no terminal, quiet but for errors,
/// overwrite the (fresh) output.
fn ffmpeg(limits: &Limits) -> Run {
    Run::new(&limits.ffmpeg).args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
}

/// Runs ffmpeg; a failure means it could not read or convert the upload.
async fn run_ffmpeg(
    run: Run,
    limits: &Limits,
    output: &Path,
    what: &str,
) -> Result<(), MediaError> {
    match run.run(limits.ffmpeg_timeout).await? {
        Outcome::Success(_) => Ok(()),
        Outcome::Failed(stderr) => Err(MediaError::Corrupt(format!(
            "The {what} could not be converted; it may be damaged ({})",
            tidy(&stderr, output)
        ))),
    }
}

/// A scale filter that fits within `max_pixels` keeping the aspect ratio and never enlarges,
/// with even sides when `even` (yuv420p needs them). The expressions see the frame after
/// ffmpeg has applied the upload's rotation, so a portrait phone video stays portrait.
fn scale_filter(max_pixels: u64, even: bool) -> String {
    let factor = format!("min(1,sqrt({max_pixels}/(iw*ih)))");
    let side = |dim: &str| {
        if even {
            format!("max(2,trunc({dim}*{factor}/2)*2)")
        } else {
            format!("max(1,trunc({dim}*{factor}))")
        }
    };
    format!("scale=w='{}':h='{}'", side("iw"), side("ih"))
}

async fn read(path: &Path) -> Result<Bytes, MediaError> {
    tokio::fs::read(path).await.map(Bytes::from).map_err(|e| {
        MediaError::Unavailable(format!(
            "This server could not read back the processed file: {e}"
        ))
    })
}
