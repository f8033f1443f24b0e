//! `#[derive(Event)]`: `EventDefinition` from `#[event(...)]` and `#[tag]`.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitInt, LitStr, Path};

/// What `#[event(...)]` says.
struct EventAttr {
    name: Option<LitStr>,
    level: Option<(syn::Ident, Span)>,
    kind: syn::Ident,
    version: u32,
    krate: Path,
    /// Upcasters by the version they read.
    upcasts: BTreeMap<u32, (Span, Upcast)>,
}

enum Upcast {
    /// `with = path`: a JSON transform.
    With(Path),
    /// `typed = OldShape` (and `to = NextShape`, default `Self`).
    Typed {
        from: Box<syn::Type>,
        to: Option<Box<syn::Type>>,
    },
}

const LEVELS: [(&str, &str); 5] = [
    ("sync", "Sync"),
    ("job", "Job"),
    ("outbox", "Outbox"),
    ("broker", "Broker"),
    ("sourced", "Sourced"),
];

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Event)] needs a struct with named fields (an event's payload); for a set of event types, derive Events on an enum",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "#[derive(Event)] needs named fields: its tags and its JSON name them",
        ));
    };
    let attr = event_attr(input)?;
    let Some(name) = &attr.name else {
        return Err(syn::Error::new(
            input.ident.span(),
            "missing #[event(name = \"...\", level = \"...\")]: the event's stable, snake_case name",
        ));
    };
    if !is_snake_case(&name.value()) {
        return Err(syn::Error::new(
            name.span(),
            format!("the event name {:?} is not snake_case (like \"course_defined\"): names are stable identifiers in the schema file", name.value()),
        ));
    }
    let Some((level, _)) = &attr.level else {
        return Err(syn::Error::new(
            input.ident.span(),
            "missing level in #[event(...)]: level = \"sync\" | \"job\" | \"outbox\" | \"broker\" | \"sourced\"",
        ));
    };
    let field_names: Vec<String> = fields
        .named
        .iter()
        .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
        .collect();
    let mut tags = struct_tags(input, &field_names)?;
    let (by_field, helpers) = field_tags(fields)?;
    tags.extend(by_field);
    for (&from, (span, _)) in &attr.upcasts {
        if from >= attr.version {
            return Err(syn::Error::new(
                *span,
                format!(
                    "an upcaster reads an older version: from = {from} is not below version = {}",
                    attr.version
                ),
            ));
        }
    }

    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let krate = &attr.krate;
    let kind = &attr.kind;
    let version = attr.version;
    let upcast = upcast_fn(&attr);
    let upcasts: Vec<u32> = attr.upcasts.keys().copied().collect();
    Ok(quote! {
        impl #impl_generics #krate::schema::EventDefinition for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const KIND: #krate::schema::Kind = #krate::schema::Kind::#kind;
            const LEVEL: #krate::schema::Level = #krate::schema::Level::#level;
            const VERSION: u32 = #version;
            const UPCASTS: &'static [u32] = &[#(#upcasts),*];

            fn tags(&self) -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(#tags),*]
            }

            #upcast
        }

        impl #impl_generics #ident #ty_generics #where_clause {
            #(#helpers)*
        }
    })
}

