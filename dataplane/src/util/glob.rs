//! Redis's glob matcher (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
//!
//! Quirks kept on purpose because Redis has them:
//! - a `*` never matches an empty subject on its own (`*` vs `""` is false); KEYS and SCAN
//!   special-case the pattern `*` before calling the matcher, PSUBSCRIBE does not;
//! - an unterminated `[` class runs to the end of the pattern;
//! - `\` inside a class compares the escaped byte case-sensitively even with `nocase`;
//! - a trailing `\` matches a literal backslash.

/// True when `s` matches `pattern`. `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut give_up = false;
    match_impl(pattern, s, nocase, &mut give_up, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches one `[...]` class (pattern starting just after `[`) against byte `c`.
/// Returns whether it matched and the rest of the pattern after the class.
fn match_class(mut p: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    let not = p.first() == Some(&b'^');
    if not {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            // Unterminated class: the pattern ends here.
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', e, rest @ ..] => {
                if *e == c {
                    matched = true;
                }
                p = rest;
            }
            [a, b'-', b, rest @ ..] => {
                let (mut lo, mut hi, mut x) = (*a, *b, c);
                if lo > hi {
                    std::mem::swap(&mut lo, &mut hi);
                }
                if nocase {
                    lo = lo.to_ascii_lowercase();
                    hi = hi.to_ascii_lowercase();
                    x = x.to_ascii_lowercase();
                }
                if x >= lo && x <= hi {
                    matched = true;
                }
                p = rest;
            }
            [a, rest @ ..] => {
                if eq(*a, c, nocase) {
                    matched = true;
                }
                p = rest;
            }
        }
    }
    (matched != not, p)
}

/// `give_up` is raised once a `*` has tried every suffix of the subject without success:
/// then no later position of an outer `*` can succeed either, which keeps patterns with
/// many stars linear instead of exponential.
fn match_impl(mut p: &[u8], mut s: &[u8], nocase: bool, give_up: &mut bool, depth: u32) -> bool {
    // Deeply nested stars simply fail, as in Redis, to bound the recursion.
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, nocase, give_up, depth + 1) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s = &s[1..];
                }
                *give_up = true;
                return false;
            }
            b'?' => {
                p = &p[1..];
                s = &s[1..];
            }
            b'[' => {
                let (matched, rest) = match_class(&p[1..], s[0], nocase);
                if !matched {
                    return false;
                }
                p = rest;
                s = &s[1..];
            }
            b'\\' if p.len() >= 2 => {
                if !eq(p[1], s[0], nocase) {
                    return false;
                }
                p = &p[2..];
                s = &s[1..];
            }
            c => {
                if !eq(c, s[0], nocase) {
                    return false;
                }
                p = &p[1..];
                s = &s[1..];
            }
        }
        if s.is_empty() {
            // Trailing stars match the empty rest of the subject.
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn patterns() {
        // Redis's stringmatchlen: a lone `*` does not match an empty subject (callers such as
        // KEYS special-case the pattern `*`); PSUBSCRIBE * does not match channel "".
        assert!(!glob_match(b"*", b"", false));
        assert!(!glob_match(b"**", b"", false));
        assert!(glob_match(b"", b"", false));
        assert!(glob_match(b"*", b"abc", false));
        assert!(glob_match(b"a*c", b"abbbc", false));
        assert!(!glob_match(b"a*c", b"abbb", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"h[b-a]llo", b"hbllo", false));
        assert!(glob_match(b"h\\*llo", b"h*llo", false));
        assert!(!glob_match(b"h\\*llo", b"hello", false));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(glob_match(b"key:*", b"key:1", false));
        assert!(!glob_match(b"key:?", b"key:", false));
        assert!(glob_match(b"a*", b"a", false));
        assert!(glob_match(b"a**", b"a", false));
        assert!(glob_match(b"*b*", b"ab", false));
    }

    #[test]
    fn classes_and_escapes() {
        // Unterminated class runs to the end of the pattern.
        assert!(glob_match(b"[ab", b"a", false));
        assert!(!glob_match(b"[", b"a", false));
        assert!(glob_match(b"[\\]]", b"]", false));
        assert!(!glob_match(b"[]", b"a", false));
        assert!(glob_match(b"[^]", b"a", false));
        assert!(glob_match(b"[a-]", b"]", false));
        assert!(glob_match(b"[a-", b"a", false));
        // Escape inside a class is case-sensitive even with nocase.
        assert!(!glob_match(b"[\\A]", b"a", true));
        assert!(glob_match(b"[A]", b"a", true));
        assert!(glob_match(b"[A-C]", b"b", true));
        // Trailing backslash is literal.
        assert!(glob_match(b"a\\", b"a\\", false));
        assert!(!glob_match(b"a\\", b"a", false));
    }

    #[test]
    fn many_stars_are_fast() {
        let p = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let s = [b'a'; 200];
        assert!(!glob_match(p, &s, false));
    }
}
