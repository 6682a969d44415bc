//! Compile-pass and compile-fail cases: the public API compiles as documented, and misuse fails
//! with the documented message.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
