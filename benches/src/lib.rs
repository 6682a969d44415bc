//! Benchmarks live beside this crate as `[[bench]]` targets; this library is empty.
