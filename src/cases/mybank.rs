//! Placeholder until the mybank generator lands (issue 6 branch only).

use super::{Event, Params};

pub fn events(_params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    Box::new(std::iter::empty())
}
