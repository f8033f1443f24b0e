use dcbstore_derive::Event;

#[derive(Event, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(name = "course_defined", level = "kafka", crate = dcbstore_core)]
struct CourseDefined {
    course_id: String,
}

fn main() {}
