//! Intsets: sorted arrays of integers, Redis's encoding of small all-integer sets. Layout:
//! element width in bytes (u32 LE: 2, 4 or 8), count (u32 LE), the elements ascending (LE).

/// Encodes sorted, distinct integers with the smallest width that holds them all.
pub fn encode(sorted: &[i64]) -> Vec<u8> {
    let width: usize = match (sorted.first(), sorted.last()) {
        (Some(&lo), Some(&hi)) if lo >= i16::MIN as i64 && hi <= i16::MAX as i64 => 2,
        (Some(&lo), Some(&hi)) if lo >= i32::MIN as i64 && hi <= i32::MAX as i64 => 4,
        (Some(_), Some(_)) => 8,
        _ => 2,
    };
    let mut out = Vec::with_capacity(8 + width * sorted.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// Decodes an intset; None when malformed or not strictly ascending.
pub fn decode(data: &[u8]) -> Option<Vec<i64>> {
    if data.len() < 8 {
        return None;
    }
    let width = u32::from_le_bytes(data[..4].try_into().ok()?) as usize;
    let count = u32::from_le_bytes(data[4..8].try_into().ok()?) as usize;
    if !matches!(width, 2 | 4 | 8) || data.len() != 8 + width.checked_mul(count)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for chunk in data[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes(chunk.try_into().ok()?) as i64,
            4 => i32::from_le_bytes(chunk.try_into().ok()?) as i64,
            _ => i64::from_le_bytes(chunk.try_into().ok()?),
        };
        if out.last().is_some_and(|&last| last >= v) {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(encode(&[1, 2]), vec![2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0]);
        assert_eq!(encode(&[-40000, 1])[0], 4);
        assert_eq!(encode(&[1, 1 << 40])[0], 8);
        for v in [
            vec![],
            vec![-5, 0, 7],
            vec![i64::MIN, 0, i64::MAX],
            vec![-70000, 70000],
        ] {
            assert_eq!(decode(&encode(&v)).unwrap(), v);
        }
    }

    #[test]
    fn rejects_bad() {
        assert!(decode(&[3, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(decode(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0]).is_none());
        assert!(decode(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0]).is_none()); // not ascending
    }
}
