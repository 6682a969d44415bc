//! A serde adapter that stops a value's `Serialize` at [`MAX_VALUE_DEPTH`](super::MAX_VALUE_DEPTH).
//!
//! A step's results are the user's type, serialised by the user's `Serialize`, which recurses
//! once per level into whatever serializer it is given. Handed this adapter instead, each
//! compound (sequence, map, struct, variant) wraps its elements so that one past the bound is
//! written as [`DEPTH_MASK`](super::DEPTH_MASK) without its `Serialize` being called: the
//! recursion ends there, whatever the value's depth. The filter then cuts the value at the
//! bound proper and counts the cut (the adapter counts nothing, so nothing is counted twice).

use serde::ser::{self, Serialize, Serializer};

use super::{DEPTH_MASK, MAX_VALUE_DEPTH};

/// `inner`, with every value nested deeper than one past the bound written as the mask.
pub(crate) struct Bounded<S> {
    inner: S,
    depth: usize,
    past: Past,
}

/// What becomes of a value past the bound.
#[derive(Clone, Copy)]
pub(crate) enum Past {
    /// Written as [`DEPTH_MASK`]: telemetry's copy.
    Masked,
    /// An error: the work's own results, which must arrive whole or not at all.
    Refused,
}

impl<S> Bounded<S> {
    pub(crate) fn new(inner: S, past: Past) -> Self {
        Self {
            inner,
            depth: 0,
            past,
        }
    }
}

/// The deepest level whose value is serialised as itself: one past the filter's bound, so that
/// the filter still sees (and counts) a cut.
const DEEPEST: usize = MAX_VALUE_DEPTH + 1;

/// A value to serialise one level further down.
struct Guard<'a, T: ?Sized> {
    value: &'a T,
    depth: usize,
    past: Past,
}

impl<T: Serialize + ?Sized> Serialize for Guard<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.depth > DEEPEST {
            return match self.past {
                Past::Masked => serializer.serialize_str(DEPTH_MASK),
                Past::Refused => Err(ser::Error::custom(format_args!(
                    "the value nests deeper than {MAX_VALUE_DEPTH} levels"
                ))),
            };
        }
        self.value.serialize(Bounded {
            inner: serializer,
            depth: self.depth,
            past: self.past,
        })
    }
}

/// A compound being written: the inner serializer's, and the depth of its elements.
pub(crate) struct Compound<C> {
    inner: C,
    depth: usize,
    past: Past,
}

impl<C> Compound<C> {
    fn guard<'a, T: ?Sized>(&self, value: &'a T) -> Guard<'a, T> {
        Guard {
            value,
            depth: self.depth,
            past: self.past,
        }
    }
}

macro_rules! forward_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, value: $ty) -> Result<S::Ok, S::Error> {
            self.inner.$method(value)
        }
    )*};
}

impl<S: Serializer> Bounded<S> {
    /// A value wrapped at the same level (`Some`, a newtype): not a level of its own in JSON.
    fn same<'a, T: ?Sized>(&self, value: &'a T) -> Guard<'a, T> {
        Guard {
            value,
            depth: self.depth,
            past: self.past,
        }
    }
}

impl<S: Serializer> Serializer for Bounded<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward_scalars! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let guard = self.same(value);
        self.inner.serialize_some(&guard)
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let guard = self.same(value);
        self.inner.serialize_newtype_struct(name, &guard)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // `{"variant": value}`: the value is one object deeper.
        let guard = Guard {
            value,
            depth: self.depth + 1,
            past: self.past,
        };
        self.inner
            .serialize_newtype_variant(name, index, variant, &guard)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self.inner.serialize_seq(len)?;
        Ok(Compound {
            inner,
            depth: depth + 1,
            past,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Compound {
            inner,
            depth: depth + 1,
            past,
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Compound {
            inner,
            depth: depth + 1,
            past,
        })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Compound {
            inner,
            depth: depth + 2,
            past,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self.inner.serialize_map(len)?;
        Ok(Compound {
            inner,
            depth: depth + 1,
            past,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Compound {
            inner,
            depth: depth + 1,
            past,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let (depth, past) = (self.depth, self.past);
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Compound {
            inner,
            depth: depth + 2,
            past,
        })
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The compounds whose elements come one at a time: each element through a [`Guard`].
macro_rules! guard_elements {
    ($($compound:ident::$method:ident),* $(,)?) => {$(
        impl<C: ser::$compound> ser::$compound for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                let guard = self.guard(value);
                self.inner.$method(&guard)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

guard_elements! {
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
}

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let guard = self.guard(key);
        self.inner.serialize_key(&guard)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let guard = self.guard(value);
        self.inner.serialize_value(&guard)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

/// The compounds whose fields are named: each field's value through a [`Guard`].
macro_rules! guard_fields {
    ($($compound:ident),* $(,)?) => {$(
        impl<C: ser::$compound> ser::$compound for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), C::Error> {
                let guard = self.guard(value);
                self.inner.serialize_field(key, &guard)
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.inner.skip_field(key)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

guard_fields! { SerializeStruct, SerializeStructVariant }
