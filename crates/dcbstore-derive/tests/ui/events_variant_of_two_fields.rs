use dcbstore_derive::Events;

#[derive(Events)]
#[events(crate = dcbstore_core)]
enum CourseEvent {
    Defined(String, u32),
}

fn main() {}
