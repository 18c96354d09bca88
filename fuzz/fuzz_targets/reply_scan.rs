//! Fuzzes the proxy's reply scanner: never panics; fed the bytes in two pieces it agrees with
//! one call on the whole; and on a canonical value (one the frame reader re-encodes to the same
//! bytes), both find the same end.
#![no_main]

use dataplane::resp::frame::Frame;
use dataplane::resp::scan::{ReplyScanner, ScanError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = ReplyScanner::new().scan(data);
    if let Ok(n) = whole {
        assert!(n <= data.len());
    }
    // Resumed scanning (an incomplete prefix first) gives the same answer.
    let cut = data.len() / 2;
    let mut s = ReplyScanner::new();
    match s.scan(&data[..cut]) {
        Err(ScanError::Incomplete) => {
            let again = s.scan(data);
            match (&whole, &again) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(ScanError::Incomplete), Err(ScanError::Incomplete)) => {}
                (Err(ScanError::Invalid(_)), Err(ScanError::Invalid(_))) => {}
                (a, b) => panic!("whole {a:?} vs resumed {b:?}"),
            }
        }
        Ok(n) => assert_eq!(whole, Ok(n)),
        Err(ScanError::Invalid(_)) => {}
    }
    if let Ok((f, m)) = Frame::parse(data, 0) {
        let mut enc = Vec::new();
        f.encode(&mut enc);
        if enc == data[..m] {
            assert_eq!(whole, Ok(m));
        }
    }
});
