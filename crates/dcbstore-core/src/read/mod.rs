//! What a read asks for ([`ReadOptions`]: window, direction, limit) and what
//! a decision's read returns ([`Boundary`]).

mod boundary;
mod options;

pub use boundary::{seen_through, Boundary};
pub use options::ReadOptions;
