//! Fuzzes the request parser: it must never panic, every span must lie inside the buffer, and
//! feeding the same bytes in two pieces (resumable parsing) must give the same requests.
#![no_main]

use dataplane::resp::request::{Limits, ParseError, Request, RequestParser};
use libfuzzer_sys::fuzz_target;

fn parse_all(data: &[u8], split: usize) -> Vec<Result<Vec<Vec<u8>>, String>> {
    let limits = Limits { max_bulk_len: 1 << 20, authenticated: true };
    let mut p = RequestParser::new();
    let mut out = Vec::new();
    let mut pos = 0;
    // First offer only a prefix (as if the rest had not arrived yet), then everything.
    let mut end = split.min(data.len());
    loop {
        let window = &data[pos..end.max(pos)];
        match p.parse(window, &limits) {
            Ok(Request::Multibulk { consumed }) => {
                let args = p.spans().iter().map(|&(s, e)| {
                    assert!(s <= e && e <= consumed && consumed <= window.len());
                    window[s..e].to_vec()
                });
                out.push(Ok(args.collect()));
                pos += consumed;
            }
            Ok(Request::Inline { consumed, args }) => {
                out.push(Ok(args));
                pos += consumed;
            }
            Ok(Request::Empty { consumed }) => {
                assert!(consumed > 0);
                pos += consumed;
            }
            Err(ParseError::Protocol(m)) => {
                out.push(Err(m));
                return out;
            }
            Err(ParseError::Incomplete) => {
                if end >= data.len() {
                    return out;
                }
                end = data.len();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = parse_all(data, data.len());
    let split = if data.is_empty() { 0 } else { data[0] as usize % (data.len() + 1) };
    let pieces = parse_all(data, split);
    assert_eq!(whole, pieces);
});
