//! Label selectors and field selectors: how a list or watch is narrowed.
//!
//! Labels are the glue of Kubernetes: a Deployment finds its ReplicaSets, a
//! ReplicaSet its Pods and a Service its endpoints by *selecting labels*, never
//! by name. The same selector travels in two forms:
//!
//! * inside objects, as `spec.selector` (`matchLabels` + `matchExpressions`,
//!   k8s-openapi's `LabelSelector`), turned into requirements by
//!   [`LabelSelector::from_api`];
//! * on the wire, as `?labelSelector=app=web,tier!=db` (kubectl's `-l`, and
//!   what `kubectl rollout history` sends with the Deployment's selector),
//!   parsed by [`str::parse`] and printed back by `Display`.
//!
//! Both become the same list of [`Requirement`]s, which is what upstream does
//! too (`k8s.io/apimachinery/pkg/labels`).
//!
//! Field selectors (`?fieldSelector=metadata.name=web`) are much simpler:
//! `=`/`==`/`!=` on a few well-known fields. kubectl uses them to watch one
//! object by name, kubelets to see only their pods (`spec.nodeName`), and
//! `kubectl describe` to find an object's events (`involvedObject.uid`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::names;

/// A selector that could not be parsed or is not valid. The API server
/// answers 400 Bad Request with this message (upstream prefixes list errors
/// with `unable to parse requirement: `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// The operators of label requirements, with upstream's names
/// (`k8s.io/apimachinery/pkg/selection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value` (same meaning; kept so `Display` prints what was parsed)
    DoubleEquals,
    /// `key!=value`: also matches objects without the label.
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`: also matches objects without the label.
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>5` (values compared as integers; used for node affinity)
    GreaterThan,
    /// `key<5`
    LessThan,
}

/// One condition on one label key. A selector matches when every
/// requirement does (requirements are ANDed; there is no OR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and de-duplicated, as upstream keeps them in a set. Empty for
    /// `Exists`/`DoesNotExist`, exactly one for `=`, `==`, `!=`, `>`, `<`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking what upstream's `NewRequirement`
    /// checks: a valid key, the right number of values, valid values.
    pub fn new(
        key: &str,
        operator: Operator,
        values: impl IntoIterator<Item = String>,
    ) -> Result<Requirement, SelectorError> {
        if let Some(msg) = names::is_qualified_name(key).into_iter().next() {
            return Err(SelectorError(format!("key: Invalid value: {key:?}: {msg}")));
        }
        let values: Vec<String> = values
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(SelectorError(
                    "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                        .into(),
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(SelectorError(format!(
                    "values: Invalid value: {values:?}: exact-match compatibility requires one single value"
                )));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
                )));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(SelectorError(format!(
                        "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
                    )));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(SelectorError(format!(
                        "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
                        values[0]
                    )));
                }
            }
            _ => {}
        }
        if !matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if let Some(msg) = names::is_valid_label_value(v).into_iter().next() {
                    return Err(SelectorError(format!(
                        "values[{i}][{key}]: Invalid value: {v:?}: {msg}"
                    )));
                }
            }
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Does this requirement hold for these labels?
    ///
    /// The negative operators (`!=`, `notin`) match objects that do not
    /// carry the key at all: "not app=web" includes "has no app label".
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.contains(v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's canonical form: `key=v`, `key!=v`, `key in (a,b)`,
    /// `key`, `!key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let values = self.values.join(",");
        match self.operator {
            Operator::Equals => write!(f, "{key}={values}"),
            Operator::DoubleEquals => write!(f, "{key}=={values}"),
            Operator::NotEquals => write!(f, "{key}!={values}"),
            Operator::In => write!(f, "{key} in ({values})"),
            Operator::NotIn => write!(f, "{key} notin ({values})"),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::GreaterThan => write!(f, "{key}>{values}"),
            Operator::LessThan => write!(f, "{key}<{values}"),
        }
    }
}

