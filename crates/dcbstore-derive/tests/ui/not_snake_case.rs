use dcbstore_derive::Event;

#[derive(Event, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(name = "CourseDefined", level = "sourced", crate = dcbstore_core)]
struct CourseDefined {
    course_id: String,
}

fn main() {}
