//! Fuzzes the reply frame reader: never panics, and what it reads re-encodes to the same
//! value.
#![no_main]

use dataplane::resp::frame::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((f, n)) = Frame::parse(data, 0) {
        assert!(n <= data.len());
        let mut enc = Vec::new();
        f.encode(&mut enc);
        let (g, m) = Frame::parse(&enc, 0).expect("re-encoded frame parses");
        assert_eq!(m, enc.len());
        assert_eq!(f, g);
    }
});
