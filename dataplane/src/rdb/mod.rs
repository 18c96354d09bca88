//! Redis's serialization format: DUMP/RESTORE payloads (and later RDB files).
