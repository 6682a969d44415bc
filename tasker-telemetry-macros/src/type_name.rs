//! Types written as text for the catalog, the way a person writes them (`Vec<String>`,
//! `&'static str`), not the way token streams print (`Vec < String >`).

use proc_macro2::TokenStream;

/// `tokens` printed with spaces kept only between two words, and after the keywords `mut`,
/// `dyn`, `impl` and `const` (`&mut [u8]`).
pub(crate) fn compact(tokens: &TokenStream) -> String {
    let printed = tokens.to_string();
    let chars: Vec<char> = printed.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.get(i + 1).copied();
            let start = out.rfind(|c: char| !word(c)).map_or(0, |i| i + 1);
            let after_keyword = matches!(&out[start..], "mut" | "dyn" | "impl" | "const");
            if prev.is_some_and(word) && (next.is_some_and(word) || after_keyword) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `FetchCart` to `fetch_cart`: handler names and handler methods derive from type names.
pub(crate) fn snake_case(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.trim_start_matches("r#").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn prints_types_as_written() {
        assert_eq!(super::compact(&quote!(Vec<String>)), "Vec<String>");
        assert_eq!(super::compact(&quote!(&'static str)), "&'static str");
        assert_eq!(
            super::compact(&quote!(Option<&'a mut [u8]>)),
            "Option<&'a mut [u8]>"
        );
        assert_eq!(super::compact(&quote!(dyn Fn(u8) -> u8)), "dyn Fn(u8)->u8");
    }
}
