//! The contract between the services that write mail (web) and the workers that send it
//! (delivery's `mail` queue): a fully rendered message, so the worker only speaks SMTP.

use serde::{Deserialize, Serialize};

/// The message kind of an e-mail to send.
pub const KIND: &str = "mail";

/// A rendered e-mail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}
