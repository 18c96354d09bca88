//! Values held in the keyspace and the compact byte string they are built from.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::zset::ZSet;

/// Bytes stored inline up to this length (no heap allocation for short keys and values).
pub const INLINE_CAP: usize = 22;

/// Strings of at least this many bytes are reference-counted ([`SmallBytes::Shared`]): a
/// background save takes them without copying, so no lock hold is proportional to a big
/// string's size.
pub const SHARED_MIN: usize = 64 * 1024;

/// A byte string of 24 bytes that stores up to [`INLINE_CAP`] bytes inline and longer ones in
/// one exact-size heap allocation. Keys, string values and collection members all use it, so a
/// typical small key costs no allocation of its own.
#[derive(Clone)]
pub enum SmallBytes {
    /// Short data, stored in place.
    Inline {
        /// Number of bytes used in `buf`.
        len: u8,
        /// The bytes (only `..len` is meaningful).
        buf: [u8; INLINE_CAP],
    },
    /// Longer data, on the heap.
    Heap(Box<[u8]>),
    /// Data of [`SHARED_MIN`] bytes or more, reference-counted: a clone shares it; a change
    /// in place copies it first if a clone is still held.
    Shared(std::sync::Arc<Vec<u8>>),
}

impl SmallBytes {
    /// Copies `data`.
    pub fn new(data: &[u8]) -> Self {
        if data.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..data.len()].copy_from_slice(data);
            SmallBytes::Inline {
                len: data.len() as u8,
                buf,
            }
        } else if data.len() >= SHARED_MIN {
            SmallBytes::Shared(Arc::new(data.to_vec()))
        } else {
            SmallBytes::Heap(data.into())
        }
    }

    /// Takes ownership of a vector (inlined when short).
    pub fn from_vec(v: Vec<u8>) -> Self {
        if v.len() <= INLINE_CAP {
            Self::new(&v)
        } else if v.len() >= SHARED_MIN {
            SmallBytes::Shared(Arc::new(v))
        } else {
            SmallBytes::Heap(v.into_boxed_slice())
        }
    }

    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..*len as usize],
            SmallBytes::Heap(b) => b,
            SmallBytes::Shared(b) => b,
        }
    }

    /// The bytes, for a change in place (a shared string is copied first if a clone, a
    /// background save's, still holds it).
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        match self {
            SmallBytes::Inline { len, buf } => &mut buf[..*len as usize],
            SmallBytes::Heap(b) => b,
            SmallBytes::Shared(b) => Arc::make_mut(b).as_mut_slice(),
        }
    }

    /// The bytes as a vector that can grow (no copy for an unshared heap string).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            SmallBytes::Heap(b) => b.into_vec(),
            SmallBytes::Shared(b) => Arc::unwrap_or_clone(b),
            other => other.to_vec(),
        }
    }

    /// The bytes as a vector with room for `extra` more, copied once at most (a shared
    /// string still referenced elsewhere, by a reply being written for one, is copied into
    /// a vector of the final size, not cloned and then grown).
    pub fn into_vec_with_room(self, extra: usize) -> Vec<u8> {
        let copy = |b: &[u8]| {
            let mut v = Vec::with_capacity(b.len() + extra);
            v.extend_from_slice(b);
            v
        };
        match self {
            SmallBytes::Shared(b) => match Arc::try_unwrap(b) {
                Ok(mut v) => {
                    v.reserve(extra);
                    v
                }
                Err(b) => copy(&b),
            },
            SmallBytes::Heap(b) => {
                let mut v = b.into_vec();
                v.reserve(extra);
                v
            }
            other => copy(&other),
        }
    }

    /// Heap bytes owned beyond the 24-byte struct itself.
    pub fn heap_size(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(b) => b.len(),
            SmallBytes::Shared(b) => b.len(),
        }
    }

    /// Copies the bytes into a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl std::ops::Deref for SmallBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like `[u8]` so that lookups by `&[u8]` work.
        self.as_bytes().hash(state)
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for SmallBytes {}

impl PartialOrd for SmallBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SmallBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(v: &[u8]) -> Self {
        SmallBytes::new(v)
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(v: Vec<u8>) -> Self {
        SmallBytes::from_vec(v)
    }
}

/// Hasher for every map in the store: fast, seeded per map.
pub type BuildHasher = foldhash::fast::RandomState;
/// An insertion-ordered hash map (stable positions make SCAN cursors and random picks cheap).
pub type Map<K, V> = indexmap::IndexMap<K, V, BuildHasher>;
/// An insertion-ordered hash set.
pub type Set<K> = indexmap::IndexSet<K, BuildHasher>;

/// A hash value: field → value, in insertion order (as Redis's listpack keeps small hashes).
/// Derefs to the map.
#[derive(Debug, Clone, Default)]
pub struct HashValue {
    /// The fields.
    pub map: Map<SmallBytes, SmallBytes>,
    /// True once Redis would have converted it from listpack to hashtable (a one-way change:
    /// OBJECT ENCODING reports it; small hashes keep insertion order while false).
    pub hashtable: bool,
}

impl std::ops::Deref for HashValue {
    type Target = Map<SmallBytes, SmallBytes>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for HashValue {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

/// A set value. Derefs to the set.
#[derive(Debug, Clone, Default)]
pub struct SetValue {
    /// The members.
    pub set: Set<SmallBytes>,
    /// True once Redis would have converted it from intset to hashtable (one-way).
    pub hashtable: bool,
}

impl std::ops::Deref for SetValue {
    type Target = Set<SmallBytes>;
    fn deref(&self) -> &Self::Target {
        &self.set
    }
}

impl std::ops::DerefMut for SetValue {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.set
    }
}
/// A list value.
pub type ListValue = VecDeque<SmallBytes>;

/// A collection held by a [`Value`]: shared copy-on-write. Cloning is a reference-count
/// bump (a background save takes its point-in-time copy of a slot that way, under the lock,
/// and serialises it outside); the first mutable access while a copy is held clones the
/// collection (`Arc::make_mut`), so the writer pays for the one value it changes. Derefs to
/// the collection; with no copy held, a mutable access costs one uncontended atomic.
#[derive(Default)]
pub struct CowArc<T>(Arc<T>);

impl<T> CowArc<T> {
    /// Wraps `v`.
    pub fn new(v: T) -> Self {
        CowArc(Arc::new(v))
    }

