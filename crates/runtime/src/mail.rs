//! The contract between the services that write mail (web) and the workers that send it
//! (delivery's `mail` queue): a fully rendered message, so the worker only speaks SMTP.

use serde::{Deserialize, Serialize};
use stampede_queue::{Message, WorkQueue};

/// What the `mail` queue carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "payload")]
pub enum MailJob {
    /// Send this e-mail.
    #[serde(rename = "mail")]
    Send(Mail),
}

impl Message for MailJob {
    const QUEUE: WorkQueue = WorkQueue::Mail;
    const KINDS: &'static [&'static str] = &["mail"];
}

/// A rendered e-mail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_listed_and_round_trips() {
        stampede_queue::message::assert_kinds(&[MailJob::Send(Mail {
            to: "a@example.com".into(),
            subject: "Hello".into(),
            text: "Hi".into(),
        })]);
    }
}
