//! The path the generated code names the dcbstore items by: `::dcbstore`,
//! unless an attribute says `crate = path`.

use syn::parse::ParseStream;

/// `::dcbstore`, the crate applications depend on.
pub(crate) fn default_path() -> syn::Path {
    syn::parse_quote!(::dcbstore)
}

/// The value of `crate = path` inside an attribute's list.
pub(crate) fn parse_path(input: ParseStream<'_>) -> syn::Result<syn::Path> {
    input.parse::<syn::Token![=]>()?;
    input.parse()
}
