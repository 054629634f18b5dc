//! The `labs store` lab: etcd's semantics, narrated step by step.

use std::io::Write;

use super::Store;

/// Run the lab, printing what happens to `out`.
pub async fn run(out: &mut impl Write) -> anyhow::Result<()> {
    let store = Store::new();
    writeln!(out, "store at revision {}", store.revision())?;
    Ok(())
}
