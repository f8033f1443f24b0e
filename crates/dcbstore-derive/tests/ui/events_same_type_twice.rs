use dcbstore_derive::{Event, Events};

#[derive(Event, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(name = "course_defined", level = "sourced", crate = dcbstore_core)]
struct CourseDefined {
    course_id: String,
}

#[derive(Events)]
#[events(crate = dcbstore_core)]
enum CourseEvent {
    Defined(CourseDefined),
    Again(CourseDefined),
}

fn main() {}
