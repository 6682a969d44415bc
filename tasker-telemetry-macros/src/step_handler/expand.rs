//! The generated `StepHandler` implementation (a short `handle()` calling the runtime's
//! `instrument` / `instrument_async`) and the catalog registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Item, ItemFn, ItemImpl};

use super::validate::{Context, Form, Plan};

pub(crate) fn expand(item: &Item, plan: &Plan) -> TokenStream {
    match (item, &plan.form) {
        (Item::Impl(block), Form::Impl) => expand_impl(block, plan),
        (Item::Fn(function), Form::Function { type_name }) => expand_fn(function, type_name, plan),
        // validate() pairs each form with its item kind.
        _ => quote!(#item),
    }
}

fn expand_impl(block: &ItemImpl, plan: &Plan) -> TokenStream {
    let self_ty = &block.self_ty;
    let mut generics = block.generics.clone();
    if !generics.params.is_empty() {
        // `StepHandler: Send + Sync + 'static`: a generic handler is one where its arguments
        // make it so, checked where a concrete handler is used rather than here.
        generics.make_where_clause().predicates.push(
            syn::parse_quote!(#self_ty: ::core::marker::Send + ::core::marker::Sync + 'static),
        );
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let call = quote!(self.process);
    let handler = handler_impl(
        plan,
        quote!(#impl_generics),
        quote!(#self_ty),
        quote!(#where_clause),
        call,
    );
    let registration = registration(plan, &crate::type_name::compact(&quote!(#self_ty)));
    quote! {
        #block
        #handler
        #registration
    }
}

fn expand_fn(function: &ItemFn, type_name: &syn::Ident, plan: &Plan) -> TokenStream {
    let vis = &function.vis;
    let fn_name = &function.sig.ident;
    let doc = format!("The step handler `#[step_handler]` generated from [`{fn_name}`].");
    let call = quote!(#fn_name);
    let handler = handler_impl(
        plan,
        TokenStream::new(),
        quote!(#type_name),
        TokenStream::new(),
        call,
    );
    let registration = registration(plan, &type_name.to_string());
    quote! {
        #function

        #[doc = #doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #type_name;

        #handler
        #registration
    }
}

fn handler_impl(
    plan: &Plan,
    impl_generics: TokenStream,
    self_ty: TokenStream,
    where_clause: TokenStream,
    process: TokenStream,
) -> TokenStream {
    let krate = &plan.krate;
    let name = &plan.name;
    let retry_limit = match plan.retry_limit {
        Some(n) => quote!(#krate::__private_v0_1::Option::Some(#n)),
        None => quote!(#krate::__private_v0_1::Option::None),
    };
    let args = plan.params.iter().map(|c| match c {
        Context::Task => quote!(task),
        Context::Sequence => quote!(sequence),
        Context::Step => quote!(step),
    });
    let uses = |c: fn(&Context) -> bool| plan.params.iter().any(c);
    let task = if uses(|c| matches!(c, Context::Task)) {
        quote!(task)
    } else {
        quote!(_task)
    };
    let sequence = if uses(|c| matches!(c, Context::Sequence)) {
        quote!(sequence)
    } else {
        quote!(_sequence)
    };
    // Spanned at the user's return type: a `T` that is not `Serialize` or an `E` that is not an
    // error is reported there.
    let span = plan.output_span;
    let to_step_error = respan(
        quote! {
            |error| {
                #[allow(unused_imports)]
                use #krate::__private_v0_1::error_kinds::*;
                // The borrows choose the conversion (handler/error_kind.rs); none is needless.
                #[allow(clippy::needless_borrow)]
                let error = (&&&#krate::__private_v0_1::ErrorKind(&error)).to_step_error();
                error
            }
        },
        span,
    );
    let body = match plan.async_span {
        Some(async_span) => {
            let instrument = respan(quote!(#krate::__private_v0_1::instrument_async), span);
            let call = quote_spanned!(span=> #instrument(&INFO, step, #process(#(#args),*), #to_step_error));
            // Boxed as `dyn Future + Send` here, at the user's `async`, so a value held across an
            // `.await` that is not `Send` is reported at the user's code and nowhere else.
            let pin = respan(quote!(#krate::__private_v0_1::Box::pin), async_span);
            let mut call = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, call);
            call.set_span(async_span);
            quote!(#krate::__private_v0_1::Handled::from_boxed(#pin #call))
        }
        None => {
            let instrument = respan(quote!(#krate::__private_v0_1::instrument), span);
            quote_spanned!(span=> #instrument(&INFO, step, || #process(#(#args),*), #to_step_error))
        }
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private_v0_1::StepHandler for #self_ty #where_clause {
            fn name(&self) -> &'static str {
                #name
            }

            fn retry_limit(&self) -> #krate::__private_v0_1::Option<u32> {
                #retry_limit
            }

            fn handle<'tasker>(
                &'tasker self,
                #task: &'tasker #krate::__private_v0_1::Task,
                #sequence: &'tasker #krate::__private_v0_1::Sequence,
                step: &'tasker #krate::__private_v0_1::Step,
            ) -> #krate::__private_v0_1::Handled<'tasker> {
                const INFO: #krate::__private_v0_1::HandlerInfo =
                    #krate::__private_v0_1::HandlerInfo { name: #name, retry_limit: #retry_limit };
                #body
            }
        }
    }
}

fn registration(plan: &Plan, type_name: &str) -> TokenStream {
    let krate = &plan.krate;
    let name = &plan.name;
    let retry_limit = match plan.retry_limit {
        Some(n) => quote!(#krate::__private_v0_1::Option::Some(#n)),
        None => quote!(#krate::__private_v0_1::Option::None),
    };
    let objective = match plan.objective_nanos {
        Some(n) => quote!(#krate::__private_v0_1::Option::Some(
            #krate::__private_v0_1::Duration::from_nanos(#n)
        )),
        None => quote!(#krate::__private_v0_1::Option::None),
    };
    quote! {
        #krate::__private_v0_1::inventory::submit! {
            #krate::__private_v0_1::HandlerDescriptor {
                name: #name,
                type_path: ::core::concat!(::core::module_path!(), "::", #type_name),
                retry_limit: #retry_limit,
                objective: #objective,
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    }
}

/// The same tokens, all at `span` (so an error about the call lands on the user's tokens).
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// The impl's generics, bounded by `StepHandler`'s supertraits: a generic handler is one where
/// its arguments make it `Send + Sync + 'static`, checked where a concrete handler is used.
pub(crate) fn handler_generics(
    krate: &syn::Path,
    generics: &syn::Generics,
    self_ty: &TokenStream,
) -> syn::Generics {
    let mut generics = generics.clone();
    if !generics.params.is_empty() {
        generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(#self_ty: #krate::__private_v0_1::SharedHandler));
    }
    generics
}
