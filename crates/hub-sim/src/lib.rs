//! hub-sim
