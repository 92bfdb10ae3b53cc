//! gettaxi end to end (to be written).
