//! `media`: how fast the media service turns 12-megapixel photos into variants, beside the
//! same crates' raw decode → resize → encode on the same cores in the same run, its memory per
//! job, and whether home-timeline reads stay fast during an upload storm.
//!
//! Everything goes through the API: photos are uploaded with `POST /api/v2/media` (over 2 MiB,
//! so they go to the media service's queue) and polled with `GET /api/v1/media/:id` until they
//! are ready, as apps do. The reader calls `GET /api/v1/timelines/home`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Stampede web service.
    #[arg(long, default_value = "http://127.0.0.1:3990")]
    pub base_url: String,
    /// Token of the account that uploads and posts.
    #[arg(long)]
    pub author_token: String,
    /// Token of the account that reads its home timeline (it follows the author).
    #[arg(long)]
    pub reader_token: String,
    /// Process id of `stampede media`, whose memory is read from /proc.
    #[arg(long)]
    pub media_pid: u32,
    /// Jobs the media service runs at once (for the memory per job).
    #[arg(long, default_value_t = 2)]
    pub media_concurrency: u32,
    /// Photos processed through the service for the rate.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub photos: u32,
    /// Uploads per second during the storm.
    #[arg(long, default_value_t = 1.0)]
    pub storm_rate: f64,
    /// Seconds of the storm, and of the quiet reading before it.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Readers calling the home timeline in a loop.
    #[arg(long, default_value_t = 4)]
    pub readers: u32,
}

/// A photo-like 4000 × 3000 JPEG: smooth gradients with fine noise, at quality 90.
fn photo() -> anyhow::Result<Vec<u8>> {
    let (width, height) = (4000u32, 3000u32);
    let mut seed: u32 = 0x2545_F491;
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed % 24) as i32 - 12;
        let channel = |v: u32| (v as i32 + noise).clamp(0, 255) as u8;
        image::Rgb([
            channel(x * 255 / width),
            channel(y * 255 / height),
            channel(((x / 7 + y / 5) % 256) / 2 + 64),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image)?;
    Ok(out.into_inner())
}

