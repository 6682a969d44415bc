//! The arguments of `#[subscribe_to]`.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitBool, LitStr, Token};

mod kw {
    syn::custom_keyword!(register);
}

/// What a subscription names.
pub(crate) enum Target {
    /// An event name or pattern, as a string.
    Name(LitStr),
    /// A custom event's payload type (`#[derive(Event)]`), by path.
    Type(syn::Path),
}

/// One subscribed event, and the method that handles it when given explicitly.
pub(crate) struct Subscription {
    pub(crate) target: Target,
    pub(crate) method: Option<Ident>,
}

pub(crate) struct Args {
    pub(crate) subscriptions: Vec<Subscription>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) register: Option<LitBool>,
}

const EXPECTED: &str = "expected an event name string (\"task.completed\"), a pattern with its handler (\"step.*\" => handle_step_event), a custom event type (PaymentProcessed), `register = false` or `crate = path`";

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
                let method = parse_method(input)?;
                args.subscriptions.push(Subscription {
                    target: Target::Name(event),
                    method,
                });
            } else if input.peek(kw::register) && input.peek2(Token![=]) && !input.peek2(Token![=>])
            {
                let key: kw::register = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.register.is_some() {
                    return Err(syn::Error::new_spanned(key, "`register` is given twice"));
                }
                args.register = Some(input.parse()?);
            } else if input.peek(Ident) || input.peek(Token![::]) {
                let path = input.call(syn::Path::parse_mod_style)?;
                let assignment = input.peek(Token![=]) && !input.peek(Token![=>]);
                if assignment {
                    return Err(syn::Error::new_spanned(path, EXPECTED));
                } else {
                    let method = parse_method(input)?;
                    args.subscriptions.push(Subscription {
                        target: Target::Type(path),
                        method,
                    });
                }
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

fn parse_method(input: ParseStream<'_>) -> syn::Result<Option<Ident>> {
    if input.peek(Token![=>]) {
        input.parse::<Token![=>]>()?;
        Ok(Some(input.parse()?))
    } else {
        Ok(None)
    }
}
