//! mybank end to end (to be written).
