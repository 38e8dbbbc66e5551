//! Streaming clients as Mastodon's apps open them: a WebSocket to `/api/v1/streaming` with
//! `stream=user` (the web app's way), or Server-Sent Events from `/api/v1/streaming/user`
//! (older clients'). Each client is one tokio task that lives until it is cancelled or its
//! deadline passes, and reports every `update` it receives with the time it arrived.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How clients connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Websocket,
    Sse,
}

/// One status arriving on a stream.
#[derive(Debug)]
pub struct Update {
    pub status_id: String,
    pub received: Instant,
}

/// The streaming server's base as `http(s)://host[:port]`, from `--streaming-url` or from what
/// `/api/v1/instance` advertises (`urls.streaming_api`), as a Mastodon client finds it.
pub async fn discover(
    client: &reqwest::Client,
    base: &str,
    given: Option<&str>,
) -> anyhow::Result<String> {
    let raw = match given {
        Some(url) => url.to_string(),
        None => {
            let (status, body) =
                super::api::get(client, &format!("{base}/api/v1/instance"), None).await?;
            ensure!(
                status.is_success(),
                "GET /api/v1/instance answered {status}"
            );
            body["urls"]["streaming_api"]
                .as_str()
                .map(str::to_string)
                .context(
                    "/api/v1/instance advertises no urls.streaming_api; pass --streaming-url",
                )?
        }
    };
    let http = raw
        .trim_end_matches('/')
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    ensure!(
        http.starts_with("http://") || http.starts_with("https://"),
        "streaming URL {raw:?} is not ws://, wss://, http:// or https://"
    );
    Ok(http)
}

/// The streaming API is there: Mastodon's health check answers, and the endpoint `transport`
/// uses is routed (without a token it should answer 401, 400 or 426 — anything but 404).
pub async fn require(
    client: &reqwest::Client,
    streaming: &str,
    transport: Transport,
) -> anyhow::Result<()> {
    let why = "the streaming API is WebSocket /api/v1/streaming and SSE /api/v1/streaming/user; is --streaming-url the streaming service?";
    let health = format!("{streaming}/api/v1/streaming/health");
    let response = client.get(&health).send().await.with_context(|| {
        format!("GET {health}: the streaming server is not reachable (pass --streaming-url to point elsewhere)")
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        bail!(
            "GET {health} answered 404: this server does not serve the streaming API yet ({why})"
        );
    }
    ensure!(status.is_success(), "GET {health} answered {status}");
    let path = match transport {
        Transport::Websocket => "/api/v1/streaming",
        Transport::Sse => "/api/v1/streaming/user",
    };
    let status = client
        .get(format!("{streaming}{path}"))
        .send()
        .await
        .with_context(|| format!("GET {streaming}{path}"))?
        .status();
    if status == reqwest::StatusCode::NOT_FOUND {
        bail!(
            "GET {path} on {streaming} answered 404 (its health check answers, but the stream \
             is not served yet: {why})"
        );
    }
    Ok(())
}

fn status_id(payload: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    v["id"].as_str().map(str::to_string)
}

/// Connects once; returns when connected, with the reading task spawned. The task ends at
/// `stop` or `deadline`; `updates` receives every `update` event.
pub async fn open(
    transport: Transport,
    streaming: &str,
    token: &str,
    updates: mpsc::UnboundedSender<Update>,
    stop: CancellationToken,
    deadline: Instant,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    match transport {
        Transport::Websocket => {
            let ws = streaming
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1);
            let url = format!("{ws}/api/v1/streaming?stream=user&access_token={token}");
            let (mut socket, _) = tokio::time::timeout(
                Duration::from_secs(10),
                tokio_tungstenite::connect_async(&url),
            )
            .await
            .context("WebSocket connect timed out")??;
            Ok(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep_until(deadline.into()) => break,
                        message = socket.next() => {
                            let Some(Ok(message)) = message else { break };
                            let received = Instant::now();
                            let Ok(text) = message.to_text() else { continue };
                            let Ok(event) = serde_json::from_str::<serde_json::Value>(text) else { continue };
                            if event["event"] == "update"
                                && let Some(id) = event["payload"].as_str().and_then(status_id)
                            {
                                let _ = updates.send(Update { status_id: id, received });
                            }
                        }
                    }
                }
                let _ = socket.close(None).await;
            }))
        }
        Transport::Sse => {
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?;
            let mut response = client
                .get(format!("{streaming}/api/v1/streaming/user"))
                .bearer_auth(token)
                .header("accept", "text/event-stream")
                .send()
                .await?;
            ensure!(
                response.status().is_success(),
                "SSE /api/v1/streaming/user answered {}",
                response.status()
            );
            Ok(tokio::spawn(async move {
                let mut buffer = String::new();
                loop {
                    let chunk = tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep_until(deadline.into()) => break,
                        chunk = response.chunk() => chunk,
                    };
                    let Ok(Some(chunk)) = chunk else { break };
                    let received = Instant::now();
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    // Events end with a blank line.
                    while let Some(end) = buffer.find("\n\n") {
                        let event: String = buffer.drain(..end + 2).collect();
                        let mut name = "";
                        let mut data = String::new();
                        for line in event.lines() {
                            if let Some(v) = line.strip_prefix("event:") {
                                name = v.trim();
                            } else if let Some(v) = line.strip_prefix("data:") {
                                data.push_str(v.trim_start());
                            }
                        }
                        if name == "update"
                            && let Some(id) = status_id(&data)
                        {
                            let _ = updates.send(Update {
                                status_id: id,
                                received,
                            });
                        }
                    }
                }
            }))
        }
    }
}
