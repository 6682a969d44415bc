//! Examples live beside this crate as `[[example]]` targets; this library is empty.

/// README.md's examples, compiled and run as doc-tests here, where the features they show
/// (`anyhow`, `http`) are on whichever package is being tested.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
