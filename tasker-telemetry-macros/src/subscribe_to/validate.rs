//! Checks the arguments against the catalog and the impl block, collecting every error.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Signature, Type};

use super::parse::{Args, Subscription, Target};
use crate::ctxt::Ctxt;
use crate::{catalog_names, rules};

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
    let cx = Ctxt::new();
    let push = |e: syn::Error| cx.syn_error(e);

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

    let functions: Vec<&ImplItemFn> = block
        .items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        })
        .collect();
    let methods: Vec<&Ident> = functions.iter().map(|f| &f.sig.ident).collect();

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
                            "`{shown}` is handled by a method `{method}` that this impl block does not define; add `fn {method}(&self, event: &tasker_telemetry::Event<'_>)`"
                        ),
                    ));
                    continue;
                };
                routes.push(Route {
                    event: quote!(<#path as #krate::__private_v0_1::EventPayload>::NAME),
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
                    "`{name}` is handled by a method `{method}` that this impl block does not define; add `fn {method}(&self, event: &tasker_telemetry::Event<'_>)`"
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

    // Each handler's signature, once however many events it handles.
    let mut checked = HashSet::new();
    for route in &routes {
        if checked.insert(route.method.to_string())
            && let Some(f) = functions.iter().find(|f| f.sig.ident == route.method)
        {
            check_signature(&f.sig, &cx);
        }
    }

    cx.check()?;
    Ok(Plan {
        routes,
        krate,
        register,
    })
}

const HANDLER: &str = "fn(&self, event: &tasker_telemetry::Event<'_>)";

/// A handler is `fn name(&self, event: &Event<'_>)`: one error per wrong handler, at its own tokens.
fn check_signature(sig: &Signature, cx: &Ctxt) {
    let name = &sig.ident;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format!(
                "subscriber handlers run synchronously in the publishing thread, so `{name}` cannot be `async`: write `{HANDLER}` and hand the work off from it (send the event on a channel, or spawn it onto your runtime with `tokio::spawn(.. event.clone().into_owned() ..)`), or subscribe the subscriber with `Delivery::Asynchronous` to get its own bounded queue"
            ),
        );
        return;
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => {
            cx.error_spanned_by(
                r,
                format!(
                    "`{name}` must take `&self`: subscribers are shared between publishing threads (keep mutable state in a Mutex or atomics); the handler is `{HANDLER}`"
                ),
            );
            return;
        }
        _ => {
            cx.error_spanned_by(
                name,
                format!("`{name}` must be a method taking `&self`; the handler is `{HANDLER}`"),
            );
            return;
        }
    }
    let event = inputs.next();
    let extra = inputs.next();
    match event {
        None => cx.error_spanned_by(
            &sig.inputs,
            format!("`{name}` takes no event; the handler is `{HANDLER}`"),
        ),
        Some(FnArg::Typed(arg)) => match &*arg.ty {
            Type::Reference(r) if r.mutability.is_none() => {}
            Type::Reference(r) => cx.error_spanned_by(
                r,
                format!("`{name}` receives the event shared, not `&mut`: the handler is `{HANDLER}`"),
            ),
            other => cx.error_spanned_by(
                other,
                format!(
                    "`{name}` receives the event by reference (other subscribers get it too; keep `event.clone().into_owned()` to hold it longer): the handler is `{HANDLER}`"
                ),
            ),
        },
        Some(other) => cx.error_spanned_by(other, format!("the handler is `{HANDLER}`")),
    }
    if let Some(extra) = extra {
        cx.error_spanned_by(
            extra,
            format!("`{name}` takes only the event; the handler is `{HANDLER}`"),
        );
    }
}

fn classify(name: &str) -> Result<Matcher, String> {
    match rules::parse_pattern(name) {
        None if name.contains('*') => {
            return Err(format!(
                "invalid pattern `{name}`: a pattern is {}",
                rules::PATTERN_GRAMMAR
            ));
        }
        None => {
            return Err(format!(
                "invalid event name `{name}`: names are {}",
                rules::NAME_GRAMMAR
            ));
        }
        Some(rules::Pattern::All | rules::Pattern::Namespace(_)) => return Ok(Matcher::Pattern),
        Some(rules::Pattern::Name(_)) => {}
    }
    if catalog_names::is_builtin(name) {
        return Ok(Matcher::Builtin(Ident::new(
            &catalog_names::const_name(name),
            Span::call_site(),
        )));
    }
    if rules::in_builtin_namespace(name) {
        return Err(match catalog_names::suggest(name) {
            Some(s) => format!("unknown event `{name}`; did you mean `{s}`?"),
            None => format!(
                "unknown event `{name}`: its namespace is built in and has no such event (`cargo run --example catalog` lists them)"
            ),
        });
    }
    Ok(Matcher::Custom)
}

#[cfg(test)]
mod tests {
    use crate::rules::EDGE_CASES;

    #[test]
    fn subscribe_to_gives_the_rules_edge_cases_their_verdicts() {
        for &(text, _, valid_pattern) in EDGE_CASES {
            assert_eq!(super::classify(text).is_ok(), valid_pattern, "{text:?}");
        }
    }
}
