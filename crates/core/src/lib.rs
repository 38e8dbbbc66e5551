//! Domain types and rules shared by every Stampede service.
//!
//! Nothing in this crate performs I/O: it is the vocabulary (ids, usernames, scopes) the
//! services speak, and the rules that need no database to check.

pub mod id;
pub mod scope;
pub mod username;

pub use id::Id;
pub use scope::Scopes;
