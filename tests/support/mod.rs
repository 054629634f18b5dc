//! Helpers the cross-crate tests share.
//!
//! This is the library target of the root `workbook` package; it lives under
//! `tests/` because the repository's top level is fixed. Each file in
//! `tests/` is one test binary that uses these helpers.

use std::path::{Path, PathBuf};

/// The repository root (the workspace root, where `book/`, `labs/`, `demo/`
/// live).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The book's directory (the one holding `book.toml`).
pub fn book_dir() -> PathBuf {
    workspace_root().join("book")
}

pub mod apiserver;
pub mod cluster;
