//! Checks the arguments against the catalog and the impl block, collecting every error.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Ident, ImplItem, ItemImpl};

use super::parse::{Args, Subscription, Target};
use crate::catalog_names;

/// How an event is matched at dispatch.
pub(crate) enum Matcher {
    /// A built-in event: compared by its runtime constant.
    Builtin(Ident),
    /// A custom event: compared by name (the runtime checks it exists when subscribing).
    Custom,
    /// A `namespace.*` or `*` pattern.
    Pattern,
    /// A custom event's payload type: compared by its `EventPayload::NAME`.
    Typed,
}

pub(crate) struct Route {
    /// An expression for the event's name (`"task.completed"`, `<T as EventPayload>::NAME`).
    pub(crate) event: TokenStream,
    pub(crate) matcher: Matcher,
    /// The handler as the user defined it (its span is the user's `fn` name).
    pub(crate) method: Ident,
}

pub(crate) struct Plan {
    pub(crate) routes: Vec<Route>,
    pub(crate) krate: syn::Path,
    pub(crate) register: bool,
}

pub(crate) fn validate(args: Args, block: &ItemImpl) -> syn::Result<Plan> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };

    if let Some((_, trait_path, _)) = &block.trait_ {
        push(syn::Error::new_spanned(
            trait_path,
            "#[subscribe_to] goes on an inherent impl block (`impl MySubscriber { .. }`); it writes the `Subscriber` implementation itself",
        ));
    }
    if args.subscriptions.is_empty() {
        push(syn::Error::new(
            Span::call_site(),
            "#[subscribe_to] needs at least one event, as in #[subscribe_to(\"task.completed\")]",
        ));
    }
    let generic = !block.generics.params.is_empty();
    let register = match &args.register {
        Some(flag) if flag.value && generic => {
            push(syn::Error::new_spanned(
                flag,
                "a generic subscriber cannot be registered: the catalog needs one concrete type; write `register = false` and subscribe instances yourself",
            ));
            false
        }
        Some(flag) => flag.value,
        None => !generic,
    };

    let methods: Vec<&Ident> = block
        .items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Fn(f) => Some(&f.sig.ident),
            _ => None,
        })
        .collect();

    let krate: syn::Path = args
        .krate
        .unwrap_or_else(|| syn::parse_quote!(::tasker_telemetry));
    let mut seen = HashSet::new();
    let mut routes = Vec::new();
    for Subscription { target, method } in args.subscriptions {
        let event = match target {
            Target::Name(lit) => lit,
            Target::Type(path) => {
                let shown = crate::type_name::compact(&path.to_token_stream());
                if !seen.insert(shown.clone()) {
                    push(syn::Error::new_spanned(
                        &path,
                        format!("`{shown}` is subscribed twice; list each event once"),
                    ));
                    continue;
                }
                let method = method.unwrap_or_else(|| {
                    let last = path
                        .segments
                        .last()
                        .map(|s| s.ident.to_string())
                        .unwrap_or_default();
                    Ident::new(
                        &format!("handle_{}", crate::type_name::snake_case(&last)),
                        path.span(),
                    )
                });
                let Some(defined) = methods.iter().find(|m| **m == &method) else {
                    push(syn::Error::new(
                        method.span(),
                        format!(
                            "`{shown}` is handled by a method `{method}` that this impl block does not define; add `fn {method}(&self, event: &tasker_telemetry::Event)`"
                        ),
                    ));
                    continue;
                };
                routes.push(Route {
                    event: quote!(<#path as #krate::__private::EventPayload>::NAME),
                    matcher: Matcher::Typed,
                    method: (*defined).clone(),
                });
                continue;
            }
        };
        let name = event.value();
        if !seen.insert(name.clone()) {
            push(syn::Error::new_spanned(
                &event,
                format!("`{name}` is subscribed twice; list each event once"),
            ));
            continue;
        }
        let matcher = match classify(&name) {
            Ok(m) => m,
            Err(message) => {
                push(syn::Error::new_spanned(&event, message));
                continue;
            }
        };
        let method = match (method, &matcher) {
            (Some(m), _) => m,
            (None, Matcher::Pattern) => {
                push(syn::Error::new_spanned(
                    &event,
                    format!(
                        "the pattern `{name}` needs an explicit handler method: \"{name}\" => handle_{}_events",
                        name.trim_end_matches(".*")
                            .trim_end_matches('*')
                            .replace('.', "_")
                            .trim_matches('_')
                    ),
                ));
                continue;
            }
            (None, _) => Ident::new(
                &format!("handle_{}", name.replace(['.', '-'], "_")),
                event.span(),
            ),
        };
        let Some(defined) = methods.iter().find(|m| **m == &method) else {
            push(syn::Error::new(
                method.span(),
                format!(
                    "`{name}` is handled by a method `{method}` that this impl block does not define; add `fn {method}(&self, event: &tasker_telemetry::Event)`"
                ),
            ));
            continue;
        };
        routes.push(Route {
            event: event.to_token_stream(),
            matcher,
            method: (*defined).clone(),
        });
    }

    match errors {
        Some(e) => Err(e),
        None => Ok(Plan {
            routes,
            krate,
            register,
        }),
    }
}

fn classify(name: &str) -> Result<Matcher, String> {
    if name.contains('*') {
        let prefix = name.strip_suffix(".*");
        let valid = name == "*"
            || prefix.is_some_and(|p| !p.is_empty() && !p.contains('*') && valid_name(p));
        return if valid {
            Ok(Matcher::Pattern)
        } else {
            Err(format!(
                "invalid pattern `{name}`: a pattern is `namespace.*` (as in \"step.*\") or `*`"
            ))
        };
    }
    if !name.contains('.') || !valid_name(name) {
        return Err(format!(
            "invalid event name `{name}`: names are dot-separated segments of A-Z, a-z, 0-9, '_' or '-', as in \"task.completed\""
        ));
    }
    if catalog_names::is_builtin(name) {
        return Ok(Matcher::Builtin(Ident::new(
            &catalog_names::const_name(name),
            Span::call_site(),
        )));
    }
    if catalog_names::in_builtin_namespace(name) {
        return Err(match catalog_names::suggest(name) {
            Some(s) => format!("unknown event `{name}`; did you mean `{s}`?"),
            None => format!(
                "unknown event `{name}`: its namespace is built in and has no such event (`cargo run --example catalog` lists them)"
            ),
        });
    }
    Ok(Matcher::Custom)
}

fn valid_name(name: &str) -> bool {
    name.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}
