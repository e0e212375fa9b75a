//! See `store` (mod.rs); filled in by the journal work.
