//! Checks the handler's shape and `process()` signature, collecting every error.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, Item, ItemFn, ReturnType, Signature, Type};

use super::parse::Args;
use crate::ctxt::Ctxt;

/// Which context `process()` takes at each parameter position.
#[derive(Clone, Copy)]
pub(crate) enum Context {
    Task,
    Sequence,
    Step,
}

pub(crate) enum Form {
    /// An impl block defining `process(&self, ...)`.
    Impl,
    /// A free function; the handler type is generated and named after it.
    Function { type_name: Ident },
}

pub(crate) struct Plan {
    pub(crate) form: Form,
    pub(crate) name: String,
    pub(crate) retry_limit: Option<u32>,
    /// The declared p95 objective, in nanoseconds.
    pub(crate) objective_nanos: Option<u64>,
    pub(crate) krate: syn::Path,
    /// The span of `process()`'s `async` keyword, when it is async.
    pub(crate) async_span: Option<Span>,
    pub(crate) params: Vec<Context>,
    /// The span of `process()`'s return type, for errors about `T` and `E`.
    pub(crate) output_span: Span,
}

const SIGNATURE: &str = "fn process(&self, task: &Task, sequence: &Sequence, step: &Step) -> Result<T, E> (sync or async; any of the three contexts)";

pub(crate) fn validate(args: Args, item: &Item) -> syn::Result<Plan> {
    let errors = Ctxt::new();
    let retry_limit = match &args.retry_limit {
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(0) => {
                errors.syn_error(syn::Error::new_spanned(
                    lit,
                    "retry_limit counts attempts and must be at least 1",
                ));
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                errors.syn_error(syn::Error::new_spanned(
                    lit,
                    "retry_limit must be a whole number from 1 to 4294967295",
                ));
                None
            }
        },
        None => None,
    };
    let objective_nanos = args.objective.as_ref().and_then(|lit| {
        parse_duration(&lit.value())
            .map_err(|why| errors.syn_error(syn::Error::new_spanned(lit, why)))
            .ok()
    });
    if let Some(name) = &args.name {
        let v = name.value();
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            errors.syn_error(syn::Error::new_spanned(
                name,
                "a handler name is non-empty and made of A-Z, a-z, 0-9, '_' or '-'",
            ));
        }
    }
    let krate = args
        .krate
        .unwrap_or_else(|| syn::parse_quote!(::tasker_telemetry));

    let (form, default_name, sig) = match item {
        Item::Impl(block) => {
            if let Some((_, path, _)) = &block.trait_ {
                errors.error_spanned_by(
                    path,
                    "#[step_handler] goes on the handler's inherent impl block (the one that defines `process`); it writes the `StepHandler` implementation itself",
                );
                return Err(fail(errors));
            }
            let mut process: Option<&ImplItemFn> = None;
            let mut defines_handle = false;
            for f in block.items.iter().filter_map(|i| match i {
                ImplItem::Fn(f) => Some(f),
                _ => None,
            }) {
                if f.sig.ident == "handle" {
                    defines_handle = true;
                    errors.syn_error(syn::Error::new_spanned(
                        &f.sig.ident,
                        "handle() is framework-owned: #[step_handler] generates it around process(); implement process() instead and rename this method",
                    ));
                }
                if f.sig.ident == "process" {
                    process = Some(f);
                }
            }
            let Some(process) = process else {
                // A `handle` in place of `process` is one mistake: report it once.
                if defines_handle {
                    return Err(fail(errors));
                }
                errors.syn_error(syn::Error::new_spanned(
                    &block.self_ty,
                    format!(
                        "a step handler defines process(): add `{SIGNATURE}` to this impl block"
                    ),
                ));
                return Err(fail(errors));
            };
            let default_name = match &*block.self_ty {
                Type::Path(p) => p
                    .path
                    .segments
                    .last()
                    .map(|s| crate::type_name::snake_case(&s.ident.to_string())),
                _ => None,
            }
            .unwrap_or_else(|| "handler".to_owned());
            check_receiver(&process.sig, &errors);
            (Form::Impl, default_name, &process.sig)
        }
        Item::Fn(ItemFn { sig, .. }) => {
            if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
                errors.syn_error(syn::Error::new_spanned(
                    r,
                    "a free-function step handler takes no `self`; put methods in an impl block",
                ));
            }
            if !sig.generics.params.is_empty() {
                errors.syn_error(syn::Error::new_spanned(
                    &sig.generics,
                    "a free-function step handler cannot be generic: write a handler type and an impl block instead",
                ));
            }
            let type_name = type_name(&sig.ident);
            (Form::Function { type_name }, sig.ident.to_string(), sig)
        }
        other => {
            errors.error_spanned_by(
                other,
                format!(
                    "#[step_handler] goes on an impl block defining process(), or on a free function; the signature is `{SIGNATURE}`"
                ),
            );
            return Err(fail(errors));
        }
    };

    let params = context_params(sig, &errors);
    let output_span = match &sig.output {
        ReturnType::Type(_, ty) if returns_result(ty) => ty.span(),
        ReturnType::Type(_, ty) => {
            errors.syn_error(syn::Error::new_spanned(
                ty,
                "process() must return Result<T, E> (T: Serialize, E: std::error::Error), so the framework can report success or failure",
            ));
            ty.span()
        }
        ReturnType::Default => {
            errors.syn_error(syn::Error::new_spanned(
                &sig.ident,
                "process() must return Result<T, E> (T: Serialize, E: std::error::Error), so the framework can report success or failure",
            ));
            sig.ident.span()
        }
    };

    errors.check()?;
    Ok(Plan {
        form,
        name: args.name.map_or(default_name, |n| n.value()),
        retry_limit,
        objective_nanos,
        krate,
        async_span: sig.asyncness.map(|a| a.span),
        params,
        output_span,
    })
}

