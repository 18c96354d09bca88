//! Integration tests: migrate_sync.
