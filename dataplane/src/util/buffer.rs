//! Growing a read buffer for a big value half read.

use bytes::BytesMut;

/// Room added past a big value's end, so that the read helpers (which reserve when less
/// than a quarter of their 16 KiB chunk is free) never grow the buffer again before the
/// value is complete.
pub const SLACK: usize = 16 * 1024;

/// Makes `buf` able to hold `len` bytes plus [`SLACK`] with one allocation of exactly that
/// size and one copy of what it holds. (`BytesMut::reserve` grows by doubling: up to twice
/// what is needed, which a client dribbling a big argument would see as 8x what it sent.)
pub fn grow_exact(buf: &mut BytesMut, len: usize) {
    let cap = len.saturating_add(SLACK);
    if buf.capacity() >= cap {
        return;
    }
    let mut grown = BytesMut::with_capacity(cap);
    grown.extend_from_slice(buf);
    *buf = grown;
}

/// The capacity to grow to while a value needing `need` bytes is read and `len` have come:
/// at most 4x what came (a declared length alone allocates nothing), at most `need`, and
/// nothing above `max` (a length no server or client may send: the reader then grows as
/// usual). `None`: keep the buffer as it is.
pub fn big_value_target(need: usize, len: usize, capacity: usize, max: usize) -> Option<usize> {
    if need <= capacity || need > max {
        return None;
    }
    let target = need.min(len.saturating_mul(4));
    (target > capacity).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_once_to_the_exact_size() {
        let mut b = BytesMut::with_capacity(16);
        b.extend_from_slice(b"abc");
        grow_exact(&mut b, 1000);
        assert_eq!(&b[..], b"abc");
        assert_eq!(b.capacity(), 1000 + SLACK);
        let before = b.as_ptr();
        grow_exact(&mut b, 500);
        assert_eq!(b.as_ptr(), before, "big enough: unchanged");
    }

    #[test]
    fn targets_follow_what_came() {
        // A header alone: nothing.
        assert_eq!(big_value_target(1 << 20, 30, 16 * 1024, 1 << 29), None);
        // 100 KiB came: 400 KiB.
        assert_eq!(
            big_value_target(1 << 20, 100 << 10, 128 << 10, 1 << 29),
            Some(400 << 10)
        );
        // Near the end: the value's size, not more.
        assert_eq!(
            big_value_target(1 << 20, 900 << 10, 950 << 10, 1 << 29),
            Some(1 << 20)
        );
        // Above the limit (a bogus length): nothing.
        assert_eq!(big_value_target(1 << 40, 1 << 30, 1 << 30, 1 << 29), None);
    }
}
