//! Codis slot commands, checked against the values the spec gives.

use dataplane::resp::frame::Frame;

use crate::support::{Client, start_codis};

fn ints(f: &Frame) -> Vec<i64> {
    match f {
        Frame::Array(_, items) => items
            .iter()
            .map(|i| match i {
                Frame::Integer(n) => *n,
                other => panic!("not an integer: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn slotshashkey_matches_spec_vectors() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    let (f, _) = c.cmd(&[b"SLOTSHASHKEY", b"a", b"b", b"c", b"abc{}123", b"{abc}x"]);
    let v = ints(&f);
    assert_eq!(&v[..4], &[579, 1017, 879, 0]);
    assert_eq!(v[4], (crc32fast::hash(b"abc") % 1024) as i64);
}

#[test]
fn slotsinfo_scan_del_check() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    // 300 keys sharing tag {t} land in one slot; 50 others spread out.
    for i in 0..300 {
        c.cmd(&[b"SET", format!("{{t}}:{i}").as_bytes(), b"v"]);
    }
    for i in 0..50 {
        c.cmd(&[b"SET", format!("other:{i}").as_bytes(), b"v"]);
    }
    let slot = (crc32fast::hash(b"t") % 1024) as usize;
    let (f, _) = c.cmd(&[b"SLOTSINFO"]);
    let Frame::Array(_, rows) = f else { panic!() };
    let total: i64 = rows.iter().map(|r| ints(r)[1]).sum();
    assert_eq!(total, 350);
    let row = rows.iter().map(ints).find(|r| r[0] == slot as i64).unwrap();
    assert!(row[1] >= 300);
    // SLOTSINFO start count narrows the range.
    let (f, _) = c.cmd(&[b"SLOTSINFO", slot.to_string().as_bytes(), b"1"]);
    let Frame::Array(_, rows) = f else { panic!() };
    assert_eq!(rows.len(), 1);
    // SLOTSSCAN walks the slot completely.
    let mut cursor = b"0".to_vec();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let (f, _) = c.cmd(&[
            b"SLOTSSCAN",
            slot.to_string().as_bytes(),
            &cursor,
            b"COUNT",
            b"17",
        ]);
        let Frame::Array(_, parts) = f else { panic!() };
        let (Frame::Bulk(next), Frame::Array(_, keys)) = (&parts[0], &parts[1]) else {
            panic!()
        };
        for k in keys {
            let Frame::Bulk(k) = k else { panic!() };
            assert_eq!(codis_model::slot_of(k), slot);
            seen.insert(k.clone());
        }
        if next == b"0" {
            break;
        }
        cursor = next.clone();
    }
    assert!(seen.len() >= 300);
    // Errors.
    assert_eq!(
        c.cmd(&[b"SLOTSSCAN", b"1024", b"0"]).1,
        b"-ERR invalid slot number = 1024\r\n"
    );
    assert_eq!(
        c.cmd(&[b"SLOTSINFO", b"-1"]).1,
        b"-ERR invalid slot number = -1\r\n"
    );
    assert_eq!(c.cmd(&[b"SLOTSCHECK"]).1, b"+OK\r\n");
    // SLOTSDEL removes exactly that slot.
    let (f, _) = c.cmd(&[b"SLOTSDEL", slot.to_string().as_bytes()]);
    let Frame::Array(_, rows) = f else { panic!() };
    assert_eq!(ints(&rows[0]), vec![slot as i64, 0]);
    let (f, _) = c.cmd(&[b"DBSIZE"]);
    assert_eq!(f, Frame::Integer(350 - seen.len() as i64));
    assert_eq!(c.cmd(&[b"GET", b"{t}:1"]).1, b"$-1\r\n");
    assert_eq!(c.cmd(&[b"SLOTSCHECK"]).1, b"+OK\r\n");
}
