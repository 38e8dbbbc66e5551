//! Stampede's integration tests: one binary, one module per capability, each test on its own
//! database, queue prefix and Redis namespace against the real PostgreSQL, RabbitMQ, Redis and an
//! S3-protocol server.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod accounts;
mod cache;
mod client_api;
mod cluster;
mod compat;
mod defederation;
mod deletion;
mod delivery;
mod federation;
mod leases;
mod lifecycle;
mod mastodon;
mod media;
mod moderation;
mod moving;
mod notifications;
mod outbox;
mod pages;
mod platform;
mod portability;
mod process;
mod push;
mod queue;
mod replica;
mod saturation;
mod security;
mod sentinel;
mod social;
mod storage;
mod streaming;
mod tls;
mod trace_context;
mod visibility;
