//! Mail the web service sends: written to the outbox in the transaction that causes it, sent by
//! the `mail` workers (see stampede-delivery).

use sqlx::PgConnection;
use stampede_queue::{Envelope, Message, WorkQueue, outbox};
pub use stampede_runtime::mail::{Mail, MailJob};

/// Queues `mail` within the caller's transaction.
pub async fn enqueue(conn: &mut PgConnection, mail: &Mail) -> Result<(), sqlx::Error> {
    outbox::send(conn, &MailJob::Send(mail.clone())).await
}

/// The queue and message that carry `mail`, for callers that write the outbox row themselves.
pub fn envelope(mail: &Mail) -> (WorkQueue, Envelope) {
    (MailJob::QUEUE, Envelope::of(&MailJob::Send(mail.clone())))
}
