//! The work queues and their names.
//!
//! Each work queue `<prefix>.<name>` has retry tiers `<prefix>.<name>.retry.<n>` — queues with no
//! consumer whose messages expire after a delay and are dead-lettered back to the work queue — and
//! a parking queue `<prefix>.<name>.parked` for messages that keep failing. Inbound federation
//! (`ingress`, and the fan-out of what it stores, `remote_fanout`) never shares a queue with local
//! fan-out (`distribute`), so a flood from outside cannot delay home timelines; nor does bulk feed
//! work (`backfill`: follow merges).

use std::fmt;
use std::time::Duration;

/// A work queue, by what its messages ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkQueue {
    /// Fan-out of a local change: home feeds, streaming events, remote audiences.
    Distribute,
    /// Bulk feed work that can wait a little: merging a followed account's statuses into a home
    /// feed, taking an unfollowed one out. Apart from `distribute`, so that a follow storm in a
    /// surge never delays a new status on its way to followers' homes.
    Backfill,
    /// Signed POSTs to remote inboxes.
    Deliver,
    /// Activities received from remote servers.
    Ingress,
    /// Fan-out of statuses that arrived from other servers (into local followers' feeds and
    /// streams): apart from `distribute`, so a flood from outside never delays local posts.
    RemoteFanout,
    /// Fetching remote actors and objects.
    Fetch,
    /// Media processing and remote media caching.
    Media,
    /// Outgoing mail.
    Mail,
}

impl WorkQueue {
    /// Every work queue.
    pub const ALL: [WorkQueue; 8] = [
        WorkQueue::Distribute,
        WorkQueue::Backfill,
        WorkQueue::Deliver,
        WorkQueue::Ingress,
        WorkQueue::RemoteFanout,
        WorkQueue::Fetch,
        WorkQueue::Media,
        WorkQueue::Mail,
    ];

    /// The short name (`deliver`), used in metrics and the outbox.
    pub fn name(self) -> &'static str {
        match self {
            WorkQueue::Distribute => "distribute",
            WorkQueue::Backfill => "backfill",
            WorkQueue::Deliver => "deliver",
            WorkQueue::Ingress => "ingress",
            WorkQueue::RemoteFanout => "remote_fanout",
            WorkQueue::Fetch => "fetch",
            WorkQueue::Media => "media",
            WorkQueue::Mail => "mail",
        }
    }

    /// Parses a short name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.name() == name)
    }

    /// How many attempts a message gets before it is parked. Deliveries follow Mastodon's
    /// first try plus 16 retries over days (a remote server may be down for a while); local work fails for a
    /// reason that waiting rarely cures, so it is parked sooner.
    pub fn max_attempts(self) -> u32 {
        match self {
            WorkQueue::Deliver => 17,
            _ => 8,
        }
    }
}

impl fmt::Display for WorkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The retry tiers: a message waiting `d` goes to the first tier whose bound is at least `d`.
/// Each tier queue's TTL is its bound, and each message also carries its own expiration, so a
/// message waits its own delay except when an older message with a longer delay in the same tier
/// stands before it (RabbitMQ expires from the head), which costs at most the tier's width.
pub const RETRY_TIERS: [Duration; 7] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The tier for a delay; delays beyond the last tier wait the last tier's bound.
pub fn tier_for(delay: Duration) -> usize {
    RETRY_TIERS
        .iter()
        .position(|bound| delay <= *bound)
        .unwrap_or(RETRY_TIERS.len() - 1)
}

/// Queue names under one prefix (AMQP_QUEUE_PREFIX), so deployments and tests can share a broker.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_string(),
        }
    }

    pub fn work(&self, queue: WorkQueue) -> String {
        format!("{}.{}", self.prefix, queue.name())
    }

    pub fn retry(&self, queue: WorkQueue, tier: usize) -> String {
        format!("{}.{}.retry.{tier}", self.prefix, queue.name())
    }

    pub fn parked(&self, queue: WorkQueue) -> String {
        format!("{}.{}.parked", self.prefix, queue.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tiers() {
        let names = Names::new("stampede");
        assert_eq!(names.work(WorkQueue::Deliver), "stampede.deliver");
        assert_eq!(names.retry(WorkQueue::Mail, 2), "stampede.mail.retry.2");
        assert_eq!(names.parked(WorkQueue::Media), "stampede.media.parked");
        assert_eq!(tier_for(Duration::from_secs(1)), 0);
        assert_eq!(tier_for(Duration::from_secs(10)), 0);
        assert_eq!(tier_for(Duration::from_secs(11)), 1);
        assert_eq!(
            tier_for(Duration::from_secs(3 * 86400)),
            RETRY_TIERS.len() - 1
        );
        for q in WorkQueue::ALL {
            assert_eq!(WorkQueue::from_name(q.name()), Some(q));
        }
    }
}
