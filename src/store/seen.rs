//! See `store` (mod.rs); filled in by the seen work.
