use dcbstore_derive::Event;

fn same(v: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(v)
}

#[derive(Event, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(name = "course_defined", level = "sourced", version = 2, crate = dcbstore_core, upcast(from = 2, with = same))]
struct CourseDefined {
    course_id: String,
}

fn main() {}
