//! Redis's geohash: the 52-bit interleaved encoding a GEO sorted set stores as scores, the
//! search areas (a cell and its eight neighbours) that cover a radius or a box, and the
//! haversine distances. Every step follows Redis 7's arithmetic operation for operation, so
//! scores, decoded coordinates and distances are the same doubles Redis computes (the
//! transcendental functions come from the same C library).
//!
//! Layout of a hash: latitude bits in the even positions, longitude bits in the odd ones,
//! `step` bits of each (26 for a stored score: 52 bits, exact in a double).

use std::f64::consts::PI;

/// Latitude limits (EPSG:900913: the Web Mercator square stops short of the poles).
pub const LAT_MIN: f64 = -85.05112878;
/// See [`LAT_MIN`].
pub const LAT_MAX: f64 = 85.05112878;
/// Longitude limits.
pub const LON_MIN: f64 = -180.0;
/// See [`LON_MIN`].
pub const LON_MAX: f64 = 180.0;
/// Bits per coordinate of a stored score.
pub const STEP_MAX: u8 = 26;
/// Redis's earth radius (WGS-84 quadratic mean), in meters.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Half the Mercator world width, in meters: the radius at which the search starts at step 1.
const MERCATOR_MAX: f64 = 20037726.37;
/// Degrees to radians, as Redis computes it (`M_PI / 180.0`).
const D_R: f64 = PI / 180.0;

const EVEN: u64 = 0x5555_5555_5555_5555;
const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;

/// A hash of `step` bits per coordinate. `step == 0` marks an empty (skipped) search cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashBits {
    /// The interleaved bits.
    pub bits: u64,
    /// Bits per coordinate.
    pub step: u8,
}

impl HashBits {
    /// True for the "zero" cell Redis uses to drop a neighbour from a search.
    pub fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash as a 52-bit score prefix (its low bits zero).
    pub fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

/// A closed interval of degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower bound.
    pub min: f64,
    /// Upper bound.
    pub max: f64,
}

/// The rectangle of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Longitudes.
    pub lon: Range,
    /// Latitudes.
    pub lat: Range,
}

/// The ranges stored scores are encoded in.
const LON_RANGE: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Puts bit `i` of `v` at bit `2i`.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & EVEN
}

/// The inverse of [`spread`]: bits `2i` of `v` become bit `i`.
fn squash(v: u64) -> u32 {
    let mut x = v & EVEN;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    x = (x | (x >> 16)) & 0x0000_0000_ffff_ffff;
    x as u32
}

/// Encodes a point in the given ranges with `step` bits per coordinate; None when the point
/// is outside Redis's limits or the ranges.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * cells;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * cells;
    // C converts the offsets to uint32_t (truncation); they are within [0, 2^32).
    Some(HashBits {
        bits: spread(lat_off as u32) | (spread(lon_off as u32) << 1),
        step,
    })
}

/// Encodes a point in the stored-score ranges.
pub fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    encode(LON_RANGE, LAT_RANGE, lon, lat, step)
}

/// The cell of a hash in the given ranges.
pub fn decode(lon_r: Range, lat_r: Range, hash: HashBits) -> Area {
    let lat_i = squash(hash.bits);
    let lon_i = squash(hash.bits >> 1);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    // The `+ 1` wraps in 32 bits, as the C arithmetic on uint32_t does.
    Area {
        lat: Range {
            min: lat_r.min + (f64::from(lat_i) / cells) * lat_scale,
            max: lat_r.min + (f64::from(lat_i.wrapping_add(1)) / cells) * lat_scale,
        },
        lon: Range {
            min: lon_r.min + (f64::from(lon_i) / cells) * lon_scale,
            max: lon_r.min + (f64::from(lon_i.wrapping_add(1)) / cells) * lon_scale,
        },
    }
}

/// The cell of a hash in the stored-score ranges.
pub fn decode_wgs84(hash: HashBits) -> Area {
    decode(LON_RANGE, LAT_RANGE, hash)
}

