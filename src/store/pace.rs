//! See `store` (mod.rs); filled in by the pace work.
