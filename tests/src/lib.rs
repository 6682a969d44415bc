//! End-to-end tests live beside this crate as `[[test]]` targets; this library is empty.
