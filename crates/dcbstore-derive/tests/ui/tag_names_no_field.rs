use dcbstore_derive::Event;

#[derive(Event, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(name = "course_defined", level = "sourced", crate = dcbstore_core)]
#[tag("course:{course}")]
struct CourseDefined {
    course_id: String,
}

fn main() {}
