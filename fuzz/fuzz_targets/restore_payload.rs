//! Fuzzes the DUMP payload decoder as RESTORE runs it (`verify_payload` then
//! `restore_payload`): never panics, never allocates beyond what the input can hold (libFuzzer's
//! `-rss_limit_mb` / `-malloc_limit_mb` catch that), and whatever loads re-encodes to a payload
//! that loads again to a value of the same type and size. The harness appends the version and
//! a correct CRC-64, so the fuzzer explores the body rather than the checksum.
#![no_main]

use dataplane::rdb::{self, Limits, crc64};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = data.to_vec();
    p.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    assert!(rdb::verify_payload(&p));
    let lim = Limits::default();
    if let Ok(v) = rdb::restore_payload(&p, &lim) {
        assert!(!v.is_empty());
        let again = rdb::dump_payload(&v, &lim);
        let w = rdb::restore_payload(&again, &lim).expect("our own DUMP loads");
        assert_eq!(v.type_name(), w.type_name());
        assert_eq!(v.len(), w.len());
    }
    // The same bytes as an RDB file body (after the header) through the file loader.
    let mut file = b"REDIS0010".to_vec();
    file.extend_from_slice(data);
    let _ = rdb::file::load(&file, &lim, 16, 0, |_| {});
});