/// C's `(uint64_t)d` as GCC compiles it for x86-64 (out-of-range values give what the
/// `cvttsd2si` sequence gives, not Rust's saturation): a zset member's score may be any
/// double, and GEOPOS must decode it as Redis does.
pub fn c_double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (c_double_to_i64(d - TWO63) as u64) ^ (1 << 63)
    } else {
        c_double_to_i64(d) as u64
    }
}

/// C's `(long long)d` on x86-64 (`cvttsd2si`): out of range or NaN gives `i64::MIN`.
pub fn c_double_to_i64(d: f64) -> i64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO63..TWO63).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// The longitude and latitude a stored score stands for: the centre of its cell, clamped to
/// the limits.
pub fn decode_score(score: f64) -> (f64, f64) {
    let area = decode_wgs84(HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    });
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The score stored for a point (valid coordinates).
pub fn encode_score(lon: f64, lat: f64) -> u64 {
    encode_wgs84(lon, lat, STEP_MAX)
        .map(HashBits::align52)
        .unwrap_or(0)
}

/// The standard 11-character base32 geohash of a stored score (GEOHASH): decoded, then
/// encoded again over latitudes -90..90 as the standard does. The 11th character stands for
/// bits Redis does not have and is always `0`.
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score);
    let std_lon = Range {
        min: -180.0,
        max: 180.0,
    };
    let std_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    let bits = encode(std_lon, std_lat, lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    out
}

/// Moves a hash one cell along the longitude (`d` > 0: east), wrapping around.
fn move_x(h: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(h.step) * 2;
    let mut x = h.bits & ODD;
    let y = h.bits & EVEN;
    let zz = EVEN >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= ODD >> shift;
    h.bits = x | y;
}

/// Moves a hash one cell along the latitude (`d` > 0: north), wrapping around.
fn move_y(h: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(h.step) * 2;
    let x = h.bits & ODD;
    let mut y = h.bits & EVEN;
    let zz = ODD >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= EVEN >> shift;
    h.bits = x | y;
}

fn moved(h: HashBits, dx: i8, dy: i8) -> HashBits {
    let mut n = h;
    move_x(&mut n, dx);
    move_y(&mut n, dy);
    n
}

/// The step (bits per coordinate) whose cells are about the size of a search radius.
pub fn estimate_steps(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    // Cells narrow towards the poles.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// What a search covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShapeKind {
    /// A circle of this radius (in the unit).
    Radius(f64),
    /// An axis-aligned box of this width and height (in the unit).
    Box {
        /// East-west size.
        width: f64,
        /// North-south size.
        height: f64,
    },
}

/// A search area: its centre, size and the unit's size in meters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Longitude of the centre.
    pub lon: f64,
    /// Latitude of the centre.
    pub lat: f64,
    /// Meters per unit.
    pub conversion: f64,
    /// Circle or box.
    pub kind: ShapeKind,
}

impl Shape {
    /// `[min_lon, min_lat, max_lon, max_lat]` around the shape. A box is wider on its side
    /// nearer a pole, so the longitude span is taken there.
    pub fn bounding_box(&self) -> [f64; 4] {
        let (half_h, half_w) = match self.kind {
            ShapeKind::Radius(r) => (r, r),
            ShapeKind::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let height = self.conversion * half_h;
        let width = self.conversion * half_w;
        let lat_delta = height / EARTH_RADIUS_M / D_R;
        let lon_delta_top = width / EARTH_RADIUS_M / ((self.lat + lat_delta) * D_R).cos() / D_R;
        let lon_delta_bottom = width / EARTH_RADIUS_M / ((self.lat - lat_delta) * D_R).cos() / D_R;
        let lon_delta = if self.lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            self.lon - lon_delta,
            self.lat - lat_delta,
            self.lon + lon_delta,
            self.lat + lat_delta,
        ]
    }

