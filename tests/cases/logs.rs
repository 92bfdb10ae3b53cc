//! logs end to end (to be written).
