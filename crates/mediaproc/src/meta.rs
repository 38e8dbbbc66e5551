//! Mastodon's attachment `meta`, without `focus` (which the uploader sets, not processing).
//!
//! Images: `{"original": {width, height, size, aspect}, "small": {…}}`. Video and GIF
//! animations add `length`, `duration`, `fps`, `size`, `width`, `height` and `aspect` at the
//! top, `frame_rate`, `duration` and `bitrate` in `original`, and `audio_encode`,
//! `audio_bitrate` (Mastodon's name for the sample rate, "44100 Hz") and `audio_channels` when
//! there is sound. Audio has `length`, `duration`, the audio keys and `original: {duration,
//! bitrate}`. Every value describes the processed file, not the upload.

use serde_json::{Map, Value, json};

use crate::probe::{AudioStream, Probe};

/// `{width, height, size: "WxH", aspect: W/H}` for an image variant.
pub(crate) fn dimensions(width: u32, height: u32) -> Value {
    json!({
        "width": width,
        "height": height,
        "size": format!("{width}x{height}"),
        "aspect": f64::from(width) / f64::from(height.max(1)),
    })
}

/// Meta for a still image from its two variants' sizes.
pub(crate) fn image(original: (u32, u32), small: (u32, u32)) -> Value {
    json!({ "original": dimensions(original.0, original.1), "small": dimensions(small.0, small.1) })
}

/// Meta for a video or GIF animation from ffprobe's report on the processed MP4, and the
/// poster's size.
pub(crate) fn video(output: &Probe, small: Option<(u32, u32)>) -> Value {
    let mut top = Map::new();
    let mut original = Map::new();
    if let Some(video) = &output.video {
        let dims = dimensions(video.width, video.height);
        for key in ["width", "height", "size", "aspect"] {
            top.insert(key.into(), dims[key].clone());
        }
        original.insert("width".into(), video.width.into());
        original.insert("height".into(), video.height.into());
        if let Some(rate) = &video.frame_rate {
            original.insert("frame_rate".into(), rate.clone().into());
            if let Some(fps) = fps(rate) {
                top.insert("fps".into(), fps);
            }
        }
    }
    insert_duration(&mut top, &mut original, output);
    if let Some(audio) = &output.audio {
        insert_audio(&mut top, audio);
    }
    top.insert("original".into(), original.into());
    if let Some((width, height)) = small {
        top.insert("small".into(), dimensions(width, height));
    }
    top.into()
}

/// Meta for audio from ffprobe's report on the processed MP3.
pub(crate) fn audio(output: &Probe) -> Value {
    let mut top = Map::new();
    let mut original = Map::new();
    insert_duration(&mut top, &mut original, output);
    if let Some(audio) = &output.audio {
        insert_audio(&mut top, audio);
    }
    top.insert("original".into(), original.into());
    top.into()
}

fn insert_duration(top: &mut Map<String, Value>, original: &mut Map<String, Value>, probe: &Probe) {
    if let Some(duration) = probe.duration {
        top.insert("length".into(), length(duration).into());
        top.insert("duration".into(), round(duration, 2).into());
        original.insert("duration".into(), round(duration, 3).into());
    }
    if let Some(bitrate) = probe.bitrate {
        original.insert("bitrate".into(), bitrate.into());
    }
}

fn insert_audio(top: &mut Map<String, Value>, audio: &AudioStream) {
    top.insert("audio_encode".into(), audio.codec.clone().into());
    if let Some(rate) = audio.sample_rate {
        top.insert("audio_bitrate".into(), format!("{rate} Hz").into());
    }
    let channels = match (&audio.channel_layout, audio.channels) {
        (Some(layout), _) => Some(layout.clone()),
        (None, Some(1)) => Some("mono".to_owned()),
        (None, Some(2)) => Some("stereo".to_owned()),
        (None, Some(n)) => Some(format!("{n} channels")),
        (None, None) => None,
    };
    if let Some(channels) = channels {
        top.insert("audio_channels".into(), channels.into());
    }
}

/// "H:MM:SS.cc", as Mastodon writes `length`.
pub(crate) fn length(seconds: f64) -> String {
    // Non-negative and far below u64::MAX hundredths for any accepted duration.
    let hundredths = (seconds.max(0.0) * 100.0).round() as u64;
    let (h, m, s, c) = (
        hundredths / 360_000,
        hundredths / 6000 % 60,
        hundredths / 100 % 60,
        hundredths % 100,
    );
    format!("{h}:{m:02}:{s:02}.{c:02}")
}

/// Frames per second from "30/1" or "30000/1001": a whole number when it is one, else two
/// decimals.
fn fps(rate: &str) -> Option<Value> {
    let (num, den) = rate.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    if den == 0.0 {
        return None;
    }
    let fps = num / den;
    if fps.fract() == 0.0 && (0.0..1e9).contains(&fps) {
        // Whole and in range: the cast is exact.
        return Some((fps as u64).into());
    }
    Some(round(fps, 2).into())
}

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::VideoStream;

    #[test]
    fn length_reads_like_mastodon() {
        assert_eq!(length(5.43), "0:00:05.43");
        assert_eq!(length(402.860_408), "0:06:42.86");
        assert_eq!(length(3600.0), "1:00:00.00");
    }

    #[test]
    fn fps_is_whole_when_it_can_be() {
        assert_eq!(fps("30/1"), Some(json!(30)));
        assert_eq!(fps("30000/1001"), Some(json!(29.97)));
        assert_eq!(fps("1/0"), None);
    }

    #[test]
    fn video_meta_has_mastodons_keys() {
        let probe = Probe {
            duration: Some(5.434),
            bitrate: Some(1_000_000),
            video: Some(VideoStream {
                index: 0,
                width: 640,
                height: 480,
                frame_rate: Some("30/1".into()),
            }),
            audio: Some(AudioStream {
                index: 1,
                codec: "aac (LC)".into(),
                sample_rate: Some(44_100),
                channels: Some(2),
                channel_layout: None,
            }),
        };
        let meta = video(&probe, Some((320, 240)));
        assert_eq!(meta["original"]["frame_rate"], "30/1");
        assert_eq!(meta["original"]["duration"], 5.434);
        assert_eq!(meta["original"]["bitrate"], 1_000_000);
        assert_eq!(meta["length"], "0:00:05.43");
        assert_eq!(meta["fps"], 30);
        assert_eq!(meta["size"], "640x480");
        assert_eq!(meta["small"]["size"], "320x240");
        assert_eq!(meta["audio_bitrate"], "44100 Hz");
        assert_eq!(meta["audio_channels"], "stereo");
    }
}