/// A parsed label selector: requirements sorted by key.
///
/// The empty selector selects everything (upstream's `labels.Everything()`);
/// this is also what an empty `spec.selector` (`{}`) means, which is why
/// validation rejects empty selectors on Deployments and ReplicaSets: such a
/// controller would adopt every pod in the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        // Sorting makes the printed form canonical: two selectors that mean
        // the same print the same (upstream sorts by key too).
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Do these labels satisfy every requirement?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches an object given as JSON, by its `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.is_empty() || self.matches(&labels_of(obj))
    }

    /// Converts an object's `spec.selector` (upstream's
    /// `metav1.LabelSelectorAsSelector`). `matchLabels` entries become `=`
    /// requirements; `matchExpressions` use the capitalised API operator
    /// names `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub fn from_api(
        sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(key, Operator::Equals, [value.clone()])?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            requirements.push(Requirement::new(
                &expr.key,
                operator,
                expr.values.iter().flatten().cloned(),
            )?);
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// [`LabelSelector::from_api`] for a selector held as JSON
    /// (`{"matchLabels":{..},"matchExpressions":[..]}`).
    pub fn from_api_value(sel: &Value) -> Result<Self, SelectorError> {
        let sel: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(sel.clone())
                .map_err(|e| SelectorError(format!("invalid label selector: {e}")))?;
        LabelSelector::from_api(&sel)
    }
}

/// An object's `metadata.labels` as a map (non-string values are skipped;
/// they cannot occur in a decoded object).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl fmt::Display for LabelSelector {
    /// The string kubectl puts into `?labelSelector=`: requirements joined
    /// by `,`, sorted by key. The empty selector prints as the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Tokens of the selector language, as upstream's lexer produces them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    /// `!`
    Not,
    /// `!=`
    NotEquals,
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `>`
    GreaterThan,
    /// `<`
    LessThan,
    OpenParen,
    CloseParen,
    Comma,
    In,
    NotIn,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Identifier(s) => f.write_str(s),
            Token::Not => f.write_str("!"),
            Token::NotEquals => f.write_str("!="),
            Token::Equals => f.write_str("="),
            Token::DoubleEquals => f.write_str("=="),
            Token::GreaterThan => f.write_str(">"),
            Token::LessThan => f.write_str("<"),
            Token::OpenParen => f.write_str("("),
            Token::CloseParen => f.write_str(")"),
            Token::Comma => f.write_str(","),
            Token::In => f.write_str("in"),
            Token::NotIn => f.write_str("notin"),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a selector string into tokens. Whitespace separates tokens and is
/// otherwise ignored, so `app = web` and `app=web` are the same; `in` and
/// `notin` are keywords only when they stand alone.
fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if is_special(c) {
            chars.next();
            let two = chars.peek() == Some(&'=');
            let token = match (c, two) {
                ('!', true) => Token::NotEquals,
                ('=', true) => Token::DoubleEquals,
                ('!', false) => Token::Not,
                ('=', false) => Token::Equals,
                ('>', _) => Token::GreaterThan,
                ('<', _) => Token::LessThan,
                ('(', _) => Token::OpenParen,
                (')', _) => Token::CloseParen,
                _ => Token::Comma,
            };
            if matches!(token, Token::NotEquals | Token::DoubleEquals) {
                chars.next();
            }
            tokens.push(token);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || is_special(c) {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word),
            });
        }
    }
    tokens
}

