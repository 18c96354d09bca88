//! Integration tests: pubsub.
