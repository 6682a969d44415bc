//! The arguments of `#[step_handler]`: `name = "..."`, `retry_limit = N`, `objective = "..."`,
//! `crate = path`.

use syn::parse::{Parse, ParseStream};
use syn::{LitInt, LitStr, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retry_limit);
    syn::custom_keyword!(objective);
}

pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) retry_limit: Option<LitInt>,
    pub(crate) objective: Option<LitStr>,
    pub(crate) krate: Option<syn::Path>,
}

const ACCEPTED: &str = "#[step_handler] accepts `name = \"...\"`, `retry_limit = N`, `objective = \"250ms\"` and `crate = path`";

/// Parses `= value` into `slot`, refusing a second one at the key's own span.
fn assign<K: syn::spanned::Spanned, T>(
    input: ParseStream<'_>,
    key: K,
    shown: &str,
    slot: &mut Option<T>,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<()> {
    input.parse::<Token![=]>()?;
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{shown}` is given twice; {ACCEPTED}"),
        ));
    }
    *slot = Some(value(input)?);
    Ok(())
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            name: None,
            retry_limit: None,
            objective: None,
            krate: None,
        };
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                assign(input, key, "name", &mut args.name, |i| i.parse())?;
            } else if lookahead.peek(kw::retry_limit) {
                let key: kw::retry_limit = input.parse()?;
                assign(input, key, "retry_limit", &mut args.retry_limit, |i| {
                    i.parse()
                })?;
            } else if lookahead.peek(kw::objective) {
                let key: kw::objective = input.parse()?;
                assign(input, key, "objective", &mut args.objective, |i| i.parse())?;
            } else if lookahead.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                assign(input, key, "crate", &mut args.krate, |i| {
                    i.call(syn::Path::parse_mod_style)
                })?;
            } else if input.peek(syn::Ident) {
                let key: syn::Ident = input.parse()?;
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("unknown argument `{key}`; {ACCEPTED}"),
                ));
            } else {
                return Err(input.error(ACCEPTED));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
