//! `#[derive(Event)]`: a custom event's payload struct. Parse the `#[event(...)]` attribute and
//! doc comments, check the naming rules, expand to `EventPayload` and a catalog declaration.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::ctxt::Ctxt;
use crate::{catalog_names, rules};

struct Attrs {
    name: Option<LitStr>,
    description: Option<LitStr>,
    krate: Option<syn::Path>,
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    match derive(&input) {
        Ok(tokens) => tokens,
        Err(e) => {
            let krate = crate_path(&input);
            let ident = &input.ident;
            let fallback = crate::fallback::event_payload(&krate, &input.generics, &quote!(#ident));
            let errors = e.to_compile_error();
            quote!(#errors #fallback)
        }
    }
}

/// The `crate = path` argument, where it can be read, else `::tasker_telemetry`.
fn crate_path(input: &DeriveInput) -> syn::Path {
    parse_attrs(input)
        .ok()
        .and_then(|a| a.krate)
        .unwrap_or_else(|| syn::parse_quote!(::tasker_telemetry))
}

fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let push = |e: syn::Error| cx.syn_error(e);

    let attrs = match parse_attrs(input) {
        Ok(attrs) => attrs,
        Err(e) => {
            cx.syn_error(e);
            return cx.check().map(|()| TokenStream::new());
        }
    };
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
            Fields::Unit => Vec::new(),
            Fields::Unnamed(_) => {
                push(syn::Error::new_spanned(
                    &input.ident,
                    "#[derive(Event)] needs named fields (they become the event's payload keys)",
                ));
                Vec::new()
            }
        },
        _ => {
            push(syn::Error::new_spanned(
                &input.ident,
                "#[derive(Event)] goes on a struct with named fields (the event's payload)",
            ));
            Vec::new()
        }
    };
    if !input.generics.params.is_empty() {
        push(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Event)] needs a concrete struct: one event name has one payload type",
        ));
    }
    let Some(name) = attrs.name else {
        cx.error_spanned_by(
            &input.ident,
            "a custom event needs a name: add #[event(name = \"namespace.event\")]",
        );
        return cx.check().map(|()| TokenStream::new());
    };
    if let Err(message) = check_name(&name.value()) {
        push(syn::Error::new_spanned(&name, message));
    }
    let description = match attrs.description {
        Some(d) => d.value(),
        None => doc_text(&input.attrs),
    };
    if description.is_empty() {
        push(syn::Error::new_spanned(
            &input.ident,
            "describe the event: a doc comment on the struct, or #[event(description = \"...\")]",
        ));
    }
    cx.check()?;

    let krate = attrs
        .krate
        .unwrap_or_else(|| syn::parse_quote!(::tasker_telemetry));
    let ident = &input.ident;
    let field_descriptors = fields.iter().filter_map(|f| {
        let key = f.ident.as_ref()?.to_string();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_owned();
        let ty = &f.ty;
        let ty = crate::type_name::compact(&quote!(#ty));
        let doc = doc_text(&f.attrs);
        Some(quote!(#krate::__private_v0_1::FieldDescriptor::new(#key, #ty, #doc)))
    });
    Ok(quote! {
        #[automatically_derived]
        impl #krate::__private_v0_1::EventPayload for #ident {
            const NAME: &'static str = #name;

            fn event_name() -> ::core::option::Option<#krate::__private_v0_1::EventName> {
                static NAME: #krate::__private_v0_1::OnceLock<::core::option::Option<#krate::__private_v0_1::EventName>> =
                    #krate::__private_v0_1::OnceLock::new();
                *NAME.get_or_init(|| #krate::__private_v0_1::EventName::lookup(#name))
            }
        }

        #krate::__private_v0_1::inventory::submit! {
            #krate::__private_v0_1::CustomEventDeclaration {
                name: #name,
                description: #description,
                fields: &[#(#field_descriptors),*],
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    })
}

fn parse_attrs(input: &DeriveInput) -> syn::Result<Attrs> {
    let mut attrs = Attrs {
        name: None,
        description: None,
        krate: None,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            let slot_error = |what: &str| meta.error(format!("`{what}` is given twice"));
            if meta.path.is_ident("name") {
                if attrs.name.is_some() {
                    return Err(slot_error("name"));
                }
                attrs.name = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("description") {
                if attrs.description.is_some() {
                    return Err(slot_error("description"));
                }
                attrs.description = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("crate") {
                if attrs.krate.is_some() {
                    return Err(slot_error("crate"));
                }
                attrs.krate = Some(meta.value()?.call(syn::Path::parse_mod_style)?);
            } else {
                return Err(meta.error("unknown argument; #[event] accepts `name = \"...\"`, `description = \"...\"` and `crate = path`"));
            }
            Ok(())
        })?;
    }
    Ok(attrs)
}

/// The naming rules of custom events, as `catalog::register_event` applies them at run time
/// (the same rules file).
fn check_name(name: &str) -> Result<(), String> {
    match rules::check_custom_name(name) {
        Err(rules::NameError::MissingDot) => Err(format!(
            "custom event name `{name}` must contain a dot, as in \"orders.fraud_flagged\""
        )),
        Err(rules::NameError::Malformed) => Err(format!(
            "custom event name `{name}` is malformed: {}",
            rules::NAME_GRAMMAR
        )),
        Err(rules::NameError::ReservedNamespace(namespace)) => Err(format!(
            "custom event name `{name}` uses the reserved namespace `{namespace}`; reserved: {}",
            rules::RESERVED_NAMESPACES.join(", ")
        )),
        Ok(()) if catalog_names::is_builtin(name) => Err(format!(
            "custom event name `{name}` collides with a built-in event"
        )),
        Ok(()) => Ok(()),
    }
}

/// The doc comment's text, lines joined with spaces.
fn doc_text(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use crate::rules::EDGE_CASES;

    #[test]
    fn derive_event_gives_the_rules_edge_cases_their_verdicts() {
        for &(text, valid_name, _) in EDGE_CASES {
            assert_eq!(super::check_name(text).is_ok(), valid_name, "{text:?}");
        }
    }
}
