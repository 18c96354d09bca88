//! Codis slot hashing: a key maps to `crc32(tag) % 1024`, where `tag` is the part between the
//! first `{` and the first `}` after it (even when empty), or the whole key otherwise.

/// Number of slots in a Codis cluster.
pub const MAX_SLOT_NUM: usize = 1024;

/// The bytes of `key` that are hashed: the text between the first `{` and the first `}`
/// after it, which may be empty, or the whole key when there is no such pair.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            return &rest[..close];
        }
    }
    key
}

/// True when the key has a hash tag (`{...}`), as Codis's server decides for its tag index.
pub fn has_tag(key: &[u8]) -> bool {
    hash_tag(key).len() != key.len()
}

/// CRC-32/IEEE of the key's hash tag (the value Codis keeps in its tagged-key index).
pub fn tag_crc(key: &[u8]) -> u32 {
    crc32fast::hash(hash_tag(key))
}

/// The slot (0..1024) a key belongs to.
pub fn slot_of(key: &[u8]) -> usize {
    (tag_crc(key) as usize) % MAX_SLOT_NUM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_vectors_from_the_spec() {
        let cases: &[(&str, &str)] = &[
            ("{abc}", "abc"),
            ("{{{abc1}abc2}", "{{abc1"),
            ("abc1{abc2{abc3}", "abc2{abc3"),
            ("{{{{abc", "{{{{abc"),
            ("{{{{abc}", "{{{abc"),
            ("{{}{{abc", "{"),
            ("abc}{abc", "abc}{abc"),
            ("abc}{123}456", "123"),
            ("abc{}123", ""),
        ];
        for (key, tag) in cases {
            assert_eq!(hash_tag(key.as_bytes()), tag.as_bytes(), "key {key}");
        }
    }

    #[test]
    fn slots_of_the_doc_example() {
        assert_eq!(slot_of(b"a"), 579);
        assert_eq!(slot_of(b"b"), 1017);
        assert_eq!(slot_of(b"c"), 879);
        assert_eq!(slot_of(b"abc{}123"), 0);
        assert!(has_tag(b"x{y}"));
        assert!(!has_tag(b"xy}"));
    }
}
