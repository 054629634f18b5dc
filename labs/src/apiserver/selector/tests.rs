//! Label and field selectors: parsing, printing back, matching, and the
//! two forms of a label selector agreeing.

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
