//! `#[derive(NodeParams)]` and `#[derive(ParamEnum)]`; see `voxflow_runtime::params`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Expr, Fields, Lit, Meta};

/// Declares a struct's fields as node params: doc comment = about, type = param type,
/// `#[param(default = EXPR, min = X, max = X, gt = X, lt = X)]` (`gt`/`lt`: exclusive bounds),
/// `#[param(flatten)]` for a field that is itself a `NodeParams` group, `#[param(writes)]` for a
/// path param naming a file or folder the node writes.
#[proc_macro_derive(NodeParams, attributes(param))]
pub fn derive_node_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    node_params(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a unit-variant enum (serde `Serialize`) a param choice; the choices are the serde names.
#[proc_macro_derive(ParamEnum)]
pub fn derive_param_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    param_enum(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn node_params(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(name, "NodeParams needs a struct"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            name,
            "NodeParams needs named fields",
        ));
    };
    let rt = quote!(::voxflow_runtime::params);
    let mut pushes = Vec::new();
    let mut value_checks = Vec::new();
    let mut written = Vec::new();
    for f in &fields.named {
        let ident = f.ident.as_ref().expect("named field");
        let ty = &f.ty;
        let param = ident.to_string().trim_start_matches("r#").to_string();
        let about = doc_text(&f.attrs);
        let mut default = None;
        let mut bounds: [Option<Expr>; 4] = Default::default();
        let mut flatten = false;
        let mut writes = false;
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("param")) {
            attr.parse_nested_meta(|meta| {
                let slot = ["min", "max", "gt", "lt"]
                    .iter()
                    .position(|k| meta.path.is_ident(k));
                if meta.path.is_ident("flatten") {
                    flatten = true;
                } else if meta.path.is_ident("writes") {
                    writes = true;
                } else if meta.path.is_ident("default") {
                    default = Some(meta.value()?.parse::<Expr>()?);
                } else if let Some(i) = slot {
                    bounds[i] = Some(meta.value()?.parse::<Expr>()?);
                } else {
                    return Err(meta.error("expected default, min, max, gt, lt, flatten or writes"));
                }
                Ok(())
            })?;
        }
        if flatten {
            pushes.push(quote! { out.extend(<#ty as #rt::NodeParams>::decls()); });
            value_checks
                .push(quote! { out.extend(<#ty as #rt::NodeParams>::value_errors(values)); });
            written.push(quote! { out.extend(<#ty as #rt::NodeParams>::written()); });
            continue;
        }
        if writes {
            written.push(quote! { out.push(#param); });
        }
        if about.is_empty() {
            return Err(syn::Error::new_spanned(
                ident,
                "a param needs a doc comment",
            ));
        }
        let bound = |e: &Option<Expr>| match e {
            Some(e) => quote!(::core::option::Option::Some((#e) as f64)),
            None => quote!(::core::option::Option::None),
        };
        let [min, max, gt, lt] = &bounds;
        if min.is_some() && gt.is_some() || max.is_some() && lt.is_some() {
            return Err(syn::Error::new_spanned(ident, "give min or gt, max or lt"));
        }
        let (lo, lo_excl) = match (min, gt) {
            (_, Some(_)) => (bound(gt), true),
            _ => (bound(min), false),
        };
        let (hi, hi_excl) = match (max, lt) {
            (_, Some(_)) => (bound(lt), true),
            _ => (bound(max), false),
        };
        let default = match default {
            Some(e) => quote!(::core::option::Option::Some(#rt::default_value::<#ty>(#e))),
            None => quote!(::core::option::Option::None),
        };
        value_checks.push(quote! {
            out.extend(#rt::value_error::<#ty>(values, #param));
        });
        pushes.push(quote! {
            out.push(#rt::param_decl::<#ty>(
                #param,
                #about,
                #rt::Bounds { min: #lo, max: #hi, min_exclusive: #lo_excl, max_exclusive: #hi_excl },
                #default,
            ));
        });
    }
    let (ig, tg, wc) = input.generics.split_for_impl();
    Ok(quote! {
        impl #ig #rt::NodeParams for #name #tg #wc {
            fn decls() -> ::std::vec::Vec<::voxflow_runtime::ParamDecl> {
                let mut out = ::std::vec::Vec::new();
                #(#pushes)*
                out
            }
            fn value_errors(
                values: &#rt::ValueMap,
            ) -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
                let mut out = ::std::vec::Vec::new();
                #(#value_checks)*
                out
            }
            fn written() -> ::std::vec::Vec<&'static str> {
                let mut out = ::std::vec::Vec::new();
                #(#written)*
                out
            }
        }
    })
}

/// The field's doc comment lines joined by spaces.
fn doc_text(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let Meta::NameValue(nv) = &a.meta {
            if let Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
            {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    lines.join(" ").trim().to_string()
}

fn param_enum(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(name, "ParamEnum needs an enum"));
    };
    let mut variants = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new_spanned(
                v,
                "ParamEnum variants take no data",
            ));
        }
        let ident = &v.ident;
        variants.push(quote!(#name::#ident));
    }
    let rt = quote!(::voxflow_runtime::params);
    Ok(quote! {
        impl #rt::ParamEnum for #name {
            fn choices() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(#rt::variant_name(&#variants)),*]
            }
        }
        impl #rt::ParamKind for #name {
            fn param_type(_: &#rt::Bounds) -> ::voxflow_runtime::ParamType {
                ::voxflow_runtime::ParamType::Enum(<#name as #rt::ParamEnum>::choices())
            }
        }
        impl #rt::ListItem for #name {
            fn list_type() -> ::voxflow_runtime::ParamType {
                ::voxflow_runtime::ParamType::StrList(::core::option::Option::Some(
                    <#name as #rt::ParamEnum>::choices(),
                ))
            }
        }
    })
}
