//! `#[subscribe_to(...)]`: parse the arguments, validate them against the catalog and the impl
//! block, expand to a `Subscriber` implementation and a catalog registration.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_errors(input, None, e),
    };
    let syn::Item::Impl(block) = item else {
        let e = syn::Error::new_spanned(
            &item,
            "#[subscribe_to] goes on an inherent impl block: `#[subscribe_to(\"task.completed\")] impl MySubscriber { fn handle_task_completed(&self, event: &Event<'_>) { .. } }`",
        );
        return with_errors(input, None, e);
    };
    let args = match syn::parse2::<parse::Args>(args) {
        Ok(args) => args,
        Err(e) => return with_errors(block.to_token_stream(), fallback(&block, None), e),
    };
    let krate = args.krate.clone();
    match validate::validate(args, &block) {
        Ok(plan) => expand::expand(&block, &plan),
        Err(e) => with_errors(block.to_token_stream(), fallback(&block, krate), e),
    }
}

/// The `Subscriber` impl the block would have had, so that subscribing the type raises no second
/// error.
fn fallback(block: &syn::ItemImpl, krate: Option<syn::Path>) -> Option<TokenStream> {
    if block.trait_.is_some() {
        return None;
    }
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::tasker_telemetry));
    let self_ty = &block.self_ty;
    Some(crate::fallback::subscriber(
        &krate,
        &block.generics,
        &quote::quote!(#self_ty),
    ))
}

/// The user's item unchanged plus the errors, so that one mistake yields one error and no
/// cascade about a missing item.
fn with_errors(item: TokenStream, fallback: Option<TokenStream>, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote::quote! { #item #fallback #errors }
}
