//! GEO commands beyond the fixed script (`tests/scripts/geo.txt`): random points and random
//! queries with every option, sent to Debian's redis-server and to codis-server and
//! compared byte for byte (distances, coordinates and orders included); and GEO through
//! codis-proxy over two codis-servers.

use codis_model::slot_of;
use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::proxy::TestProxy;
use crate::support::{Client, show, start_codis, start_redis};

/// A coordinate as a client might write it: integer, fixed decimals or an exponent.
fn coord(rng: &mut StdRng, min: f64, max: f64) -> String {
    let v = rng.random_range(min..=max);
    match rng.random_range(0..6) {
        0 => format!("{}", v.trunc()),
        1 => format!("{v:.2}"),
        2 => format!("{v:e}"),
        _ => format!("{v}"),
    }
}

/// A random point: anywhere, near a pole, near the antimeridian, or in a small cluster
/// (many points close together, some at the very same place).
fn point(rng: &mut StdRng) -> (String, String) {
    match rng.random_range(0..10) {
        0 => (coord(rng, -180.0, 180.0), coord(rng, 80.0, 85.05112878)),
        1 => (coord(rng, -180.0, 180.0), coord(rng, -85.05112878, -80.0)),
        2 => (coord(rng, 178.0, 180.0), coord(rng, -60.0, 60.0)),
        3 => (coord(rng, -180.0, -178.0), coord(rng, -60.0, 60.0)),
        4 => ("12.5".into(), "41.9".into()),
        5 | 6 => (coord(rng, 12.0, 13.0), coord(rng, 41.5, 42.5)),
        _ => (
            coord(rng, -180.0, 180.0),
            coord(rng, -85.05112878, 85.05112878),
        ),
    }
}

fn unit(rng: &mut StdRng) -> &'static str {
    ["m", "km", "mi", "ft", "KM"][rng.random_range(0..5)]
}

/// A distance in `unit` from a few meters to a quarter of the planet.
fn size(rng: &mut StdRng, unit: &str) -> String {
    let meters = 10f64.powf(rng.random_range(0.5..7.3));
    let per = match unit {
        "m" => 1.0,
        "km" | "KM" => 1000.0,
        "mi" => 1609.34,
        _ => 0.3048,
    };
    format!("{:.3}", meters / per)
}

/// Random search options (no STORE): WITH*, ASC/DESC, COUNT [ANY].
fn options(rng: &mut StdRng, with: bool) -> String {
    let mut o = Vec::new();
    if with {
        for w in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if rng.random_bool(0.5) {
                o.push(w.to_string());
            }
        }
    }
    match rng.random_range(0..3) {
        0 => o.push("ASC".into()),
        1 => o.push("DESC".into()),
        _ => {}
    }
    if rng.random_bool(0.5) {
        o.push(format!("COUNT {}", rng.random_range(1..40)));
        if rng.random_bool(0.3) {
            o.push("ANY".into());
        }
    }
    // Options come in any order.
    for i in (1..o.len()).rev() {
        let j = rng.random_range(0..=i);
        o.swap(i, j);
    }
    o.join(" ")
}

/// The search shape of GEOSEARCH: BYRADIUS or BYBOX.
fn by(rng: &mut StdRng) -> String {
    let u = unit(rng);
    if rng.random_bool(0.5) {
        format!("BYRADIUS {} {u}", size(rng, u))
    } else {
        format!("BYBOX {} {} {u}", size(rng, u), size(rng, u))
    }
}

