//! `#[step_handler]`: parse the arguments and the item (an impl block defining `process`, or a
//! free function), validate the signature, expand to a `StepHandler` implementation and a
//! catalog registration.

mod expand;
mod parse;
mod validate;

pub(crate) use expand::handler_generics;

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_errors(input, None, e),
    };
    let args = match syn::parse2::<parse::Args>(args) {
        Ok(args) => args,
        Err(e) => return with_errors(input, fallback(&item, None), e),
    };
    let krate = args.krate.clone();
    match validate::validate(args, &item) {
        Ok(plan) => expand::expand(&item, &plan),
        Err(e) => with_errors(input, fallback(&item, krate), e),
    }
}

/// The `StepHandler` impl (and, for a free function, the handler type) the item would have had,
/// so that uses of the handler raise no second error.
fn fallback(item: &syn::Item, krate: Option<syn::Path>) -> Option<TokenStream> {
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::tasker_telemetry));
    match item {
        syn::Item::Impl(block) if block.trait_.is_none() => {
            let self_ty = &block.self_ty;
            Some(crate::fallback::step_handler(
                &krate,
                &block.generics,
                &quote!(#self_ty),
            ))
        }
        syn::Item::Fn(function) => {
            let vis = &function.vis;
            let type_name = validate::type_name(&function.sig.ident);
            let handler =
                crate::fallback::step_handler(&krate, &Default::default(), &quote!(#type_name));
            Some(quote! {
                #vis struct #type_name;
                #handler
            })
        }
        _ => None,
    }
}

/// The user's item unchanged plus the errors: one mistake, one error, no cascade.
fn with_errors(item: TokenStream, fallback: Option<TokenStream>, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote! { #item #fallback #errors }
}
