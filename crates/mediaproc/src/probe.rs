//! What ffprobe says about a file: its streams, size, duration and bit rate.

use std::path::Path;

use serde_json::Value;

use crate::tool::{Outcome, Run};
use crate::{Limits, MediaError};

/// The parts of ffprobe's report that processing and `meta` use.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Probe {
    /// Seconds, from the container (or the longest stream when the container has none).
    pub duration: Option<f64>,
    /// Bits per second over the whole file.
    pub bitrate: Option<u64>,
    /// The first real video stream: cover art attached to audio does not count.
    pub video: Option<VideoStream>,
    pub audio: Option<AudioStream>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VideoStream {
    pub index: u32,
    pub width: u32,
    pub height: u32,
    /// A rational as ffprobe gives it, "30/1" or "30000/1001".
    pub frame_rate: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioStream {
    pub index: u32,
    /// The codec and its profile: "aac (LC)", "mp3".
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    pub channel_layout: Option<String>,
}

/// Runs ffprobe on `path`, read as `demuxer` when given. A file ffprobe cannot read is
/// [`MediaError::Corrupt`], with ffprobe's own last words; `what` names it in that message.
pub(crate) async fn probe(
    limits: &Limits,
    path: &Path,
    demuxer: Option<&str>,
    what: &str,
) -> Result<Probe, MediaError> {
    let mut run = Run::new(limits.ffprobe_program()).args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]);
    if let Some(demuxer) = demuxer {
        run = run.args(["-f", demuxer]);
    }
    let unreadable = |detail: &str| {
        MediaError::Corrupt(format!(
            "The {what} could not be read; it may be truncated or damaged ({detail})"
        ))
    };
    match run.arg(path).run(limits.ffmpeg_timeout).await? {
        Outcome::Success(json) => parse(&json).ok_or_else(|| unreadable("no streams found")),
        Outcome::Failed(stderr) => Err(unreadable(&tidy(&stderr, path))),
    }
}

/// ffprobe's report parsed, or `None` when it is not JSON or lists no audio or video.
pub(crate) fn parse(json: &[u8]) -> Option<Probe> {
    let report: Value = serde_json::from_slice(json).ok()?;
    let streams = report.get("streams")?.as_array()?;
    let format = report.get("format");
    let video = streams.iter().find(|s| is_video(s)).and_then(video_stream);
    let audio = streams
        .iter()
        .find(|s| codec_type(s) == Some("audio"))
        .and_then(audio_stream);
    if video.is_none() && audio.is_none() {
        return None;
    }
    let stream_duration = streams
        .iter()
        .filter_map(|s| number(s, "duration"))
        .reduce(f64::max);
    Some(Probe {
        duration: format
            .and_then(|f| number(f, "duration"))
            .or(stream_duration),
        bitrate: format.and_then(|f| integer(f, "bit_rate")),
        video,
        audio,
    })
}

fn codec_type(stream: &Value) -> Option<&str> {
    stream.get("codec_type")?.as_str()
}

/// A video stream that is not an image attached to audio (cover art).
fn is_video(stream: &Value) -> bool {
    let attached = stream
        .pointer("/disposition/attached_pic")
        .and_then(Value::as_i64)
        == Some(1);
    codec_type(stream) == Some("video") && !attached
}

fn video_stream(stream: &Value) -> Option<VideoStream> {
    let rate = |key| text(stream, key).filter(|r| !r.starts_with("0/") && r.contains('/'));
    Some(VideoStream {
        index: u32::try_from(stream.get("index")?.as_u64()?).ok()?,
        width: u32::try_from(stream.get("width")?.as_u64()?).ok()?,
        height: u32::try_from(stream.get("height")?.as_u64()?).ok()?,
        frame_rate: rate("avg_frame_rate")
            .or_else(|| rate("r_frame_rate"))
            .map(str::to_owned),
    })
}

fn audio_stream(stream: &Value) -> Option<AudioStream> {
    let name = text(stream, "codec_name").unwrap_or("unknown");
    let codec = match text(stream, "profile") {
        Some(profile) => format!("{name} ({profile})"),
        None => name.to_owned(),
    };
    Some(AudioStream {
        index: u32::try_from(stream.get("index")?.as_u64()?).ok()?,
        codec,
        sample_rate: integer(stream, "sample_rate").and_then(|r| u32::try_from(r).ok()),
        channels: stream
            .get("channels")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok()),
        channel_layout: text(stream, "channel_layout").map(str::to_owned),
    })
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key)?.as_str()
}

/// ffprobe writes most numbers as strings ("5.430000"); accepts both.
fn number(value: &Value, key: &str) -> Option<f64> {
    let field = value.get(key)?;
    let parsed = field.as_f64().or_else(|| field.as_str()?.parse().ok())?;
    parsed.is_finite().then_some(parsed)
}

fn integer(value: &Value, key: &str) -> Option<u64> {
    let field = value.get(key)?;
    field.as_u64().or_else(|| field.as_str()?.parse().ok())
}

/// ffmpeg's message without the working directory's path, which means nothing to an uploader.
pub(crate) fn tidy(stderr: &str, path: &Path) -> String {
    let mut text = stderr.to_owned();
    if let Some(dir) = path.parent() {
        text = text.replace(&format!("{}/", dir.display()), "");
    }
    if text.is_empty() {
        "no details given".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_video_audio_and_format() {
        let json = br#"{"streams": [
            {"index": 0, "codec_type": "video", "width": 320, "height": 240,
             "avg_frame_rate": "10/1", "r_frame_rate": "10/1", "duration": "1.000000"},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "profile": "LC",
             "sample_rate": "44100", "channels": 1, "channel_layout": "mono"}],
            "format": {"duration": "1.023000", "bit_rate": "123456"}}"#;
        let probe = parse(json).expect("a probe");
        assert_eq!(probe.duration, Some(1.023));
        assert_eq!(probe.bitrate, Some(123_456));
        let video = probe.video.expect("video");
        assert_eq!((video.index, video.width, video.height), (0, 320, 240));
        assert_eq!(video.frame_rate.as_deref(), Some("10/1"));
        let audio = probe.audio.expect("audio");
        assert_eq!(audio.codec, "aac (LC)");
        assert_eq!((audio.sample_rate, audio.channels), (Some(44_100), Some(1)));
    }

    #[test]
    fn cover_art_is_not_video() {
        let json = br#"{"streams": [
            {"index": 0, "codec_type": "audio", "codec_name": "mp3"},
            {"index": 1, "codec_type": "video", "width": 500, "height": 500,
             "disposition": {"attached_pic": 1}}], "format": {}}"#;
        let probe = parse(json).expect("a probe");
        assert!(probe.video.is_none());
        assert_eq!(probe.audio.map(|a| a.index), Some(0));
    }

    #[test]
    fn nothing_playable_is_none() {
        assert_eq!(parse(br#"{"streams": [], "format": {}}"#), None);
        assert_eq!(parse(b"not json"), None);
    }
}
