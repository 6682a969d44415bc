//! Whether a step's results serialise, learned without building them.
//!
//! A hand-written attempt's results are turned into a JSON value only when a `step.completed`
//! subscriber will receive them. Without one, their `Serialize` still runs, through
//! [`check`], so that a results type that fails or panics fails the attempt whoever listens:
//! the serializer here keeps nothing and formats nothing, and refuses exactly what
//! `serde_json::to_value` refuses (a map key that is not a string, a non-finite float key, a
//! 128-bit integer out of JSON's range), so both paths judge a value the same.

use std::fmt::Display;

use serde::ser::{self, Serialize};

/// Runs `value`'s `Serialize`, keeping nothing; the error is what the value (or a rule of
/// `serde_json::to_value`) said.
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) -> Result<(), Refused> {
    // Bounded as `to_value` is on the other path: a value nested deeper than any stack allows
    // is judged down to the filter's depth.
    value.serialize(crate::filter::Bounded::new(
        Discard,
        crate::filter::Past::Masked,
    ))
}

/// Why a value could not be serialised.
#[derive(Debug)]
pub(crate) struct Refused(String);

impl Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<M: Display>(msg: M) -> Self {
        Refused(msg.to_string())
    }
}

fn refuse(message: &str) -> Refused {
    Refused(message.to_owned())
}

/// The serializer that keeps nothing.
struct Discard;

/// As `serde_json::to_value`: a 128-bit integer must fit an `i64` or a `u64`.
fn in_json_range(fits: bool) -> Result<(), Refused> {
    if fits {
        Ok(())
    } else {
        Err(refuse("number out of range"))
    }
}

/// Serializer methods for scalars that are accepted as they are.
macro_rules! accept_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Result<(), Refused> {
            Ok(())
        }
    )*};
}

impl ser::Serializer for Discard {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Discard;
    type SerializeTuple = Discard;
    type SerializeTupleStruct = Discard;
    type SerializeTupleVariant = Discard;
    type SerializeMap = Discard;
    type SerializeStruct = Discard;
    type SerializeStructVariant = Discard;

    accept_scalars!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8]);

    fn serialize_i128(self, v: i128) -> Result<(), Refused> {
        in_json_range(i64::try_from(v).is_ok() || u64::try_from(v).is_ok())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Refused> {
        in_json_range(u64::try_from(v).is_ok())
    }
    fn serialize_none(self) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Discard, Refused> {
        Ok(Discard)
    }
    fn serialize_tuple(self, _: usize) -> Result<Discard, Refused> {
        Ok(Discard)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Discard, Refused> {
        Ok(Discard)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Discard, Refused> {
        Ok(Discard)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Discard, Refused> {
        Ok(Discard)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Discard, Refused> {
        Ok(Discard)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Discard, Refused> {
        Ok(Discard)
    }
}

/// The compound parts of a value: each element or field goes through [`Discard`] in turn.
macro_rules! discard_elements {
    ($($trait:ident::$method:ident),* $(,)?) => {$(
        impl ser::$trait for Discard {
            type Ok = ();
            type Error = Refused;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
                value.serialize(Discard)
            }
            fn end(self) -> Result<(), Refused> {
                Ok(())
            }
        }
    )*};
}

discard_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// The named fields of a struct or struct variant.
macro_rules! discard_fields {
    ($($trait:ident),* $(,)?) => {$(
        impl ser::$trait for Discard {
            type Ok = ();
            type Error = Refused;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                value: &T,
            ) -> Result<(), Refused> {
                value.serialize(Discard)
            }
            fn end(self) -> Result<(), Refused> {
                Ok(())
            }
        }
    )*};
}

discard_fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Discard {
    type Ok = ();
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        key.serialize(MapKey)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        value.serialize(Discard)
    }
    fn end(self) -> Result<(), Refused> {
        Ok(())
    }
}

/// A map key: what `serde_json` turns into an object key (text, numbers, bools, chars, unit
/// variants) is accepted, the rest refused with `serde_json`'s words.
struct MapKey;

fn key_must_be_a_string() -> Refused {
    refuse("key must be a string")
}

fn finite_key(finite: bool) -> Result<(), Refused> {
    if finite {
        Ok(())
    } else {
        Err(refuse("float key must be finite (got NaN or +/-inf)"))
    }
}

impl ser::Serializer for MapKey {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = ser::Impossible<(), Refused>;
    type SerializeTuple = ser::Impossible<(), Refused>;
    type SerializeTupleStruct = ser::Impossible<(), Refused>;
    type SerializeTupleVariant = ser::Impossible<(), Refused>;
    type SerializeMap = ser::Impossible<(), Refused>;
    type SerializeStruct = ser::Impossible<(), Refused>;
    type SerializeStructVariant = ser::Impossible<(), Refused>;

    accept_scalars!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char, serialize_str: &str);

    fn serialize_f32(self, v: f32) -> Result<(), Refused> {
        finite_key(v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Refused> {
        finite_key(v.is_finite())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Refused> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Refused> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    /// Both judges of a value: `serde_json::to_value`, and [`super::check`].
    fn judged_alike<T: Serialize>(value: &T) -> Option<String> {
        let json = serde_json::to_value(value).err().map(|e| e.to_string());
        let check = super::check(value).err().map(|e| e.to_string());
        assert_eq!(json, check, "serde_json and the check disagree");
        check
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        Unit,
        Newtype(u8),
    }

    struct Fails;

    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no results today"))
        }
    }

    #[test]
    fn accepts_and_refuses_what_serde_json_does() {
        assert_eq!(judged_alike(&1u64), None);
        assert_eq!(
            judged_alike(&serde_json::json!({"a": [1, null, "x"]})),
            None
        );
        assert_eq!(judged_alike(&Some(vec![(1, "a")])), None);
        assert_eq!(judged_alike(&BTreeMap::from([(1u8, 2u8)])), None);
        assert_eq!(judged_alike(&BTreeMap::from([(Key::Unit, 1)])), None);
        assert_eq!(judged_alike(&BTreeMap::from([(true, 1)])), None);
        assert_eq!(judged_alike(&BTreeMap::from([('c', 1)])), None);
        assert_eq!(judged_alike(&u128::from(u64::MAX)), None);
        assert_eq!(judged_alike(&i128::from(i64::MIN)), None);
        assert_eq!(judged_alike(&f64::NAN), None);

        let refused = [
            judged_alike(&Fails),
            judged_alike(&vec![Some(Fails)]),
            judged_alike(&BTreeMap::from([(vec![1], 1)])),
            judged_alike(&BTreeMap::from([(Key::Newtype(1), 1)])),
            judged_alike(&BTreeMap::from([((), 1)])),
            judged_alike(&u128::MAX),
            judged_alike(&i128::MIN),
        ];
        assert!(refused.iter().all(Option::is_some), "{refused:?}");
        assert_eq!(refused[0].as_deref(), Some("no results today"));
    }

    #[test]
    fn a_non_finite_float_key_is_refused_as_serde_json_refuses_it() {
        #[derive(Serialize)]
        struct FloatKeys(#[serde(serialize_with = "float_keys")] ());
        fn float_keys<S: serde::Serializer>(_: &(), s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(&f64::INFINITY, &1)?;
            map.end()
        }
        assert!(judged_alike(&FloatKeys(())).is_some());
    }
}
