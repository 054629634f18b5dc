//! Label selectors as controllers use them: "which pods are mine?".
//!
//! Matching a `LabelSelector` (`matchLabels` + `matchExpressions`) against an
//! object's labels is not this workbook's lesson, and kube-core's
//! [`Selector`] does it well, so controllers use it. The API server keeps its
//! own parser ([`crate::apiserver`]'s `selector` module), because reading
//! `kubectl get -l 'app in (web),tier!=db'` *is* part of its lesson.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
pub use kube::core::{Selector, SelectorExt};

/// The API form of a selector as something that matches labels (upstream's
/// `metav1.LabelSelectorAsSelector`). `None` for a selector Kubernetes
/// refuses to build (an unknown operator, `In`/`NotIn` without values,
/// `Exists`/`DoesNotExist` with values): the API server rejects such
/// objects, and acting on a selector we cannot read could release every pod.
///
/// Parse it once per sync, not once per pod.
pub fn as_selector(selector: &LabelSelector) -> Option<Selector> {
    for req in selector.match_expressions.iter().flatten() {
        let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
        let valid = match req.operator.as_str() {
            "In" | "NotIn" => has_values,
            "Exists" | "DoesNotExist" => !has_values,
            _ => false,
        };
        if !valid {
            return None;
        }
    }
    Selector::try_from(selector.clone()).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_all_must_hold() {
        let sel = as_selector(&LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                req("tier", "In", Some(&["frontend", "edge"])),
                req("canary", "DoesNotExist", None),
            ]),
        })
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("canary", "1")
        ])));
        assert!(!sel.matches(&labels(&[("tier", "edge")])));
    }

    #[test]
    fn an_empty_selector_selects_everything() {
        let sel = as_selector(&LabelSelector::default()).unwrap();
        assert!(sel.selects_all());
        assert!(sel.matches(&labels(&[])));
    }

    #[test]
    fn selectors_kubernetes_refuses_to_build_are_none() {
        for bad in [
            req("tier", "In", None),
            req("tier", "NotIn", Some(&[])),
            req("tier", "Exists", Some(&["x"])),
            req("tier", "Near", Some(&["x"])),
        ] {
            let sel = LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![bad.clone()]),
            };
            assert!(as_selector(&sel).is_none(), "{bad:?} should be refused");
        }
    }
}
