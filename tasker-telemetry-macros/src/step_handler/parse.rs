//! The arguments of `#[step_handler]`: `name = "..."`, `retry_limit = N`, `crate = path`.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token};

pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) retry_limit: Option<LitInt>,
    pub(crate) krate: Option<syn::Path>,
}

const ACCEPTED: &str =
    "#[step_handler] accepts `name = \"...\"`, `retry_limit = N` and `crate = path`";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            name: None,
            retry_limit: None,
            krate: None,
        };
        while !input.is_empty() {
            let key: Ident = if input.peek(Token![crate]) {
                let k: Token![crate] = input.parse()?;
                Ident::new("crate", k.span)
            } else if input.peek(Ident) {
                input.parse()?
            } else {
                return Err(input.error(ACCEPTED));
            };
            let duplicate =
                || syn::Error::new_spanned(&key, format!("`{key}` is given twice; {ACCEPTED}"));
            match key.to_string().as_str() {
                "name" => {
                    input.parse::<Token![=]>()?;
                    if args.name.is_some() {
                        return Err(duplicate());
                    }
                    args.name = Some(input.parse()?);
                }
                "retry_limit" => {
                    input.parse::<Token![=]>()?;
                    if args.retry_limit.is_some() {
                        return Err(duplicate());
                    }
                    args.retry_limit = Some(input.parse()?);
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    if args.krate.is_some() {
                        return Err(duplicate());
                    }
                    args.krate = Some(input.call(syn::Path::parse_mod_style)?);
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        format!("unknown argument `{key}`; {ACCEPTED}"),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
