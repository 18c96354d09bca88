//! Decoding codis-fe's JSON replies into `codis_model` types, with less code in the bundle.
//!
//! `serde_json::from_str::<T>` accepts a struct written as an object *or* as an array, so
//! every reply type brought two decoders into the `.wasm` (its `visit_map` and its
//! `visit_seq`), each inlined into serde_json's text parser. Here the text is parsed once
//! into a [`Value`] (one parser for every type), and [`Lean`] walks that value: a struct
//! must be an object, so `visit_seq` is never linked for it. The decoded values are the
//! same; only a struct sent as an array (which codis-fe never does) is refused.
//!
//! Enums must be unit variants written as strings (every enum in `codis_model` is); map
//! keys may be strings, integers of up to 64 bits or such enums. A duplicate object key is
//! not an error here (the last one wins, as in `serde_json::Value`); codis-fe sends none.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::{Error, Value};

/// Parses `text` as JSON and decodes it into `T`.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    let value: Value = serde_json::from_str(text)?;
    T::deserialize(Lean(value))
}

/// A parsed JSON value being decoded.
struct Lean(Value);

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Lean {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(a) => visitor.visit_seq(Items(a.into_iter())),
            Value::Object(m) => visitor.visit_map(Entries {
                entries: m.into_iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(Lean(v)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(a) => visitor.visit_seq(Items(a.into_iter())),
            v => Err(de::Error::invalid_type(unexpected(&v), &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(m) => visitor.visit_map(Entries {
                entries: m.into_iter(),
                value: None,
            }),
            v => Err(de::Error::invalid_type(unexpected(&v), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            v => Err(de::Error::invalid_type(unexpected(&v), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

/// An array's items.
struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(Lean(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// An object's entries.
struct Entries {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Key(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self.value.take().unwrap_or(Value::Null);
        seed.deserialize(Lean(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An object's key: a string, or a number written as one (`{"5": 2}` for a map by slot).
struct Key(String);

impl Key {
    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Ok(u) = self.0.parse::<u64>() {
            visitor.visit_u64(u)
        } else if let Ok(i) = self.0.parse::<i64>() {
            visitor.visit_i64(i)
        } else {
            Err(de::Error::invalid_type(
                de::Unexpected::Str(&self.0),
                &visitor,
            ))
        }
    }
}

/// `deserialize_<int>` methods of [`Key`] that parse the key's text as a number.
macro_rules! integer_keys {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.number(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for Key {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    integer_keys!(
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
    );

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        bool i128 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codis_model::fe::{ProductDetail, Role, TokenCreated, TokenInfo, change::RebalancePlan};
    use codis_model::topom::TopomOverview;
    use serde::Serialize;

    /// Decodes `v`'s JSON both ways and checks they agree with `v`.
    fn same<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
        let text = serde_json::to_string(v).unwrap();
        let lean: T = from_str(&text).unwrap();
        let full: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&lean, v, "{text}");
        assert_eq!(lean, full);
    }

    #[test]
    fn model_replies_decode_as_serde_json_does() {
        let mut detail = ProductDetail::default();
        detail.summary.name = "alpha".into();
        let mut topom = TopomOverview {
            config: serde_json::json!({"product_name": "alpha", "n": [1, -2, 3.5, null]}),
            ..Default::default()
        };
        topom.model.product_name = "alpha".into();
        detail.topom = Some(topom);
        same(&detail);
        same(&RebalancePlan {
            plan: [(0, 1), (511, 2), (1023, -1)].into(),
        });
        same(&TokenCreated {
            token: "secret".into(),
            info: TokenInfo {
                id: 7,
                name: "ci".into(),
                role: Role::Operator,
                products: vec!["alpha".into()],
                created_by: "admin".into(),
                created_at: 1,
                revoked_at: None,
            },
        });
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        assert!(from_str::<RebalancePlan>(r#"[{"0":1}]"#).is_err());
        assert!(from_str::<RebalancePlan>(r#"{"plan":{"x":1}}"#).is_err());
        assert!(from_str::<Role>(r#""root""#).is_err());
        assert!(from_str::<Role>(r#"{"admin":null}"#).is_err());
        assert!(from_str::<TokenInfo>(r#"{"id":"7"}"#).is_err());
        assert!(from_str::<Vec<i64>>("[1,").is_err());
        assert_eq!(from_str::<Option<i64>>("null").unwrap(), None);
        assert_eq!(from_str::<u8>("255").unwrap(), 255);
        assert!(from_str::<u8>("256").is_err());
        let by_role: std::collections::BTreeMap<Role, u16> =
            from_str(r#"{"admin":1,"viewer":2}"#).unwrap();
        assert_eq!(by_role[&Role::Admin], 1);
        let small: std::collections::BTreeMap<u8, i8> = from_str(r#"{"5":-1}"#).unwrap();
        assert_eq!(small[&5], -1);
    }
}
