//! The derives of dcbstore, re-exported by `dcbstore` (and usable with
//! `dcbstore-core` alone through `crate = dcbstore_core`).
//!
//! - `#[derive(Event)]` implements `EventDefinition` for a struct with named
//!   fields: `#[event(name = "course_defined", level = "sourced")]`, with
//!   optional `kind = "domain" | "integration"` (default domain), `version =
//!   N` (default 1), upcasters `upcast(from = N, with = path)` (a function
//!   `fn(serde_json::Value) -> Result<serde_json::Value, String>`) or
//!   `upcast(from = N, typed = OldShape)` (`OldShape: Deserialize`, and the
//!   next shape, `to = NextShape` or the struct itself, `From<OldShape>`),
//!   and `crate = path` (default `::dcbstore`). Tags: `#[tag]` on a field
//!   gives `field:value`, `#[tag(prefix = "course")]` gives `course:value`,
//!   and `#[tag("course:{course_id}")]` on the struct formats fields; each
//!   tagged field also gets `Type::<field>_tag(value)`, the tag a state
//!   query of that value asks for.
//! - `#[derive(Events)]` implements `typed::Events` for an enum whose
//!   variants each hold one event type (or another set): its types are
//!   theirs, a stored event decodes into the variant of its type, and each
//!   type converts `into()` the enum.
//!
//! Misuse is a compile error at the attribute, field or variant at fault.

mod event;
mod events;
mod krate;

use proc_macro::TokenStream;

/// `EventDefinition` from attributes: see the crate's documentation.
#[proc_macro_derive(Event, attributes(event, tag))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `typed::Events` for an enum of event types: see the crate's
/// documentation.
#[proc_macro_derive(Events, attributes(events))]
pub fn derive_events(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    events::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
