//! The arguments of `#[subscribe_to]`.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitBool, LitStr, Token};

/// One subscribed event: a name or pattern, and the method that handles it when given explicitly.
pub(crate) struct Subscription {
    pub(crate) event: LitStr,
    pub(crate) method: Option<Ident>,
}

pub(crate) struct Args {
    pub(crate) subscriptions: Vec<Subscription>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) register: Option<LitBool>,
}

const EXPECTED: &str = "expected an event name string (\"task.completed\"), a pattern with its handler (\"step.*\" => handle_step_event), `register = false` or `crate = path`";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            subscriptions: Vec::new(),
            krate: None,
            register: None,
        };
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.krate.is_some() {
                    return Err(syn::Error::new_spanned(key, "`crate` is given twice"));
                }
                args.krate = Some(input.call(syn::Path::parse_mod_style)?);
            } else if input.peek(LitStr) {
                let event: LitStr = input.parse()?;
                let method = if input.peek(Token![=>]) {
                    input.parse::<Token![=>]>()?;
                    Some(input.parse::<Ident>()?)
                } else {
                    None
                };
                args.subscriptions.push(Subscription { event, method });
            } else if input.peek(Ident) && input.fork().parse::<Ident>()? == "register" {
                let key: Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.register.is_some() {
                    return Err(syn::Error::new_spanned(key, "`register` is given twice"));
                }
                args.register = Some(input.parse()?);
            } else {
                return Err(input.error(EXPECTED));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