    /// The collection, cloned only if a copy is still held elsewhere.
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.0)
    }

    /// True while another copy (a save's snapshot) shares the collection.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// True when both are the same allocation (one shared collection).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> Clone for CowArc<T> {
    fn clone(&self) -> Self {
        CowArc(self.0.clone())
    }
}

impl<T> std::ops::Deref for CowArc<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for CowArc<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for CowArc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A value stored under a key.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string (also integers, bitmaps and HyperLogLogs).
    Str(SmallBytes),
    /// A list.
    List(CowArc<ListValue>),
    /// A hash.
    Hash(CowArc<HashValue>),
    /// A set.
    Set(CowArc<SetValue>),
    /// A sorted set.
    ZSet(CowArc<ZSet>),
}

impl Value {
    /// The type name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// A new empty list.
    pub fn new_list() -> Value {
        Value::List(CowArc::default())
    }

    /// A new empty hash.
    pub fn new_hash() -> Value {
        Value::Hash(CowArc::default())
    }

    /// A new empty set.
    pub fn new_set() -> Value {
        Value::Set(CowArc::default())
    }

    /// A new empty sorted set.
    pub fn new_zset() -> Value {
        Value::ZSet(CowArc::default())
    }

    /// Number of elements of a collection (1 for a string).
    pub fn len(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
        }
    }

    /// True for an empty collection (such a key must be deleted).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Str(_) => false,
            _ => self.len() == 0,
        }
    }

    /// A rough estimate of the heap bytes this value owns, in constant time (capacity times
    /// an entry's size; long members are not counted): what a background save keeps.
    pub fn approx_size(&self) -> usize {
        const SB: usize = std::mem::size_of::<SmallBytes>();
        match self {
            Value::Str(s) => s.heap_size(),
            Value::List(l) => l.capacity() * SB,
            Value::Hash(h) => h.capacity() * (2 * SB + 8 + 9),
            Value::Set(s) => s.capacity() * (SB + 8 + 9),
            Value::ZSet(z) => z.len() * (2 * SB + 48),
        }
    }

    /// [`Value::approx_size`] for a value a clone shares by reference (a collection or a
    /// [`SmallBytes::Shared`] string), 0 for one a clone copies.
    pub fn shared_size(&self) -> usize {
        match self {
            Value::Str(SmallBytes::Shared(_))
            | Value::List(_)
            | Value::Hash(_)
            | Value::Set(_)
            | Value::ZSet(_) => self.approx_size(),
            Value::Str(_) => 0,
        }
    }

    /// True while another clone shares this value's allocation.
    pub fn is_shared(&self) -> bool {
        match self {
            Value::Str(SmallBytes::Shared(b)) => Arc::strong_count(b) > 1,
            Value::Str(_) => false,
            Value::List(c) => c.is_shared(),
            Value::Hash(c) => c.is_shared(),
            Value::Set(c) => c.is_shared(),
            Value::ZSet(c) => c.is_shared(),
        }
    }

    /// True when both values are one shared allocation.
    pub fn same_alloc(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Str(SmallBytes::Shared(a)), Value::Str(SmallBytes::Shared(b))) => {
                Arc::ptr_eq(a, b)
            }
            (Value::List(a), Value::List(b)) => CowArc::ptr_eq(a, b),
            (Value::Hash(a), Value::Hash(b)) => CowArc::ptr_eq(a, b),
            (Value::Set(a), Value::Set(b)) => CowArc::ptr_eq(a, b),
            (Value::ZSet(a), Value::ZSet(b)) => CowArc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// An estimate of the heap bytes this value owns (MEMORY USAGE, eviction accounting).
    pub fn heap_size(&self) -> usize {
        const SB: usize = std::mem::size_of::<SmallBytes>();
        match self {
            Value::Str(s) => s.heap_size(),
            Value::List(l) => l.capacity() * SB + l.iter().map(|e| e.heap_size()).sum::<usize>(),
            Value::Hash(h) => {
                h.capacity() * (2 * SB + 8 + 9)
                    + h.iter()
                        .map(|(k, v)| k.heap_size() + v.heap_size())
                        .sum::<usize>()
            }
            Value::Set(s) => {
                s.capacity() * (SB + 8 + 9) + s.iter().map(|e| e.heap_size()).sum::<usize>()
            }
            Value::ZSet(z) => z.heap_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_compact() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn inline_and_heap() {
        let a = SmallBytes::new(b"short");
        assert!(matches!(a, SmallBytes::Inline { .. }));
        let b = SmallBytes::new(&[7u8; 40]);
        assert!(matches!(b, SmallBytes::Heap(_)));
        let mut big = SmallBytes::new(&vec![1u8; SHARED_MIN]);
        assert!(matches!(big, SmallBytes::Shared(_)));
        let copy = big.clone();
        big.as_mut_bytes()[0] = 2;
        assert_eq!(copy[0], 1, "a change in place must not show in a clone");
        assert_eq!(big[0], 2);
        assert_eq!(b.len(), 40);
        let mut m: Map<SmallBytes, u32> = Map::default();
        m.insert(a, 1);
        assert_eq!(m.get(&b"short"[..]), Some(&1));
    }
}