fn event_attr(input: &DeriveInput) -> syn::Result<EventAttr> {
    let mut attr = EventAttr {
        name: None,
        level: None,
        kind: syn::Ident::new("Domain", Span::call_site()),
        version: 1,
        krate: crate::krate::default_path(),
        upcasts: BTreeMap::new(),
    };
    for a in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                attr.name = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("level") {
                let lit: LitStr = meta.value()?.parse()?;
                let Some((_, variant)) = LEVELS.iter().find(|(l, _)| *l == lit.value()) else {
                    return Err(syn::Error::new(
                        lit.span(),
                        "unknown level: \"sync\" (1), \"job\" (2), \"outbox\" (3), \"broker\" (4) or \"sourced\" (5)",
                    ));
                };
                attr.level = Some((syn::Ident::new(variant, lit.span()), lit.span()));
            } else if meta.path.is_ident("kind") {
                let lit: LitStr = meta.value()?.parse()?;
                attr.kind = match lit.value().as_str() {
                    "domain" => syn::Ident::new("Domain", lit.span()),
                    "integration" => syn::Ident::new("Integration", lit.span()),
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "unknown kind: \"domain\" (a fact inside one bounded context) or \"integration\" (published to others)",
                        ))
                    }
                };
            } else if meta.path.is_ident("version") {
                let lit: LitInt = meta.value()?.parse()?;
                attr.version = lit.base10_parse()?;
                if attr.version == 0 {
                    return Err(syn::Error::new(lit.span(), "versions start at 1"));
                }
            } else if meta.path.is_ident("crate") {
                attr.krate = crate::krate::parse_path(meta.input)?;
            } else if meta.path.is_ident("upcast") {
                let span = meta.path.span();
                let (from, upcast) = upcast_attr(&meta)?;
                if attr.upcasts.insert(from, (span, upcast)).is_some() {
                    return Err(syn::Error::new(span, format!("two upcasters from version {from}")));
                }
            } else {
                return Err(meta.error(
                    "unknown key in #[event(...)]: name, level, kind, version, upcast or crate",
                ));
            }
            Ok(())
        })?;
    }
    Ok(attr)
}

/// `upcast(from = N, with = path)` or `upcast(from = N, typed = T[, to = U])`.
fn upcast_attr(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<(u32, Upcast)> {
    let mut from = None;
    let mut with = None;
    let mut typed = None;
    let mut to = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("from") {
            let lit: LitInt = inner.value()?.parse()?;
            from = Some(lit.base10_parse::<u32>()?);
        } else if inner.path.is_ident("with") {
            with = Some(inner.value()?.parse::<Path>()?);
        } else if inner.path.is_ident("typed") {
            typed = Some(inner.value()?.parse::<syn::Type>()?);
        } else if inner.path.is_ident("to") {
            to = Some(inner.value()?.parse::<syn::Type>()?);
        } else {
            return Err(inner.error("unknown key in upcast(...): from, with, typed or to"));
        }
        Ok(())
    })?;
    let Some(from) = from else {
        return Err(meta.error("upcast(...) needs from = N: the version it reads"));
    };
    let upcast = match (with, typed) {
        (Some(path), None) if to.is_none() => Upcast::With(path),
        (None, Some(from)) => Upcast::Typed {
            from: Box::new(from),
            to: to.map(Box::new),
        },
        _ => {
            return Err(meta.error(
                "upcast(...) needs one of with = path (a JSON transform) or typed = OldShape (with to = NextShape when it is not this struct)",
            ))
        }
    };
    Ok((from, upcast))
}

/// `#[tag("course:{course_id}")]` on the struct: format strings over fields.
fn struct_tags(input: &DeriveInput, fields: &[String]) -> syn::Result<Vec<TokenStream>> {
    let mut tags = Vec::new();
    for a in input.attrs.iter().filter(|a| a.path().is_ident("tag")) {
        let lit: LitStr = a.parse_args().map_err(|e| {
            syn::Error::new(
                e.span(),
                "on the struct, #[tag(\"prefix:{field}\")] takes a format string over its fields",
            )
        })?;
        let used = placeholders(&lit)?;
        let mut args = Vec::new();
        for name in &used {
            if !fields.contains(name) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("#[tag] names {{{name}}}, which is not a field of this struct"),
                ));
            }
            let field = syn::Ident::new(name, lit.span());
            args.push(quote!(#field = self.#field));
        }
        tags.push(quote!(::std::format!(#lit, #(#args),*)));
    }
    Ok(tags)
}

/// The `{name}` placeholders of a tag's format string (`{{` escapes).
fn placeholders(lit: &LitStr) -> syn::Result<Vec<String>> {
    let text = lit.value();
    let mut names = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "#[tag] placeholders name a field, like {{course_id}}; got {{{name}}}"
                        ),
                    ));
                }
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => {
                return Err(syn::Error::new(
                    lit.span(),
                    "an unmatched } in #[tag]: write }} for a brace",
                ))
            }
            _ => {}
        }
    }
    if names.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "#[tag(\"...\")] names no field: a constant tag would be on every event of this type; use a field, like \"course:{course_id}\"",
        ));
    }
    Ok(names)
}

