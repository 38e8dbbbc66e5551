//! Sends the `mail` queue's messages over SMTP (lettre).
//!
//! Delivery is at-least-once: a worker that dies after the SMTP server accepted a message but
//! before acknowledging it sends the message again — a duplicate e-mail, never a lost one. A
//! message already sent (recorded in `processed_messages` after the server accepted it) is not
//! sent again. Without SMTP_SERVER the message is written to the log instead, so a development
//! server can still follow its confirmation links.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use stampede_db::Leases;
use stampede_queue::{Consume, Envelope, JobError, dedupe};
use stampede_runtime::config::{SmtpConfig, StartTls};
use stampede_runtime::mail::{Mail, MailJob};

/// Sends rendered mail.
pub struct MailHandler {
    db: Leases,
    from: Option<Mailbox>,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for MailHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailHandler")
            .field("smtp", &self.transport.is_some())
            .finish()
    }
}

impl MailHandler {
    pub fn new(db: Leases, smtp: Option<&SmtpConfig>) -> anyhow::Result<Arc<Self>> {
        let Some(smtp) = smtp else {
            return Ok(Arc::new(MailHandler {
                db,
                from: None,
                transport: None,
            }));
        };
        let from: Mailbox = smtp
            .from_address
            .parse()
            .map_err(|e| anyhow::anyhow!("SMTP_FROM_ADDRESS: {e}"))?;
        let tls = match smtp.starttls {
            StartTls::Never => Tls::None,
            StartTls::Auto => Tls::Opportunistic(TlsParameters::new(smtp.server.clone())?),
            StartTls::Always => Tls::Required(TlsParameters::new(smtp.server.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.server)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(login), Some(password)) = (&smtp.login, &smtp.password) {
            builder = builder.credentials(Credentials::new(login.clone(), password.clone()));
        }
        Ok(Arc::new(MailHandler {
            db,
            from: Some(from),
            transport: Some(builder.build()),
        }))
    }

    async fn send(&self, mail: Mail, envelope: &Envelope) -> Result<(), JobError> {
        // Leased connections: the two statements each hand theirs back without a ping. None is
        // held while the SMTP server answers.
        let mut conn = self.db.take().await?;
        let already: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM processed_messages WHERE message_id = $1)",
        )
        .bind(envelope.id)
        .fetch_one(&mut *conn)
        .await?;
        conn.finish();
        if already {
            return Ok(());
        }
        match (&self.transport, &self.from) {
            (Some(transport), Some(from)) => {
                let to: Mailbox = mail.to.parse().map_err(|e| {
                    JobError::Permanent(anyhow::anyhow!("bad recipient {:?}: {e}", mail.to))
                })?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(&mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.text.clone())
                    .map_err(|e| JobError::Permanent(e.into()))?;
                transport.send(message).await.map_err(|e| {
                    if e.is_permanent() {
                        JobError::Permanent(e.into())
                    } else {
                        JobError::Retry(e.into())
                    }
                })?;
                tracing::info!(subject = %mail.subject, "mail sent");
            }
            _ => {
                tracing::info!(to = %mail.to, subject = %mail.subject, text = %mail.text,
                    "SMTP_SERVER is not set; mail written to the log instead");
            }
        }
        let mut conn = self.db.take().await?;
        dedupe::record_done(&mut conn, envelope.id).await?;
        conn.finish();
        Ok(())
    }
}

impl Consume<MailJob> for MailHandler {
    fn consume<'a>(
        &'a self,
        message: MailJob,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        match message {
            MailJob::Send(mail) => self.send(mail, envelope).boxed(),
        }
    }
}
