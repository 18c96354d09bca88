//! Round trips and legacy encodings of the payload codec.

use super::listpack::Elem;
use super::ziplist::tests::{build as build_ziplist, build_zipmap};
use super::*;
use crate::store::{HashValue, ListValue, SetValue, SmallBytes, ZSet};

fn lim() -> Limits {
    Limits::default()
}

fn roundtrip(v: &Value) -> Value {
    let p = dump_payload(v, &lim());
    assert!(verify_payload(&p));
    restore_payload(&p, &lim()).unwrap()
}

/// A payload with a correct footer around `body`.
fn payload(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

fn list_items(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::List(l) => l.iter().map(|e| e.to_vec()).collect(),
        _ => panic!("not a list"),
    }
}

#[test]
fn string_payload_exact() {
    // Redis 7.0: DUMP of "bar" and of "123".
    let p = dump_payload(&Value::Str(SmallBytes::new(b"bar")), &lim());
    assert_eq!(&p[..6], b"\x00\x03bar\x0a");
    assert!(verify_payload(&p));
    let p = dump_payload(&Value::Str(SmallBytes::new(b"123")), &lim());
    assert_eq!(&p[..3], b"\x00\xc0\x7b");
}

#[test]
fn strings_roundtrip() {
    for s in [
        &b""[..],
        b"0",
        b"-1",
        b"65536",
        b"-2147483648",
        b"9223372036854775807",
        b"a\x00b\r\n",
        &[b'x'; 1000],
    ] {
        match roundtrip(&Value::Str(SmallBytes::new(s))) {
            Value::Str(got) => assert_eq!(&got[..], s),
            _ => panic!(),
        }
    }
}

#[test]
fn footer_checks() {
    let mut p = dump_payload(&Value::Str(SmallBytes::new(b"x")), &lim());
    assert!(verify_payload(&p));
    let n = p.len();
    p[n - 1] ^= 1;
    assert!(!verify_payload(&p));
    assert!(!verify_payload(b"short"));
    // Version 11 is refused even with a right CRC.
    let mut body = b"\x00\x01x".to_vec();
    body.extend_from_slice(&11u16.to_le_bytes());
    let crc = crc64::crc64(0, &body);
    body.extend_from_slice(&crc.to_le_bytes());
    assert!(!verify_payload(&body));
}

#[test]
fn list_nodes_split_like_redis() {
    let mut l = ListValue::new();
    for i in 0..3000 {
        l.push_back(SmallBytes::from(format!("element-{i}").into_bytes()));
    }
    let v = Value::List(crate::store::CowArc::new(l));
    let p = dump_payload(&v, &lim());
    assert_eq!(p[0], types::LIST_QUICKLIST_2);
    assert!(p[1] > 1, "several nodes");
    assert_eq!(list_items(&roundtrip(&v)).len(), 3000);
}

#[test]
fn collections_roundtrip() {
    let mut h = HashValue::default();
    let mut s = SetValue::default();
    let mut z = ZSet::default();
    for i in 0..1000 {
        h.insert(
            SmallBytes::from(format!("f{i}").into_bytes()),
            SmallBytes::from(format!("{i}").into_bytes()),
        );
        s.insert(SmallBytes::from(format!("{}", i * 7 - 3000).into_bytes()));
        z.insert(format!("m\x00{i}").as_bytes(), i as f64 / 10.0);
    }
    z.insert(b"inf", f64::INFINITY);
    z.insert(b"-inf", f64::NEG_INFINITY);
    h.hashtable = true;
    for v in [
        Value::Hash(crate::store::CowArc::new(h)),
        Value::Set(crate::store::CowArc::new(s)),
        Value::ZSet(crate::store::CowArc::new(z)),
    ] {
        let back = roundtrip(&v);
        match (&v, &back) {
            (Value::Hash(a), Value::Hash(b)) => {
                assert_eq!(a.map, b.map);
                assert!(b.hashtable);
            }
            (Value::Set(a), Value::Set(b)) => {
                assert_eq!(a.set, b.set);
                assert!(b.hashtable, "over 512 entries");
            }
            (Value::ZSet(a), Value::ZSet(b)) => {
                assert_eq!(a.dict, b.dict);
                assert!(b.skiplist);
            }
            _ => panic!(),
        }
    }
}

#[test]
fn small_encodings() {
    let mut h = HashValue::default();
    h.insert(SmallBytes::new(b"a"), SmallBytes::new(b"1"));
    let p = dump_payload(&Value::Hash(crate::store::CowArc::new(h)), &lim());
    assert_eq!(p[0], types::HASH_LISTPACK);
    let mut s = SetValue::default();
    s.insert(SmallBytes::new(b"3"));
    s.insert(SmallBytes::new(b"-1"));
    let v = Value::Set(crate::store::CowArc::new(s));
    assert_eq!(dump_payload(&v, &lim())[0], types::SET_INTSET);
    match roundtrip(&v) {
        Value::Set(s) => {
            assert!(!s.hashtable);
            assert_eq!(
                s.iter().map(|m| m.to_vec()).collect::<Vec<_>>(),
                vec![b"-1".to_vec(), b"3".to_vec()]
            );
        }
        _ => panic!(),
    }
    let mut z = ZSet::default();
    z.insert(b"a", 0.1);
    z.insert(b"b", -0.0);
    let v = Value::ZSet(crate::store::CowArc::new(z));
    assert_eq!(dump_payload(&v, &lim())[0], types::ZSET_LISTPACK);
    match roundtrip(&v) {
        Value::ZSet(z) => {
            assert_eq!(z.score(b"a"), Some(0.1));
            assert!(z.score(b"b").unwrap().is_sign_negative());
            assert!(!z.skiplist);
        }
        _ => panic!(),
    }
}

