//! Integration tests: migrate_async.
