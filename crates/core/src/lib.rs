//! Domain types and rules shared by every Stampede service.
//!
//! Nothing in this crate performs I/O: it is the vocabulary (ids, limits) the services speak.

pub mod id;

pub use id::Id;
