//! movieflix end to end (to be written).