/// Runs `work` on `threads` threads for the same photo `count` times in all; images per second.
async fn rate_of(
    threads: usize,
    count: usize,
    work: impl Fn() -> anyhow::Result<()> + Send + Sync + 'static,
) -> anyhow::Result<f64> {
    let work = Arc::new(work);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (work, next) = (work.clone(), next.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                work()?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The resident and peak memory of a process, in MiB.
fn memory(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the memory of process {pid}"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

struct Api {
    client: reqwest::Client,
    base: String,
    author: String,
    reader: String,
}

impl Api {
    /// Uploads `bytes`; the attachment's id.
    async fn upload(&self, bytes: Bytes) -> anyhow::Result<String> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::stream(bytes).file_name("photo.jpg"),
        );
        let response = self
            .client
            .post(format!("{}/api/v2/media", self.base))
            .bearer_auth(&self.author)
            .multipart(form)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(
            status == 202 || status == 200,
            "upload answered {status}: {body}"
        );
        Ok(body["id"].as_str().unwrap_or_default().to_string())
    }

    /// Polls until the attachment is ready (200) or the deadline passes.
    async fn ready(&self, id: &str, deadline: Instant) -> anyhow::Result<Instant> {
        loop {
            let response = self
                .client
                .get(format!("{}/api/v1/media/{id}", self.base))
                .bearer_auth(&self.author)
                .send()
                .await?;
            match response.status().as_u16() {
                200 => return Ok(Instant::now()),
                206 => {}
                other => bail!("media {id} answered {other}: {}", response.text().await?),
            }
            ensure!(Instant::now() < deadline, "media {id} never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One home-timeline read; its latency in milliseconds.
    async fn read_home(&self) -> anyhow::Result<f64> {
        let started = Instant::now();
        let response = self
            .client
            .get(format!("{}/api/v1/timelines/home?limit=20", self.base))
            .bearer_auth(&self.reader)
            .send()
            .await?;
        ensure!(
            response.status() == 200,
            "home answered {}",
            response.status()
        );
        response.bytes().await?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    }
}

/// Home-timeline latencies (ms) from `readers` loops until `stop`.
async fn read_until(api: Arc<Api>, readers: u32, stop: Arc<AtomicBool>) -> anyhow::Result<Value> {
    let mut handles = Vec::new();
    for _ in 0..readers {
        let (api, stop) = (api.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                latencies.push(api.read_home().await?);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await??);
    }
    all.sort_by(f64::total_cmp);
    Ok(json!({
        "requests": all.len(),
        "p50_ms": (crate::percentile(&all, 0.5) * 10.0).round() / 10.0,
        "p99_ms": (crate::percentile(&all, 0.99) * 10.0).round() / 10.0,
        "max_ms": all.last().copied().unwrap_or(0.0).round(),
    }))
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    crate::loopback_only(&args.base_url, "--base-url")?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let photo = Bytes::from(photo()?);
    let api = Arc::new(Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?,
        base: args.base_url.trim_end_matches('/').to_string(),
        author: args.author_token.clone(),
        reader: args.reader_token.clone(),
    });

    // The ceiling: the same crates, in this process, on every core, with nothing else running.
    let raw = {
        let photo = photo.clone();
        rate_of(threads, 2 * threads, move || {
            stampede_mediaproc::raw_reference(&photo, 8_294_400, 230_400)?;
            Ok(())
        })
        .await?
    };
    let limits = stampede_mediaproc::Limits::default();
    let pipeline = {
        let photo = photo.clone();
        let runtime = tokio::runtime::Handle::current();
        rate_of(threads, 2 * threads, move || {
            runtime.block_on(stampede_mediaproc::process(photo.clone(), &limits))?;
            Ok(())
        })
        .await?
    };

    // The reader's home feed is built on its first read (206 until then).
    let warm = Instant::now() + Duration::from_secs(30);
    while api.read_home().await.is_err() {
        ensure!(
            Instant::now() < warm,
            "the home timeline never answered 200"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Through the service: upload them all, then wait for every one.
    let (rss_before, _) = memory(args.media_pid)?;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..args.photos {
        ids.push(api.upload(photo.clone()).await?);
    }
    let uploaded = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = started;
    for id in &ids {
        last = last.max(api.ready(id, deadline).await?);
    }
    let service = f64::from(args.photos) / last.duration_since(started).as_secs_f64();
    let (_, peak) = memory(args.media_pid)?;

    // Reads alone, then reads during the storm.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = tokio::spawn(read_until(api.clone(), args.readers, stop.clone()));
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let quiet = quiet.await??;

    let stop = Arc::new(AtomicBool::new(false));
    let storm_reads = tokio::spawn(read_until(api.clone(), args.readers, stop.clone()));
    let interval = Duration::from_secs_f64(1.0 / args.storm_rate.max(0.01));
    let storm_start = Instant::now();
    let mut uploads = Vec::new();
    let mut ticker = tokio::time::interval(interval);
    while storm_start.elapsed() < Duration::from_secs(args.seconds) {
        ticker.tick().await;
        let (api, photo) = (api.clone(), photo.clone());
        // Each upload is polled until ready, as an app does, while the storm goes on.
        uploads.push(tokio::spawn(async move {
            let sent = Instant::now();
            let id = api.upload(photo).await?;
            let stored = sent.elapsed().as_secs_f64() * 1000.0;
            let ready = api.ready(&id, deadline).await?;
            Ok::<_, anyhow::Error>((stored, ready.duration_since(sent).as_secs_f64()))
        }));
    }
    // Reads are measured while the uploads arrive; then the backlog drains.
    stop.store(true, Ordering::Relaxed);
    let storm_reads = storm_reads.await??;
    let sent = uploads.len();
    let mut stored_ms = Vec::new();
    let mut ready_s = Vec::new();
    for upload in uploads {
        let (stored, ready) = upload.await??;
        stored_ms.push(stored);
        ready_s.push(ready);
    }
    stored_ms.sort_by(f64::total_cmp);
    ready_s.sort_by(f64::total_cmp);

    Ok(json!({
        "photo": { "pixels": "4000x3000", "bytes": photo.len() },
        "raw_reference_per_s": (raw * 100.0).round() / 100.0,
        "pipeline_in_process_per_s": (pipeline * 100.0).round() / 100.0,
        "service_per_s": (service * 100.0).round() / 100.0,
        "service_vs_raw": (service / raw * 1000.0).round() / 1000.0,
        "service_vs_pipeline": (service / pipeline * 1000.0).round() / 1000.0,
        "uploads_stored_in_s": (uploaded * 100.0).round() / 100.0,
        "media_rss_mib": { "before": rss_before.round(), "peak": peak.round(),
            "per_job": ((peak - rss_before) / f64::from(args.media_concurrency.max(1))).round() },
        "home_quiet": quiet,
        "storm": {
            "uploads": sent,
            "rate_per_s": args.storm_rate,
            "upload_answered_ms_p99": crate::percentile(&stored_ms, 0.99).round(),
            "ready_after_s_p50": (crate::percentile(&ready_s, 0.5) * 10.0).round() / 10.0,
            "ready_after_s_max": (ready_s.last().copied().unwrap_or(0.0) * 10.0).round() / 10.0,
            "home": storm_reads,
        },
        "threads": threads,
    }))
}
