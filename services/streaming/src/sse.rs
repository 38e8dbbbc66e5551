//! `/api/v1/streaming/{user, user/notification, public, public/local, public/remote, hashtag,
//! hashtag/local, list, direct}` as server-sent events: one stream per connection, with
//! `:thump` heartbeat comments.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::State;
use crate::hub::{Client, Hub, Outgoing, StreamKey};
use crate::request::{self, Ask};
use crate::ws::{query_pairs, query_params};

/// One SSE connection; leaving the hub when the response is dropped (the client went away).
struct Session {
    hub: Arc<Hub>,
    client: Arc<Client>,
    key: StreamKey,
    rx: mpsc::Receiver<Outgoing>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.hub
            .leave(&self.client, std::slice::from_ref(&self.key));
    }
}

pub async fn connect(
    AxumState(state): AxumState<State>,
    Path(path): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_pairs(&uri);
    let ask = Ask {
        stream: path.trim_matches('/').replace('/', ":"),
        ..query_params(&query)
    };
    let token = request::token(&headers, &query);
    let viewer = match request::viewer(&state, token.as_deref()).await {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.into_response(),
    };
    let key = match request::resolve(&state, &viewer, &ask).await {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let (client, rx) = match request::admit(&state, &viewer).await {
        Ok(joined) => joined,
        Err(refusal) => return refusal.into_response(),
    };
    state.hub.subscribe(&client, key.clone());
    let session = Session {
        hub: state.hub.clone(),
        client,
        key,
        rx,
    };
    let events = futures_util::stream::unfold(session, |mut s| async move {
        loop {
            let out = tokio::select! {
                biased;
                () = s.client.kill.wait() => return None,
                out = s.rx.recv() => out?,
            };
            if let Outgoing::Event(frame) = out {
                s.hub.sent(&frame);
                let (event, data) = frame.sse();
                let event = Event::default().event(event).data(data);
                return Some((Ok::<_, Infallible>(event), s));
            }
        }
    });
    Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(state.ctx.config.streaming.ping_interval)
                .text("thump"),
        )
        .into_response()
}