/// One random GEO command against key `g` whose members are `m0..m{n-1}`.
fn query(rng: &mut StdRng, n: usize) -> Vec<String> {
    let member = |rng: &mut StdRng| format!("m{}", rng.random_range(0..n + 2));
    let (lon, lat) = point(rng);
    let u = unit(rng);
    match rng.random_range(0..12) {
        0 => vec![format!(
            "GEORADIUS g {lon} {lat} {} {u} {}",
            size(rng, u),
            options(rng, true)
        )],
        1 => vec![format!(
            "GEORADIUS_RO g {lon} {lat} {} {u} {}",
            size(rng, u),
            options(rng, true)
        )],
        2 => vec![format!(
            "GEORADIUSBYMEMBER g {} {} {u} {}",
            member(rng),
            size(rng, u),
            options(rng, true)
        )],
        3 => vec![format!(
            "GEORADIUSBYMEMBER_RO g {} {} {u} {}",
            member(rng),
            size(rng, u),
            options(rng, true)
        )],
        4 | 5 => vec![format!(
            "GEOSEARCH g FROMLONLAT {lon} {lat} {} {}",
            by(rng),
            options(rng, true)
        )],
        6 => vec![format!(
            "GEOSEARCH g FROMMEMBER {} {} {}",
            member(rng),
            by(rng),
            options(rng, true)
        )],
        7 => {
            let dist = if rng.random_bool(0.5) {
                " STOREDIST"
            } else {
                ""
            };
            vec![
                format!(
                    "GEOSEARCHSTORE dst g FROMLONLAT {lon} {lat} {} {}{dist}",
                    by(rng),
                    options(rng, false)
                ),
                "ZRANGE dst 0 -1 WITHSCORES".into(),
            ]
        }
        8 => {
            let kind = if rng.random_bool(0.5) {
                "STORE"
            } else {
                "STOREDIST"
            };
            vec![
                format!(
                    "GEORADIUS g {lon} {lat} {} {u} {} {kind} dst",
                    size(rng, u),
                    options(rng, false)
                ),
                "ZRANGE dst 0 -1 WITHSCORES".into(),
            ]
        }
        9 => vec![format!("GEODIST g {} {} {u}", member(rng), member(rng))],
        10 => {
            let ms: Vec<String> = (0..rng.random_range(1..6)).map(|_| member(rng)).collect();
            vec![format!("GEOPOS g {}", ms.join(" "))]
        }
        _ => {
            let ms: Vec<String> = (0..rng.random_range(1..6)).map(|_| member(rng)).collect();
            vec![format!("GEOHASH g {}", ms.join(" "))]
        }
    }
}

fn raw(c: &mut Client, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    c.cmd(&args).1
}

/// Random sets (small listpacks and large skiplists), random queries: every reply equal.
#[test]
fn random_points_and_queries_match_redis() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let mut a = Client::connect(redis.port);
    let mut b = Client::connect(codis.port);
    let mut rng = StdRng::seed_from_u64(0x6e0);
    let mut diffs = Vec::new();
    let mut checked = 0;
    for round in 0..8 {
        let n = if round % 2 == 0 { 40 } else { 600 };
        let mut lines = vec!["DEL g dst".to_string()];
        for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
            let mut add = String::from("GEOADD g");
            for i in chunk {
                let (lon, lat) = point(&mut rng);
                add.push_str(&format!(" {lon} {lat} m{i}"));
            }
            lines.push(add);
        }
        lines.push("ZRANGE g 0 -1 WITHSCORES".into());
        for _ in 0..300 {
            lines.extend(query(&mut rng, n));
        }
        for line in &lines {
            let (x, y) = (raw(&mut a, line), raw(&mut b, line));
            checked += 1;
            if x != y {
                diffs.push(format!(
                    "{line}\n  redis: {}\n  codis: {}",
                    show(&x),
                    show(&y)
                ));
            }
        }
    }
    assert!(checked > 2000);
    assert!(
        diffs.is_empty(),
        "{} of {checked} replies differ:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(10)].join("\n")
    );
}