/// `#[tag]` (`field:value`) and `#[tag(prefix = "p")]` (`p:value`) on fields:
/// the expressions of `tags()`, and for each field `Type::<field>_tag(value)`,
/// the tag a query of that value asks for (so queries never spell tags).
fn field_tags(fields: &syn::FieldsNamed) -> syn::Result<(Vec<TokenStream>, Vec<TokenStream>)> {
    let mut tags = Vec::new();
    let mut helpers = Vec::new();
    for f in &fields.named {
        let Some(ident) = &f.ident else { continue };
        for a in f.attrs.iter().filter(|a| a.path().is_ident("tag")) {
            let mut prefix = ident.to_string();
            if !matches!(a.meta, syn::Meta::Path(_)) {
                a.parse_nested_meta(|meta| {
                    if meta.path.is_ident("prefix") {
                        let lit: LitStr = meta.value()?.parse()?;
                        if lit.value().is_empty() || lit.value().contains(':') {
                            return Err(syn::Error::new(lit.span(), "a tag prefix is a non-empty name without ':' (the tag is prefix:value)"));
                        }
                        prefix = lit.value();
                        Ok(())
                    } else {
                        Err(meta.error("on a field, #[tag] or #[tag(prefix = \"name\")]"))
                    }
                })?;
            }
            let format = format!("{prefix}:{{}}");
            tags.push(quote_spanned!(f.ty.span()=> ::std::format!(#format, self.#ident)));
            let helper = syn::Ident::new(&format!("{ident}_tag"), ident.span());
            let doc = format!("The tag `{prefix}:value` of this event's `{ident}`: what a query of events with that `{ident}` asks for.");
            helpers.push(quote! {
                #[doc = #doc]
                #[allow(dead_code)]
                pub fn #helper(value: impl ::std::fmt::Display) -> ::std::string::String {
                    ::std::format!(#format, value)
                }
            });
        }
    }
    Ok((tags, helpers))
}

fn upcast_fn(attr: &EventAttr) -> TokenStream {
    if attr.upcasts.is_empty() {
        return TokenStream::new();
    }
    let krate = &attr.krate;
    let json = quote!(#krate::__private::serde_json);
    let arms = attr.upcasts.iter().map(|(from, (_, upcast))| match upcast {
        Upcast::With(path) => quote! {
            #from => ::std::option::Option::Some(#path(data)),
        },
        Upcast::Typed { from: old, to } => {
            let to: syn::Type = to
                .as_deref()
                .cloned()
                .unwrap_or_else(|| syn::parse_quote!(Self));
            quote! {
                #from => ::std::option::Option::Some(
                    #json::from_value::<#old>(data)
                        .map(<#to as ::std::convert::From<#old>>::from)
                        .and_then(|next| #json::to_value(next))
                        .map_err(|e| e.to_string()),
                ),
            }
        }
    });
    quote! {
        fn upcast(from: u32, data: #json::Value) -> ::std::option::Option<::std::result::Result<#json::Value, ::std::string::String>> {
            match from {
                #(#arms)*
                _ => ::std::option::Option::None,
            }
        }
    }
}

/// `^[a-z][a-z0-9]*(_[a-z0-9]+)*$`, as the schema requires.
fn is_snake_case(name: &str) -> bool {
    let mut parts = name.split('_');
    let first_ok = parts.next().is_some_and(|p| {
        p.starts_with(|c: char| c.is_ascii_lowercase())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    first_ok
        && parts.all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}
