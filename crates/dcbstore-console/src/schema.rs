//! `/schema`: the application's committed schema file (`--schema FILE`):
//! each event, its versions, fields and level.

use axum::extract::State;
use maud::{html, Markup};

use super::error::PageError;
use super::page;
use super::state::Shared;

/// `GET /schema`.
pub(crate) async fn page(State(console): State<Shared>) -> Result<Markup, PageError> {
    let Some(schema) = console.options.schema.as_deref() else {
        return Ok(page::shell(
            "Schema",
            "/schema",
            html! {
                h1 { "Schema" }
                p.muted { "No schema file: start the console with --schema FILE (the application's committed schema file, see `dcbstore::schema`)." }
            },
        ));
    };
    let latest = schema.latest_versions();
    Ok(page::shell(
        "Schema",
        "/schema",
        html! {
            h1 { "Schema" }
            p.muted { (latest.len()) " events, " (schema.events.len()) " versions (format " (schema.format) ")." }
            table #schema-summary {
                thead { tr { th { "event" } th.num { "latest version" } th { "kind" } th.num { "level" } th { "fields" } } }
                tbody {
                    @for v in &latest {
                        tr {
                            td { a href=(format!("/events?type={}", super::filter::encode(&v.name))) { (v.name) } }
                            td.num { (v.version) }
                            td { (format!("{:?}", v.kind).to_lowercase()) }
                            td.num { (u8::from(v.level)) " " span.muted { (level_name(u8::from(v.level))) } }
                            td { (v.fields.len()) }
                        }
                    }
                }
            }
            @for v in &schema.events {
                h2 id=(format!("{}-v{}", v.name, v.version)) { (v.name) " v" (v.version) }
                p.muted { "fingerprint " code { (v.fingerprint) } }
                table {
                    thead { tr { th { "field" } th { "type" } th { "required" } } }
                    tbody {
                        @for f in &v.fields {
                            tr { td { code { (f.name) } } td { code { (f.r#type) } } td { (if f.required { "yes" } else { "no" }) } }
                        }
                    }
                }
            }
        },
    ))
}

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "sync",
        2 => "job",
        3 => "outbox",
        4 => "broker",
        5 => "sourced",
        _ => "",
    }
}
