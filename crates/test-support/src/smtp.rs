//! A real SMTP server (mailin-embedded) on 127.0.0.1 that keeps what it receives, so tests can
//! read the mail Stampede sends and follow its links.

use std::net::TcpListener;
use std::time::Duration;

use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server};
use tokio::sync::mpsc;

/// One received message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: Vec<String>,
    /// The raw message (headers and body) as sent.
    pub raw: String,
}

impl ReceivedMail {
    /// The body with quoted-printable soft breaks and escapes undone.
    pub fn body(&self) -> String {
        let body = self
            .raw
            .split_once("\r\n\r\n")
            .map_or(self.raw.as_str(), |(_, b)| b);
        if !self.raw.to_ascii_lowercase().contains("quoted-printable") {
            return body.replace("\r\n", "\n");
        }
        let joined = body.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).replace("\r\n", "\n")
    }

    /// The first URL in the body that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let body = self.body();
        let start = body.find(prefix)?;
        let rest = &body[start..];
        let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    }
}

#[derive(Clone)]
struct Keep {
    tx: mpsc::UnboundedSender<ReceivedMail>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Keep {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let _ = self.tx.send(ReceivedMail {
            to: std::mem::take(&mut self.to),
            raw: String::from_utf8_lossy(&self.data).into_owned(),
        });
        response::OK
    }
}

/// A running SMTP server.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    rx: mpsc::UnboundedReceiver<ReceivedMail>,
}

impl SmtpServer {
    /// Starts a server on a free loopback port (in its own thread, for the life of the test).
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut server = Server::new(Keep {
            tx,
            to: Vec::new(),
            data: Vec::new(),
        });
        server
            .with_name("smtp.stampede.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Ok(SmtpServer { port, rx })
    }

    /// The next message, waiting up to `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<ReceivedMail> {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The variables that point Stampede at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SMTP_SERVER".into(), "127.0.0.1".into()),
            ("SMTP_PORT".into(), self.port.to_string()),
            ("SMTP_ENABLE_STARTTLS".into(), "never".into()),
            (
                "SMTP_FROM_ADDRESS".into(),
                "notifications@stampede.test".into(),
            ),
        ]
    }
}
