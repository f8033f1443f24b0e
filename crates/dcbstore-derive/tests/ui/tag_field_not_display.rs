use dcbstore_derive::Event;

#[derive(Event, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(name = "course_defined", level = "sourced", crate = dcbstore_core)]
struct CourseDefined {
    #[tag]
    course_ids: Vec<String>,
}

fn main() {}
