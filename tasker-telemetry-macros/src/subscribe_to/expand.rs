//! The generated `Subscriber` implementation and catalog registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ItemImpl;

use super::validate::{Matcher, Plan};

pub(crate) fn expand(block: &ItemImpl, plan: &Plan) -> TokenStream {
    let krate = &plan.krate;
    let self_ty = &block.self_ty;
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();

    // Exact names first, then patterns in the order written: an event matched by both goes to
    // its exact handler only.
    let exact = plan
        .routes
        .iter()
        .filter(|r| !matches!(r.matcher, Matcher::Pattern));
    let patterns = plan
        .routes
        .iter()
        .filter(|r| matches!(r.matcher, Matcher::Pattern));
    let arms = exact.chain(patterns).map(|route| {
        let method = &route.method;
        let lit = &route.event;
        let test = match &route.matcher {
            Matcher::Builtin(constant) => quote!(name == #krate::__private_v0_1::names::#constant),
            Matcher::Custom | Matcher::Typed => {
                quote!(#krate::__private_v0_1::is_named(event, #lit))
            }
            Matcher::Pattern => quote!(#krate::__private_v0_1::pattern_matches(#lit, name)),
        };
        // Coerced to the handler signature at the user's `fn` name: a wrong signature is one
        // error there, and the call below cannot fail on its own.
        let handler = quote_spanned! {method.span()=>
            let handler: fn(&Self, &#krate::__private_v0_1::Event<'_>) = Self::#method;
        };
        quote! {
            if #test {
                #handler
                handler(self, event);
                return;
            }
        }
    });

    let registration = plan.register.then(|| {
        let events = plan.routes.iter().map(|r| &r.event);
        let type_name = crate::type_name::compact(&quote!(#self_ty));
        quote! {
            #krate::__private_v0_1::inventory::submit! {
                #krate::__private_v0_1::SubscriberDescriptor {
                    name: #type_name,
                    type_path: ::core::concat!(::core::module_path!(), "::", #type_name),
                    events: &[#(#events),*],
                    file: ::core::file!(),
                    line: ::core::line!(),
                    constructor: ::core::option::Option::Some(#krate::__private_v0_1::construct::<#self_ty>),
                }
            }
        }
    });

    quote! {
        #block

        #[automatically_derived]
        impl #impl_generics #krate::__private_v0_1::Subscriber for #self_ty #where_clause {
            fn on_event(&self, event: &#krate::__private_v0_1::Event<'_>) {
                let name = #krate::__private_v0_1::Event::name(event);
                #(#arms)*
                let _ = name;
            }
        }

        #registration
    }
}
