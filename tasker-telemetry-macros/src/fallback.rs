//! What a macro emits beside its errors (thiserror's `fallback.rs`): the user's item unchanged and
//! the trait impl it would have generated, with `unreachable!()` bodies, so that a later use of
//! the type (`workflow.handler(MyStep)`, `publisher.subscribe(.., MySubscriber)`) raises no
//! second error.

use proc_macro2::TokenStream;
use quote::quote;

/// A `StepHandler` impl for `self_ty`.
pub(crate) fn step_handler(
    krate: &syn::Path,
    generics: &syn::Generics,
    self_ty: &TokenStream,
) -> TokenStream {
    let generics = crate::step_handler::handler_generics(krate, generics, self_ty);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private_v0_1::StepHandler for #self_ty #where_clause {
            fn name(&self) -> &'static str {
                ::core::unreachable!()
            }

            fn handle<'tasker>(
                &'tasker self,
                _: &'tasker #krate::__private_v0_1::Task,
                _: &'tasker #krate::__private_v0_1::Sequence,
                _: &'tasker #krate::__private_v0_1::Step,
            ) -> #krate::__private_v0_1::Handled<'tasker> {
                ::core::unreachable!()
            }
        }
    }
}

/// A `Subscriber` impl for `self_ty`.
pub(crate) fn subscriber(
    krate: &syn::Path,
    generics: &syn::Generics,
    self_ty: &TokenStream,
) -> TokenStream {
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private_v0_1::Subscriber for #self_ty #where_clause {
            fn on_event(&self, _: &#krate::__private_v0_1::Event<'_>) {
                ::core::unreachable!()
            }
        }
    }
}

/// An `EventPayload` impl for `self_ty`.
pub(crate) fn event_payload(
    krate: &syn::Path,
    generics: &syn::Generics,
    self_ty: &TokenStream,
) -> TokenStream {
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private_v0_1::EventPayload for #self_ty #where_clause {
            const NAME: &'static str = "";

            fn event_name() -> ::core::option::Option<#krate::__private_v0_1::EventName> {
                ::core::unreachable!()
            }
        }
    }
}
