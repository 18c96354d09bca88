//! The pub/sub registry: channel and pattern subscriptions, shared by all connections.

use std::collections::HashMap;

use bytes::Bytes;

use super::client::{Push, PushSender};
use crate::util::glob::glob_match;

/// Subscribers per channel and per pattern.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: HashMap<Bytes, HashMap<u64, PushSender>>,
    patterns: HashMap<Bytes, HashMap<u64, PushSender>>,
}

impl PubSub {
    /// Subscribes client `id` to `channel`; false if it already was.
    pub fn subscribe(&mut self, channel: &[u8], id: u64, tx: &PushSender) -> bool {
        self.channels
            .entry(Bytes::copy_from_slice(channel))
            .or_default()
            .insert(id, tx.clone())
            .is_none()
    }

    /// Unsubscribes; false if it was not subscribed.
    pub fn unsubscribe(&mut self, channel: &[u8], id: u64) -> bool {
        let Some(subs) = self.channels.get_mut(channel) else {
            return false;
        };
        let removed = subs.remove(&id).is_some();
        if subs.is_empty() {
            self.channels.remove(channel);
        }
        removed
    }

    /// Subscribes to a pattern.
    pub fn psubscribe(&mut self, pattern: &[u8], id: u64, tx: &PushSender) -> bool {
        self.patterns
            .entry(Bytes::copy_from_slice(pattern))
            .or_default()
            .insert(id, tx.clone())
            .is_none()
    }

    /// Unsubscribes from a pattern.
    pub fn punsubscribe(&mut self, pattern: &[u8], id: u64) -> bool {
        let Some(subs) = self.patterns.get_mut(pattern) else {
            return false;
        };
        let removed = subs.remove(&id).is_some();
        if subs.is_empty() {
            self.patterns.remove(pattern);
        }
        removed
    }

    /// Drops every subscription of a client (a safety net when its connection ends abnormally).
    pub fn remove_client(&mut self, id: u64) {
        self.channels.retain(|_, subs| {
            subs.remove(&id);
            !subs.is_empty()
        });
        self.patterns.retain(|_, subs| {
            subs.remove(&id);
            !subs.is_empty()
        });
    }

    /// Delivers a message; returns the number of receivers (as PUBLISH replies).
    pub fn publish(&self, channel: &[u8], data: &[u8]) -> usize {
        let mut n = 0;
        let channel_b = Bytes::copy_from_slice(channel);
        let data_b = Bytes::copy_from_slice(data);
        if let Some(subs) = self.channels.get(channel) {
            for tx in subs.values() {
                if tx.send(Push::Message {
                    channel: channel_b.clone(),
                    data: data_b.clone(),
                }) {
                    n += 1;
                }
            }
        }
        for (pat, subs) in &self.patterns {
            if glob_match(pat, channel, false) {
                for tx in subs.values() {
                    let msg = Push::PMessage {
                        pattern: pat.clone(),
                        channel: channel_b.clone(),
                        data: data_b.clone(),
                    };
                    if tx.send(msg) {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Active channels, optionally filtered by a glob (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of a channel (PUBSUB NUMSUB).
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, |s| s.len())
    }

    /// Number of patterns with subscribers (PUBSUB NUMPAT).
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// Total channels and patterns (INFO pubsub_channels / pubsub_patterns).
    pub fn counts(&self) -> (usize, usize) {
        (self.channels.len(), self.patterns.len())
    }
}