/// A duration such as `250ms`, `1.5s`, `2m` or `100us`: a positive number and one unit (the
/// runtime's grammar, shared with the command line).
fn parse_duration(text: &str) -> Result<u64, String> {
    crate::duration::parse_nanos(text).map_err(|reason| format!("objective is {reason}"))
}

fn check_receiver(sig: &Signature, errors: &Ctxt) {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => errors.syn_error(syn::Error::new_spanned(
            r,
            "process() takes `&self`: handlers are shared between concurrent steps, so they cannot take `self` or `&mut self`",
        )),
        _ => errors.syn_error(syn::Error::new_spanned(
            &sig.ident,
            "process() takes `&self` first: `fn process(&self, task: &Task, ...)`",
        )),
    }
}

fn context_params(sig: &Signature, errors: &Ctxt) -> Vec<Context> {
    let mut params = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(pat) = arg else { continue };
        let context = match &*pat.ty {
            Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
                Type::Path(p) => match p
                    .path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .as_deref()
                {
                    Some("Task") => Some(Context::Task),
                    Some("Sequence") => Some(Context::Sequence),
                    Some("Step") => Some(Context::Step),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        match context {
            Some(c) => params.push(c),
            None => errors.syn_error(syn::Error::new_spanned(
                &pat.ty,
                "process() parameters are the runtime's contexts: `&Task`, `&Sequence` or `&Step` (from tasker_telemetry)",
            )),
        }
    }
    params
}

fn returns_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        Type::Group(g) => returns_result(&g.elem),
        Type::Paren(p) => returns_result(&p.elem),
        _ => false,
    }
}

/// The errors recorded before an early return (at least one).
fn fail(errors: Ctxt) -> syn::Error {
    errors.check().expect_err("an error was recorded")
}

/// The handler type generated for a free function: `fetch_cart` to `FetchCart`.
pub(crate) fn type_name(function: &Ident) -> Ident {
    Ident::new(&camel_case(&function.to_string()), function.span())
}

/// `fetch_cart` to `FetchCart`.
fn camel_case(ident: &str) -> String {
    ident
        .trim_start_matches("r#")
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}
