//! `#[step_handler]`: parse the arguments and the item (an impl block defining `process`, or a
//! free function), validate the signature, expand to a `StepHandler` implementation and a
//! catalog registration.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_errors(input, e),
    };
    let args = match syn::parse2::<parse::Args>(args) {
        Ok(args) => args,
        Err(e) => return with_errors(input, e),
    };
    match validate::validate(args, &item) {
        Ok(plan) => expand::expand(&item, &plan),
        Err(e) => with_errors(input, e),
    }
}

/// The user's item unchanged plus the errors: one mistake, one error, no cascade.
fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote::quote! { #item #errors }
}
