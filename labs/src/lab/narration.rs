//! The narrator's harness that every narrated lab shares: stable aliases
//! for generated names, one line of narration ([`say!`]), a block of text
//! printed with an indent, and waiting on the (paused) clock until the
//! cluster reaches a state.
//!
//! Generated names (`web-7x2kq`) come from a random suffix, so a lab that
//! printed them would print something new on every run and could not be
//! snapshot-tested. The labs print stable aliases instead, numbered in order
//! of first appearance (`web-#1`, `web-#2`, ...).

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;

/// `say!(lab, "format", args…)`: one line of a lab's narration, written to
/// the lab's `out` (`say!(lab)` writes an empty line). A write error ends
/// the lab with `?`, as a closed stdout should.
macro_rules! say {
    ($lab:expr) => { writeln!($lab.out)? };
    ($lab:expr, $($arg:tt)*) => { writeln!($lab.out, $($arg)*)? };
}
pub(crate) use say;

/// Generated name → stable alias, per lab run.
#[derive(Debug, Default)]
pub struct NameAliases {
    aliases: HashMap<String, String>,
    counters: HashMap<String, usize>,
}

impl NameAliases {
    /// The alias of `name`. A generated name (`<prefix>-<5 chars>`, as
    /// `generateName` makes them) gets the next number for its prefix; a
    /// hand-made name keeps itself.
    pub fn alias(&mut self, name: &str) -> String {
        if let Some(a) = self.aliases.get(name) {
            return a.clone();
        }
        let alias = match name.rsplit_once('-') {
            Some((prefix, suffix)) if suffix.len() == 5 => {
                let n = self.counters.entry(prefix.to_string()).or_insert(0);
                *n += 1;
                format!("{prefix}-#{n}")
            }
            _ => name.to_string(),
        };
        self.aliases.insert(name.to_string(), alias.clone());
        alias
    }

    /// The alias already given to `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.aliases.get(name).map(String::as_str)
    }

    /// The real name behind `alias`.
    pub fn name_of(&self, alias: &str) -> Option<String> {
        self.aliases
            .iter()
            .find(|(_, a)| *a == alias)
            .map(|(n, _)| n.clone())
    }

    /// `text` with every aliased name replaced by its alias.
    pub fn replace_in(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (name, alias) in &self.aliases {
            text = text.replace(name.as_str(), alias);
        }
        text
    }
}

/// Prints `text` line by line, each line after `indent` (a command's
/// output shown under the command).
pub fn print_block(out: &mut dyn Write, text: &str, indent: &str) -> std::io::Result<()> {
    for line in text.lines() {
        writeln!(out, "{indent}{line}")?;
    }
    Ok(())
}

/// Lets the cluster run until `done` holds, looking every 100 ms. On the
/// paused clock of a narrated lab this takes no real time: tokio advances
/// the clock whenever every task waits, so the components do exactly the
/// work they would do in that much time. Fails, saying `what`, after `limit`.
pub async fn wait_until<F, Fut>(
    client: &kube::Client,
    what: &str,
    limit: Duration,
    mut done: F,
) -> anyhow::Result<()>
where
    F: FnMut(kube::Client) -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while !done(client.clone()).await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster did not get there: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// [`wait_until`] after a first 100 ms (so that what the lab just did has
/// been seen), within a minute, and then one second more, so that nothing
/// is still on its way when the lab prints what happened.
pub async fn settle<F, Fut>(client: &kube::Client, what: &str, done: F) -> anyhow::Result<()>
where
    F: FnMut(kube::Client) -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_until(client, what, Duration::from_secs(60), done).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Sorts aliases in their numeric order: `web-#10` after `web-#9`.
pub fn alias_order(alias: &str) -> (String, usize) {
    match alias.rsplit_once("-#") {
        Some((prefix, n)) => (prefix.to_string(), n.parse().unwrap_or(0)),
        None => (alias.to_string(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_numbered_per_prefix_in_order_of_appearance() {
        let mut a = NameAliases::default();
        assert_eq!(a.alias("web-7x2kq"), "web-#1");
        assert_eq!(a.alias("db-abcde"), "db-#1");
        assert_eq!(a.alias("web-zzzzz"), "web-#2");
        assert_eq!(a.alias("web-7x2kq"), "web-#1", "stable");
        assert_eq!(a.alias("handmade"), "handmade");
        assert_eq!(a.name_of("web-#2").as_deref(), Some("web-zzzzz"));
        assert_eq!(a.get("db-abcde"), Some("db-#1"));
        assert_eq!(a.replace_in("bound web-zzzzz"), "bound web-#2");
    }
}