/// A small recursive-descent parser over the tokens, following upstream's
/// grammar:
///
/// ```text
/// selector    = [ requirement { "," requirement } ]
/// requirement = [ "!" ] key
///             | key ( "=" | "==" | "!=" | ">" | "<" ) [ value ]
///             | key ( "in" | "notin" ) "(" [ value { "," [ value ] } ] ")"
/// ```
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn found(t: Option<&Token>) -> String {
        t.map_or_else(|| "end of string".to_string(), |t| t.to_string())
    }

    fn parse(mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek().is_none() {
            return Ok(requirements);
        }
        loop {
            match self.peek() {
                Some(Token::Identifier(_)) | Some(Token::Not) => {
                    requirements.push(self.parse_requirement()?)
                }
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        Self::found(t)
                    )));
                }
            }
            match self.next() {
                None => return Ok(requirements),
                Some(Token::Comma) => {
                    if !matches!(self.peek(), Some(Token::Identifier(_)) | Some(Token::Not)) {
                        return Err(SelectorError(format!(
                            "found '{}', expected: identifier after ','",
                            Self::found(self.peek())
                        )));
                    }
                }
                Some(t) => {
                    return Err(SelectorError(format!(
                        "found '{t}', expected: ',' or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek() == Some(&Token::Not);
        if negated {
            self.next();
        }
        let key = match self.next() {
            Some(Token::Identifier(k)) => k,
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: identifier",
                    Self::found(t.as_ref())
                )));
            }
        };
        // A bare key (or `!key`) ends at a comma or at the end.
        if matches!(self.peek(), None | Some(Token::Comma)) {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, []);
        }
        if negated {
            return Err(SelectorError(format!(
                "found '{}', expected: ',' or 'end of string'",
                Self::found(self.peek())
            )));
        }
        let operator = match self.next() {
            Some(Token::Equals) => Operator::Equals,
            Some(Token::DoubleEquals) => Operator::DoubleEquals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::GreaterThan) => Operator::GreaterThan,
            Some(Token::LessThan) => Operator::LessThan,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    Self::found(t.as_ref())
                )));
            }
        };
        let values = if matches!(operator, Operator::In | Operator::NotIn) {
            self.parse_set()?
        } else {
            // `app=` is allowed and means "the label is set to the empty string".
            match self.peek() {
                None | Some(Token::Comma) => vec![String::new()],
                Some(Token::Identifier(v)) => {
                    let v = v.clone();
                    self.next();
                    vec![v]
                }
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: identifier",
                        Self::found(t)
                    )));
                }
            }
        };
        Requirement::new(&key, operator, values)
    }

    /// `( a, b )`; an empty slot means the empty string, as upstream.
    fn parse_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::OpenParen) => {}
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: '('",
                    Self::found(t.as_ref())
                )));
            }
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Identifier(v)) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Some(Token::CloseParen) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        Self::found(t.as_ref())
                    )));
                }
            }
        }
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h` (and `==`, `>`, `<`).
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        let requirements = Parser {
            tokens: lex(s),
            pos: 0,
        }
        .parse()?;
        Ok(LabelSelector::from_requirements(requirements))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_and_print_canonical_form() {
        let cases = [
            ("", ""),
            ("app=web", "app=web"),
            ("app==web", "app==web"),
            ("  app =  web , tier != db ", "app=web,tier!=db"),
            ("tier in (b, a),app", "app,tier in (a,b)"),
            ("env notin (prod),!canary", "!canary,env notin (prod)"),
            (
                "a=b,c!=d,e in (x,y),f notin (z),g,!h",
                "a=b,c!=d,e in (x,y),f notin (z),g,!h",
            ),
            ("x=", "x="),
            ("x in (a,a,b)", "x in (a,b)"),
            ("gen>3", "gen>3"),
            ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
        ];
        for (input, want) in cases {
            let sel: LabelSelector = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "input {input:?}");
            // Printing is a fixed point: the canonical form parses to itself.
            let again: LabelSelector = want.parse().unwrap();
            assert_eq!(again, sel);
        }
    }

    #[test]
    fn bad_syntax_is_an_error() {
        let cases = [
            (
                "app=web,",
                "found 'end of string', expected: identifier after ','",
            ),
            (
                ",app",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "app web",
                "found 'web', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("app in web", "found 'web', expected: '('"),
            (
                "app in (a",
                "found 'end of string', expected: ',', ')' or identifier",
            ),
            ("!app=web", "found '=', expected: ',' or 'end of string'"),
            ("app=(", "found '(', expected: identifier"),
            (
                "=web",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "gen>x",
                "values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, want) in cases {
            let err = input.parse::<LabelSelector>().unwrap_err();
            assert_eq!(err.0, want, "input {input:?}");
        }
        // Invalid keys and values carry upstream's validation message.
        let err = "a b/c=d".parse::<LabelSelector>().unwrap_err();
        assert!(err.0.starts_with("found 'b/c'"), "{err}");
        let err = "bad_-=x".parse::<LabelSelector>().unwrap_err();
        assert!(
            err.0
                .starts_with("key: Invalid value: \"bad_-\": name part must consist"),
            "{err}"
        );
        let err = "app=-web".parse::<LabelSelector>().unwrap_err();
        assert!(
            err.0
                .starts_with("values[0][app]: Invalid value: \"-web\": a valid label"),
            "{err}"
        );
    }

    #[test]
    fn matching() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("gen", "5")]);
        let bare = labels(&[]);
        let cases = [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app!=db", true, true),
            ("app in (web,db)", true, false),
            ("app notin (web)", false, true),
            ("app", true, false),
            ("!app", false, true),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            ("gen>4", true, false),
            ("gen<5", false, false),
            ("x=", false, false),
        ];
        for (input, want_web, want_bare) in cases {
            let sel: LabelSelector = input.parse().unwrap();
            assert_eq!(sel.matches(&web), want_web, "{input} on web");
            assert_eq!(sel.matches(&bare), want_bare, "{input} on bare");
        }
        assert!(
            "x=".parse::<LabelSelector>()
                .unwrap()
                .matches(&labels(&[("x", "")]))
        );
    }

    #[test]
    fn from_api_selector() {
        let sel = metav1::LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                metav1::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into(), "back".into()]),
                },
                metav1::LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                metav1::LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["dev".into()]),
                },
                metav1::LabelSelectorRequirement {
                    key: "team".into(),
                    operator: "Exists".into(),
                    values: Some(vec![]),
                },
            ]),
        };
        let s = LabelSelector::from_api(&sel).unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env notin (dev),team,tier in (back,front)"
        );
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("team", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "front")])));

        // The empty API selector selects everything.
        assert!(
            LabelSelector::from_api(&Default::default())
                .unwrap()
                .is_empty()
        );

        let bad = |op: &str, values: Option<Vec<String>>| metav1::LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![metav1::LabelSelectorRequirement {
                key: "k".into(),
                operator: op.into(),
                values,
            }]),
        };
        assert_eq!(
            LabelSelector::from_api(&bad("Foo", None)).unwrap_err().0,
            "\"Foo\" is not a valid label selector operator"
        );
        assert!(LabelSelector::from_api(&bad("In", Some(vec![]))).is_err());
        assert!(LabelSelector::from_api(&bad("Exists", Some(vec!["x".into()]))).is_err());

        let v = LabelSelector::from_api_value(&json!({"matchLabels": {"app": "web"}})).unwrap();
        assert_eq!(v.to_string(), "app=web");
        assert!(v.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!v.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"},
        });
        let cases = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name!=web-1", false),
            ("metadata.name=web-1,spec.nodeName=n1", true),
            ("metadata.name=web-1,spec.nodeName!=n1", false),
            ("spec.nodeName=", false),
            ("spec.schedulerName=", true), // missing field reads as ""
            ("status.phase=Running", true),
        ];
        for (input, want) in cases {
            let sel: FieldSelector = input.parse().unwrap();
            assert_eq!(sel.matches(&pod), want, "{input}");
        }
        let err = "metadata.name".parse::<FieldSelector>().unwrap_err();
        assert_eq!(
            err.0,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        // kubectl describe's event query, in any order.
        let ev = json!({"involvedObject": {"kind": "Deployment", "name": "web", "uid": "u1"}});
        let sel: FieldSelector =
            "involvedObject.uid=u1,involvedObject.name=web,involvedObject.kind=Deployment"
                .parse()
                .unwrap();
        assert!(sel.matches(&ev));
        // Escapes let values contain separators.
        let sel: FieldSelector = r"metadata.name=a\,b".parse().unwrap();
        assert_eq!(sel.terms()[0].value, "a,b");
        assert_eq!(sel.to_string(), r"metadata.name=a\,b");
    }

    proptest::proptest! {
        /// Any string parses or fails cleanly, and whatever parses prints
        /// a canonical form that parses back to the same selector.
        #[test]
        fn label_selector_strings(input in "[a-z=!(), in\\\\/.é-]{0,24}") {
            if let Ok(sel) = input.parse::<LabelSelector>() {
                let printed = sel.to_string();
                proptest::prop_assert_eq!(printed.parse::<LabelSelector>().unwrap(), sel);
            }
            let _ = input.parse::<FieldSelector>();
        }
    }
}
