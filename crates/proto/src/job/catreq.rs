//! Being written (see mod.rs).
