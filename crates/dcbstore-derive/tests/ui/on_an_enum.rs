use dcbstore_derive::Event;

#[derive(Event)]
#[event(name = "course_defined", level = "sourced", crate = dcbstore_core)]
enum CourseDefined {
    Now,
}

fn main() {}
