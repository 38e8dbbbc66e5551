//! `/api/v1/streaming` over WebSocket: one connection, many streams. The client sends
//! `{"type":"subscribe"|"unsubscribe","stream":…,"tag"|"list":…}`; the server sends
//! `{"stream":[…],"event":…,"payload":"<JSON string>"}`, or `{"error":…,"status":…}` about a
//! message of the client's, which changes nothing else.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::State;
use crate::hub::{Client, Outgoing, StreamKey};
use crate::request::{self, Ask, Refusal, Viewer};

/// Largest message a client may send: subscriptions are small.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// The socket's read buffer; kept small, since 100,000 of them live in one process.
const READ_BUFFER: usize = 1024;

/// The query string as pairs.
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The stream named in the query (`?stream=hashtag&tag=rust`), if any.
pub fn ask_from_query(query: &[(String, String)]) -> Option<Ask> {
    let mut ask = query_params(query);
    ask.stream = query
        .iter()
        .find(|(key, _)| key == "stream")
        .map(|(_, v)| v.clone())?;
    Some(ask)
}

/// `tag`, `list` and `only_media` from the query, without a stream name.
pub fn query_params(query: &[(String, String)]) -> Ask {
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    Ask {
        stream: String::new(),
        tag: get("tag"),
        list: get("list"),
        only_media: matches!(get("only_media").as_deref(), Some("true" | "1")),
    }
}

/// Upgrades to a WebSocket after checking the token and any `?stream=`.
pub async fn connect(AxumState(state): AxumState<State>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let headers: HeaderMap = parts.headers.clone();
    let query = query_pairs(&parts.uri);
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return Refusal::new(
                StatusCode::BAD_REQUEST,
                "Expected a WebSocket upgrade; server-sent events are at /api/v1/streaming/<stream>",
            )
            .into_response();
        }
    };
    let token = request::token(&headers, &query);
    let viewer = match request::viewer(&state, token.as_deref()).await {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.into_response(),
    };
    let mut initial = Vec::new();
    if let Some(ask) = ask_from_query(&query) {
        match request::resolve(&state, &viewer, &ask).await {
            Ok(key) => initial.push(key),
            Err(refusal) => return refusal.into_response(),
        }
    }
    let (client, rx) = match request::admit(&state, &viewer).await {
        Ok(joined) => joined,
        Err(refusal) => return refusal.into_response(),
    };
    let mut upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    // A token sent as the subprotocol is echoed back, as browsers require.
    if headers.contains_key(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        && let Some(token) = token
    {
        upgrade = upgrade.protocols([token]);
    }
    let hub = state.hub.clone();
    let left = client.clone();
    upgrade
        .on_failed_upgrade(move |_| hub.leave(&left, &[]))
        .on_upgrade(move |socket| run(state, socket, viewer, client, rx, initial))
}

#[derive(Debug, Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    stream: Option<String>,
    tag: Option<String>,
    /// A string (Mastodon's clients) or a number.
    list: Option<serde_json::Value>,
}

/// Sends `message` unless the client is killed meanwhile; false when the socket is done.
async fn send(socket: &mut WebSocket, client: &Client, message: Message) -> bool {
    tokio::select! {
        biased;
        sent = socket.send(message) => sent.is_ok(),
        () = client.kill.wait() => false,
    }
}

async fn run(
    state: State,
    mut socket: WebSocket,
    viewer: Viewer,
    client: Arc<Client>,
    mut rx: mpsc::Receiver<Outgoing>,
    initial: Vec<StreamKey>,
) {
    let hub = state.hub.clone();
    let mut keys: Vec<StreamKey> = Vec::new();
    for key in initial {
        if hub.subscribe(&client, key.clone()) {
            keys.push(key);
        }
    }
    // Pings come through the queue from the process's heartbeat (see `Hub::ping`): a timer per
    // connection would be polled on every event the connection is sent.
    loop {
        tokio::select! {
            biased;
            () = client.kill.wait() => {
                let (code, reason) = if state.ctx.shutdown.is_cancelled() {
                    (close_code::AWAY, "Server shutting down")
                } else if client.was_slow() {
                    (close_code::AGAIN, "Too slow: events were dropped")
                } else {
                    (close_code::POLICY, "Access token revoked")
                };
                let close = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), socket.send(close)).await;
                break;
            }
            out = rx.recv() => match out {
                Some(Outgoing::Event(frame)) => {
                    if !send(&mut socket, &client, Message::Text(frame.json())).await {
                        if client.kill.is_fired() {
                            continue; // the kill branch closes it
                        }
                        break;
                    }
                    hub.sent(&frame);
                }
                Some(out @ (Outgoing::Error(_) | Outgoing::Ping)) => {
                    let message = match out {
                        Outgoing::Error(text) => Message::Text(text.into()),
                        _ => Message::Ping(Bytes::new()),
                    };
                    if !send(&mut socket, &client, message).await && !client.kill.is_fired() {
                        break;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    handle(&state, &viewer, &client, &mut keys, text.as_str()).await;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {} // pings are answered by the socket itself; pongs ignored
            },
        }
    }
    hub.leave(&client, &keys);
}

/// A subscribe or unsubscribe from the client. Errors go back as a frame; the connection and
/// its other subscriptions stay as they were.
async fn handle(
    state: &State,
    viewer: &Viewer,
    client: &Arc<Client>,
    keys: &mut Vec<StreamKey>,
    text: &str,
) {
    let hub = &state.hub;
    let refuse = |refusal: Refusal| client.error(refusal.frame(), hub.metrics());
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(error) => {
            return refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("Malformed message: {error}"),
            ));
        }
    };
    let subscribe = match message.kind.as_str() {
        "subscribe" => true,
        "unsubscribe" => false,
        other => {
            return refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Unknown message type: {other:?} (expected \"subscribe\" or \"unsubscribe\")"
                ),
            ));
        }
    };
    let Some(stream) = message.stream else {
        return refuse(Refusal::new(StatusCode::BAD_REQUEST, "No stream given"));
    };
    let ask = Ask {
        stream,
        tag: message.tag,
        list: message.list.map(|l| match l {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
        only_media: false,
    };
    let key = match request::resolve(state, viewer, &ask).await {
        Ok(key) => key,
        Err(refusal) => return refuse(refusal),
    };
    if subscribe {
        if keys.contains(&key) {
            return;
        }
        let max = state.ctx.config.streaming.max_subscriptions;
        if keys.len() >= max {
            return refuse(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many subscriptions: at most {max} per connection"),
            ));
        }
        if hub.subscribe(client, key.clone()) {
            keys.push(key);
        }
    } else if let Some(at) = keys.iter().position(|k| *k == key) {
        hub.unsubscribe(client, &key);
        keys.remove(at);
    }
}