    /// The cells to scan, in Redis's order: the centre's cell, then north, south, east,
    /// west, north-east, north-west, south-east, south-west. A zero cell is skipped.
    pub fn search_cells(&self) -> [HashBits; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let radius_m = match self.kind {
            ShapeKind::Radius(r) => r,
            ShapeKind::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.conversion;
        let mut steps = estimate_steps(radius_m, self.lat);
        let cell = |steps| {
            let h = encode_wgs84(self.lon, self.lat, steps).unwrap_or(HashBits {
                bits: 0,
                step: steps,
            });
            (h, decode_wgs84(h))
        };
        let (mut hash, mut area) = cell(steps);
        // A neighbour that does not reach the edge of the bounding box means the cells are
        // too small: one step coarser.
        let decrease = decode_wgs84(moved(hash, 0, 1)).lat.max < max_lat
            || decode_wgs84(moved(hash, 0, -1)).lat.min > min_lat
            || decode_wgs84(moved(hash, 1, 0)).lon.max < max_lon
            || decode_wgs84(moved(hash, -1, 0)).lon.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            (hash, area) = cell(steps);
        }
        let mut n = moved(hash, 0, 1);
        let mut s = moved(hash, 0, -1);
        let mut e = moved(hash, 1, 0);
        let mut w = moved(hash, -1, 0);
        let mut ne = moved(hash, 1, 1);
        let mut nw = moved(hash, -1, 1);
        let mut se = moved(hash, 1, -1);
        let mut sw = moved(hash, -1, -1);
        // Drop the neighbours on a side the centre cell already covers.
        if steps >= 2 {
            let zero = HashBits::default();
            if area.lat.min < min_lat {
                (s, sw, se) = (zero, zero, zero);
            }
            if area.lat.max > max_lat {
                (n, ne, nw) = (zero, zero, zero);
            }
            if area.lon.min < min_lon {
                (w, sw, nw) = (zero, zero, zero);
            }
            if area.lon.max > max_lon {
                (e, se, ne) = (zero, zero, zero);
            }
        }
        [hash, n, s, e, w, ne, nw, se, sw]
    }

    /// The distance (meters) from the centre to a point, when the point is inside.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.kind {
            ShapeKind::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            ShapeKind::Box { width, height } => {
                let (w, h) = (width * self.conversion, height * self.conversion);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

/// The distance along a meridian between two latitudes (meters).
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (lat2 * D_R - lat1 * D_R).abs()
}

/// The haversine great-circle distance between two points (meters).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = lon1 * D_R;
    let lon2r = lon2 * D_R;
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = lat1 * D_R;
    let lat2r = lat2 * D_R;
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0xdead_beef, u32::MAX] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
        assert_eq!(spread(0b1011), 0b1_00_01_01);
    }

    #[test]
    fn palermo_as_redis_stores_it() {
        // Figures from Redis: GEOADD Sicily 13.361389 38.115556 "Palermo" stores this score,
        // GEOHASH answers sqc8b49rny0 and GEOPOS 13.36138933897018433 38.11555639549629859.
        let score = encode_score(13.361389, 38.115556);
        assert_eq!(score, 3479099956230698);
        assert_eq!(&geohash_string(score as f64), b"sqc8b49rny0");
        let (lon, lat) = decode_score(score as f64);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
    }

    #[test]
    fn palermo_catania() {
        let (a, b) = (
            decode_score(encode_score(13.361389, 38.115556) as f64),
            decode_score(encode_score(15.087269, 37.502669) as f64),
        );
        let d = distance(a.0, a.1, b.0, b.1);
        assert_eq!(format!("{d:.4}"), "166274.1516");
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(1e300), 0);
        assert_eq!(c_double_to_u64(9_223_372_036_854_775_808.0), 1 << 63);
        assert_eq!(c_double_to_i64(1e300), i64::MIN);
        assert_eq!(c_double_to_i64(-3.7), -3);
    }

    #[test]
    fn steps() {
        assert_eq!(estimate_steps(0.0, 0.0), 26);
        assert_eq!(estimate_steps(f64::INFINITY, 0.0), 1);
        assert_eq!(estimate_steps(1000.0, 0.0), 14);
        assert_eq!(estimate_steps(1000.0, 70.0), 13);
        assert_eq!(estimate_steps(1000.0, -85.0), 12);
    }

    #[test]
    fn neighbours_wrap() {
        let h = HashBits { bits: 0, step: 2 };
        // West of the first column is the last one.
        let w = moved(h, -1, 0);
        assert_eq!(squash(w.bits >> 1), 3);
        assert_eq!(squash(w.bits), 0);
        let n = moved(h, 0, 1);
        assert_eq!(squash(n.bits), 1);
    }
}
