//! Running ffmpeg and ffprobe: one child per call, its output captured, killed at the deadline.
//!
//! Each child gets no standard input (`-nostdin` as well, so ffmpeg never waits on a terminal),
//! is killed if its future is dropped, and is killed and reaped when the deadline passes, so a
//! file crafted to make ffmpeg spin costs at most `ffmpeg_timeout`. Standard error is kept only
//! as its last few KiB: a damaged file can make ffmpeg print an error per packet.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::MediaError;

/// What a uploader is told when this server has no ffmpeg.
pub(crate) const FFMPEG_MISSING: &str =
    "Video and audio uploads need ffmpeg, which this server does not have";

/// The most standard output kept (ffprobe's JSON for a sane file is a few KiB).
const STDOUT_CAP: usize = 4 * 1024 * 1024;
/// The most standard error kept, from its end.
const STDERR_TAIL: usize = 8 * 1024;
/// Lines of standard error quoted in an error message.
const QUOTED_LINES: usize = 3;

/// How a run that started went.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Exit status 0, with standard output.
    Success(Vec<u8>),
    /// A non-zero exit, with the last lines of standard error.
    Failed(String),
}

/// A program with the arguments for one run.
pub(crate) struct Run {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Run {
    pub(crate) fn new(program: impl Into<PathBuf>) -> Self {
        Run {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs to completion or until `timeout`. `Err` means the program could not be run or ran
    /// out of time ([`MediaError::Unavailable`]); a program that ran and failed is
    /// [`Outcome::Failed`], for the caller to explain.
    pub(crate) async fn run(self, timeout: Duration) -> Result<Outcome, MediaError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(&self.program, &e))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = tokio::time::timeout(timeout, async {
            tokio::join!(
                read_head(stdout, STDOUT_CAP),
                read_tail(stderr, STDERR_TAIL),
                child.wait()
            )
        })
        .await;
        match finished {
            Ok((out, _, Ok(status))) if status.success() => Ok(Outcome::Success(out)),
            Ok((_, err, Ok(_))) => Ok(Outcome::Failed(last_lines(&err))),
            Ok((_, _, Err(e))) => Err(MediaError::Unavailable(format!(
                "Waiting for {} failed: {e}",
                program_name(&self.program)
            ))),
            Err(_elapsed) => {
                // Kill and reap now, so the caller's working directory is not in use when it is
                // removed.
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(MediaError::Unavailable(format!(
                    "Processing this file took longer than {} and was stopped",
                    human_duration(timeout)
                )))
            }
        }
    }
}

fn spawn_error(program: &Path, error: &std::io::Error) -> MediaError {
    match error.kind() {
        ErrorKind::NotFound => MediaError::Unavailable(FFMPEG_MISSING.to_owned()),
        _ => MediaError::Unavailable(format!(
            "This server could not start {}: {error}",
            program_name(program)
        )),
    }
}

fn program_name(program: &Path) -> String {
    program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Reads all of `reader`, keeping the first `cap` bytes (reading on, so the child never blocks
/// on a full pipe).
async fn read_head(reader: Option<impl AsyncRead + Unpin>, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// Reads all of `reader`, keeping the last `cap` bytes.
async fn read_tail(reader: Option<impl AsyncRead + Unpin>, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * cap {
            kept.drain(..kept.len() - cap);
        }
    }
    if kept.len() > cap {
        kept.drain(..kept.len() - cap);
    }
    kept
}

/// The last few non-empty lines of standard error, joined for a one-line message.
fn last_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(QUOTED_LINES);
    lines[start..].join("; ")
}

/// "5 minutes", "90 seconds", "1.5 seconds".
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 120.0 && secs % 60.0 == 0.0 {
        format!("{} minutes", secs / 60.0)
    } else if secs >= 1.0 && secs.fract() == 0.0 {
        format!("{secs} seconds")
    } else {
        format!("{secs:.3} seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_last_lines() {
        assert_eq!(last_lines(b"a\n\nb\nc\nd\n"), "b; c; d");
        assert_eq!(last_lines(b""), "");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human_duration(Duration::from_millis(1)), "0.001 seconds");
    }

    #[tokio::test]
    async fn a_missing_program_is_unavailable() {
        let result = Run::new("/nonexistent/ffmpeg")
            .arg("-version")
            .run(Duration::from_secs(5))
            .await;
        assert!(matches!(result, Err(MediaError::Unavailable(m)) if m == FFMPEG_MISSING));
    }

    #[tokio::test]
    async fn a_slow_program_is_killed_at_the_deadline() {
        let started = std::time::Instant::now();
        let result = Run::new("sleep")
            .arg("30")
            .run(Duration::from_millis(200))
            .await;
        assert!(
            matches!(result, Err(MediaError::Unavailable(ref m)) if m.contains("took longer")),
            "{:?}",
            result.err()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