#[test]
fn legacy_encodings() {
    let zl = build_ziplist(&[Elem::Str(b"a"), Elem::Int(5), Elem::Int(-300)]);
    let mut w = Writer::new();
    w.buf.push(types::LIST_ZIPLIST);
    w.write_string(&zl);
    let v = restore_payload(&payload(&w.buf), &lim()).unwrap();
    assert_eq!(
        list_items(&v),
        vec![b"a".to_vec(), b"5".to_vec(), b"-300".to_vec()]
    );

    // Quicklist v1: two ziplist nodes, one empty (skipped).
    let empty = build_ziplist(&[]);
    let mut w = Writer::new();
    w.buf.push(types::LIST_QUICKLIST);
    w.write_len(2);
    w.write_string(&zl);
    w.write_string(&empty);
    assert_eq!(
        list_items(&restore_payload(&w.buf, &lim()).unwrap()).len(),
        3
    );

    // Old LIST, SET, ZSET (text scores), HASH.
    let mut w = Writer::new();
    w.buf.push(types::ZSET);
    w.write_len(3);
    w.write_string(b"a");
    w.buf.extend_from_slice(b"\x031.5");
    w.write_string(b"b");
    w.buf.push(254);
    w.write_string(b"c");
    w.buf.push(255);
    match restore_payload(&w.buf, &lim()).unwrap() {
        Value::ZSet(z) => {
            assert_eq!(z.score(b"a"), Some(1.5));
            assert_eq!(z.score(b"b"), Some(f64::INFINITY));
            assert_eq!(z.score(b"c"), Some(f64::NEG_INFINITY));
            assert!(!z.skiplist);
        }
        _ => panic!(),
    }

    // ZSET_ZIPLIST and HASH_ZIPLIST.
    let zl = build_ziplist(&[
        Elem::Str(b"m"),
        Elem::Str(b"2.5"),
        Elem::Str(b"n"),
        Elem::Int(3),
    ]);
    let mut w = Writer::new();
    w.buf.push(types::ZSET_ZIPLIST);
    w.write_string(&zl);
    match restore_payload(&w.buf, &lim()).unwrap() {
        Value::ZSet(z) => assert_eq!((z.score(b"m"), z.score(b"n")), (Some(2.5), Some(3.0))),
        _ => panic!(),
    }
    let mut w = Writer::new();
    w.buf.push(types::HASH_ZIPLIST);
    w.write_string(&zl);
    match restore_payload(&w.buf, &lim()).unwrap() {
        Value::Hash(h) => {
            assert_eq!(h.get(&b"n"[..]).map(|v| v.to_vec()), Some(b"3".to_vec()));
            assert!(!h.hashtable);
        }
        _ => panic!(),
    }

    // Zipmap with a value over hash-max-listpack-value: converted.
    let long = vec![b'v'; 100];
    let zm = build_zipmap(&[(b"f", &long), (b"g", b"1")]);
    let mut w = Writer::new();
    w.buf.push(types::HASH_ZIPMAP);
    w.write_string(&zm);
    match restore_payload(&w.buf, &lim()).unwrap() {
        Value::Hash(h) => {
            assert_eq!(h.len(), 2);
            assert!(h.hashtable);
        }
        _ => panic!(),
    }
}

#[test]
fn bad_data_rejected() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![types::STRING],
        vec![types::STRING, 5, b'a'],
        vec![types::LIST, 0],
        vec![types::SET, 2, 1, b'a', 1, b'a'],
        vec![types::HASH, 1, 1, b'a'],
        vec![types::STREAM_LISTPACKS, 0],
        vec![types::MODULE_2, 0],
        vec![8, 0],
        vec![types::STRING, 0xc3, 5, 10, 0, 0, 0, 0, 0],
        vec![types::HASH_LISTPACK, 7, 7, 0, 0, 0, 0, 0, 0xff],
    ];
    for c in cases {
        assert!(restore_payload(&c, &lim()).is_err(), "{c:?}");
    }
}

/// An LZF string whose declared length is far beyond what its compressed bytes can expand to
/// (issue 15: 2^50 bytes aborted the process sizing the buffer before checking anything).
#[test]
fn lzf_declared_length_is_bounded_by_input() {
    let mut body = vec![types::STRING, 0xc0 | types::ENC_LZF, 2, 0x81];
    body.extend_from_slice(&(1u64 << 50).to_be_bytes());
    body.extend_from_slice(&[0x00, b'a']);
    let p = payload(&body);
    assert!(verify_payload(&p));
    assert!(matches!(
        restore_payload(&p, &lim()),
        Err(Error::Corrupt(_))
    ));
    // The largest expansion LZF allows (264 bytes per 3 input bytes) still loads.
    let mut data = vec![0x00, b'a'];
    data.extend_from_slice(&[0xe0, 255, 0x00]);
    assert_eq!(lzf::decompress(&data, 265).unwrap(), vec![b'a'; 265]);
    assert!(lzf::decompress(&data, usize::MAX).is_none());
    // Within LZF's bound but longer than proto-max-bulk-len: refused before decompressing.
    let mut body = vec![types::STRING, 0xc0 | types::ENC_LZF, 5, 10];
    body.extend_from_slice(&[0x00, b'a', 0xe0, 0, 0x00]);
    let small = Limits {
        max_string_len: 8,
        ..lim()
    };
    assert!(matches!(
        restore_payload(&payload(&body), &small),
        Err(Error::Corrupt("string longer than proto-max-bulk-len"))
    ));
    match restore_payload(&payload(&body), &lim()) {
        Ok(Value::Str(s)) => assert_eq!(&s[..], &[b'a'; 10]),
        o => panic!("{o:?}"),
    }
}
