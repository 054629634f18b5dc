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

//!
//! This file holds the label selector as requirements; [`parser`] reads
//! its string form, [`fields`] is the field selector. Upstream:
//! `k8s.io/apimachinery/pkg/labels/selector.go` and `pkg/fields`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::names;

mod fields;
mod parser;

pub use fields::{FieldSelector, FieldTerm, field_value};

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

#[cfg(test)]
mod tests;
