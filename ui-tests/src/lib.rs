//! trybuild cases live in `pass/` and `fail/`, driven by `ui.rs`; this library is empty.
