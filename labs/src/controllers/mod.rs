//! Controllers: level-triggered loops that read objects and write objects, each a pure decision core plus plumbing.

pub mod deployment;