/// GEO through codis-proxy over two codis-servers: replies equal a lone redis-server's,
/// every key lives on the owner of its slot, STORE forms work within a hash tag and are
/// refused across slots.
#[test]
fn geo_through_the_proxy() {
    let redis = start_redis(&[]);
    let (s1, s2) = (start_codis(&[]), start_codis(&[]));
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..512, &s1);
    p.assign(512..1024, &s2);
    let mut c = p.client();
    let mut r = Client::connect(redis.port);
    // Two keys in different halves of the slot space, each with a tagged destination.
    let low = (0..)
        .map(|i| format!("{{g{i}}}"))
        .find(|k| slot_of(k.as_bytes()) < 512)
        .unwrap();
    let high = (0..)
        .map(|i| format!("{{g{i}}}"))
        .find(|k| slot_of(k.as_bytes()) >= 512)
        .unwrap();
    let mut rng = StdRng::seed_from_u64(14);
    for key in [&low, &high] {
        let mut add = format!("GEOADD {key}");
        for i in 0..200 {
            let (lon, lat) = point(&mut rng);
            add.push_str(&format!(" {lon} {lat} m{i}"));
        }
        let lines = [
            add,
            format!("GEOADD {key} CH 12.5 41.9 m0 1 1 new"),
            format!("GEOADD {key} NX 1 2 m1"),
            format!("GEOADD {key} XX 1 2 nosuch"),
            format!("GEODIST {key} m0 m1 km"),
            format!("GEOHASH {key} m0 m1 nosuch"),
            format!("GEOPOS {key} m0 m1 nosuch"),
            format!("GEORADIUS {key} 12.5 41.9 500 km WITHDIST WITHCOORD ASC"),
            format!("GEORADIUS_RO {key} 12.5 41.9 500 km COUNT 3"),
            format!("GEORADIUSBYMEMBER {key} m0 500 km WITHHASH DESC"),
            format!("GEORADIUSBYMEMBER_RO {key} m0 500 km COUNT 2 ANY"),
            format!("GEOSEARCH {key} FROMLONLAT 12.5 41.9 BYBOX 900 900 km WITHDIST ASC"),
            format!("GEOSEARCH {key} FROMMEMBER m0 BYRADIUS 2000 mi COUNT 5 DESC"),
            format!("GEORADIUS {key} 12.5 41.9 500 km STORE {key}dst"),
            format!("ZRANGE {key}dst 0 -1 WITHSCORES"),
            format!("GEORADIUSBYMEMBER {key} m0 500 km STOREDIST {key}dst"),
            format!("ZRANGE {key}dst 0 -1 WITHSCORES"),
            format!("GEOSEARCHSTORE {key}dst {key} FROMMEMBER m0 BYBOX 900 900 km STOREDIST"),
            format!("ZRANGE {key}dst 0 -1 WITHSCORES"),
            format!("GEOSEARCHSTORE {key}dst {key} FROMLONLAT 0 0 BYRADIUS 1 m"),
            format!("EXISTS {key}dst"),
            format!("GEOSEARCH {key} FROMLONLAT 0 0 BYRADIUS 1 km ANY"),
        ];
        for line in &lines {
            assert_eq!(raw(&mut c, line), raw(&mut r, line), "{line}");
        }
    }
    // Every key is on the owner of its slot only.
    let (mut c1, mut c2) = (Client::connect(s1.port), Client::connect(s2.port));
    for key in [&low, &high] {
        let on_low = slot_of(key.as_bytes()) < 512;
        let want = |here: bool| Frame::Integer(if here { 201 } else { 0 });
        assert_eq!(c1.run(&format!("ZCARD {key}")), want(on_low), "{key}");
        assert_eq!(c2.run(&format!("ZCARD {key}")), want(!on_low), "{key}");
    }
    // Destination and source in different slots: CROSSSLOT, nothing written.
    let crossslot = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n".to_vec();
    for line in [
        format!("GEORADIUS {low} 0 0 1 km STORE {high}x"),
        format!("GEORADIUS {low} 0 0 1 km STOREDIST {high}x"),
        format!("GEORADIUSBYMEMBER {low} m0 1 km STORE {high}x"),
        format!("GEOSEARCHSTORE {high}x {low} FROMLONLAT 0 0 BYRADIUS 1 km"),
    ] {
        assert_eq!(raw(&mut c, &line), crossslot, "{line}");
    }
    assert_eq!(c.run(&format!("EXISTS {high}x")), Frame::Integer(0));
}
