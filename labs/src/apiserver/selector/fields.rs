//! Field selectors, `metadata.name=web,spec.nodeName!=n1`: `=`, `==` and
//! `!=` on dotted field paths, a backslash escapes `,` and `=` in values.
//!
//! Upstream: `k8s.io/apimachinery/pkg/fields/selector.go`, with the
//! fields each resource supports (`GetAttrs` of its strategy).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::SelectorError;

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    /// A dotted path such as `metadata.name` or `involvedObject.uid`.
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    pub value: String,
}

/// A parsed field selector: terms ANDed together.
///
/// Upstream supports only a fixed set of fields per resource (every resource
/// has `metadata.name` and `metadata.namespace`; pods add `spec.nodeName`,
/// `status.phase`, `spec.schedulerName`...; events add `involvedObject.*`,
/// `reason`, `type`, `source`). We look any dotted path up in the JSON
/// object, so a missing field reads as `""` — the value upstream's field
/// sets hold for an unset field too. The HTTP layer may use
/// [`FieldSelector::terms`] to reject fields upstream would not know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// True when there are no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in the order given.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Does the object satisfy every term?
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(obj, &t.field);
            (have == t.value) != t.negated
        })
    }
}

/// The string value of a dotted field path; `""` when it is missing or null.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits at unescaped `sep`, honouring upstream's `\` escapes (`\,`, `\=`,
/// `\\`), which let a value contain the separators.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            parts.last_mut().unwrap().push(c);
            if let Some(n) = chars.next() {
                parts.last_mut().unwrap().push(n);
            }
        } else if c == sep {
            parts.push(String::new());
        } else {
            parts.last_mut().unwrap().push(c);
        }
    }
    parts
}

fn unescape(s: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => {
                    return Err(SelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{n}"
                    )));
                }
                None => {
                    return Err(SelectorError(
                        "invalid field selector: unterminated escape sequence".into(),
                    ));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Finds the first unescaped occurrence of `op` in `term` (a byte offset;
/// walking by `char` keeps multi-byte UTF-8 input from splitting a character).
fn find_unescaped(term: &str, op: &str) -> Option<usize> {
    let mut chars = term.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
            continue;
        }
        if term[i..].starts_with(op) {
            return Some(i);
        }
    }
    None
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    /// Parses `metadata.name=web,spec.nodeName!=n1` (and `==`).
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::everything());
        }
        for term in split_unescaped(s, ',') {
            if term.is_empty() {
                continue;
            }
            // `!=` before `==` before `=`, so `a!=b` is not read as `a!` = `b`.
            let parsed =
                [("!=", true), ("==", false), ("=", false)]
                    .iter()
                    .find_map(|(op, negated)| {
                        find_unescaped(&term, op).map(|i| (i, op.len(), *negated))
                    });
            let Some((i, len, negated)) = parsed else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            terms.push(FieldTerm {
                field: unescape(term[..i].trim())?,
                negated,
                value: unescape(term[i + len..].trim())?,
            });
        }
        Ok(FieldSelector { terms })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=")
        };
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", t.field, escape(&t.value))?;
        }
        Ok(())
    }
}
