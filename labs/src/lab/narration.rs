//! Helpers the narrated labs share.
//!
//! Generated names (`web-7x2kq`) come from a random suffix, so a lab that
//! printed them would print something new on every run and could not be
//! snapshot-tested. The labs print stable aliases instead, numbered in order
//! of first appearance (`web-#1`, `web-#2`, ...).

use std::collections::HashMap;

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
