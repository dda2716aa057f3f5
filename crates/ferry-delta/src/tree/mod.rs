//! Release-directory deltas.
