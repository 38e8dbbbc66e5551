//! Turning SIGTERM and SIGINT into a cancelled token, with a hard deadline behind it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT. A second signal, or the process still running
/// `deadline` plus five seconds later, exits at once with status 1 rather than hang a rollout.
pub fn on_signals(token: CancellationToken, deadline: Duration) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            deadline_s = deadline.as_secs(),
            "shutting down: no new work, finishing what runs"
        );
        token.cancel();
        tokio::select! {
            _ = tokio::time::sleep(deadline + Duration::from_secs(5)) => {
                tracing::error!("shutdown deadline passed; exiting");
            }
            _ = wait_for_signal() => {
                tracing::warn!("second signal; exiting without waiting");
            }
        }
        std::process::exit(1);
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
