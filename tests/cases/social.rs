//! social end to end (to be written).
