//! `#[derive(Events)]`: `typed::Events` for an enum of event types.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Events)] needs an enum, one variant per event type (for one event type, derive Event on its struct)",
        ));
    };
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Events)] needs at least one variant",
        ));
    }
    let mut krate = crate::krate::default_path();
    for a in input.attrs.iter().filter(|a| a.path().is_ident("events")) {
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                krate = crate::krate::parse_path(meta.input)?;
                Ok(())
            } else {
                Err(meta.error("unknown key in #[events(...)]: crate"))
            }
        })?;
    }
    let mut variants = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for v in &data.variants {
        let Fields::Unnamed(fields) = &v.fields else {
            return Err(syn::Error::new(
                v.span(),
                "each variant holds one event type: Variant(EventType)",
            ));
        };
        if fields.unnamed.len() != 1 {
            return Err(syn::Error::new(
                fields.span(),
                "each variant holds exactly one event type: Variant(EventType)",
            ));
        }
        let ty = &fields.unnamed[0].ty;
        let key = quote!(#ty).to_string();
        if seen.contains(&key) {
            return Err(syn::Error::new(
                ty.span(),
                "this event type is already in another variant: a stored event must decode into one variant",
            ));
        }
        seen.push(key);
        variants.push((&v.ident, ty));
    }

    let ident = &input.ident;
    let name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let events = quote!(#krate::typed::Events);
    let types = variants
        .iter()
        .map(|(_, ty)| quote!(types.extend(<#ty as #events>::types());));
    let decode = variants.iter().map(|(v, ty)| {
        quote! {
            if <#ty as #events>::types().contains(&stored) {
                return <#ty as #events>::decode(event).map(Self::#v);
            }
        }
    });
    let encode = variants
        .iter()
        .map(|(v, ty)| quote!(Self::#v(e) => <#ty as #events>::to_event(e),));
    let froms = variants.iter().map(|(v, ty)| {
        quote! {
            impl #impl_generics ::std::convert::From<#ty> for #ident #ty_generics #where_clause {
                fn from(e: #ty) -> Self {
                    Self::#v(e)
                }
            }
        }
    });
    Ok(quote! {
        impl #impl_generics #events for #ident #ty_generics #where_clause {
            fn types() -> ::std::vec::Vec<&'static str> {
                let mut types = ::std::vec::Vec::new();
                #(#types)*
                types
            }

            fn decode(event: &#krate::SequencedEvent) -> #krate::Result<Self> {
                let stored = event.event.event_type.as_str();
                #(#decode)*
                ::std::result::Result::Err(#krate::typed::not_in_set(event, #name, &<Self as #events>::types()))
            }

            fn to_event(&self) -> #krate::Result<#krate::Event> {
                match self {
                    #(#encode)*
                }
            }
        }

        #(#froms)*
    })
}
