//! The operations of each resource, as OpenAPI paths.
//!
//! kubectl reads one thing from them: whether the `patch` operation of a
//! kind (found by its `x-kubernetes-group-version-kind`) takes a
//! `fieldValidation` query parameter. If it does, `kubectl apply` and
//! `create` leave unknown-field checks to the server
//! (`?fieldValidation=Strict`); if not, kubectl validates on its own from
//! the Swagger 2.0 document. The other operations are there because other
//! clients (code generators, API explorers) read them, and because they
//! document the REST API the handlers serve: one path for the collection,
//! one for an object, one per subresource, each verb with upstream's
//! operation id (`patchAppsV1NamespacedDeployment`) and
//! `x-kubernetes-action`.

use serde_json::{Map, Value, json};

use super::schemas::Dialect;
use crate::apiserver::resources::{Resource, Subresource};

/// `apps` → `AppsV1`, `""` → `CoreV1`, `coordination.k8s.io` →
/// `CoordinationV1`: the group/version part of upstream's operation ids.
fn op_group(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let mut out = String::new();
    for part in group.trim_end_matches(".k8s.io").split('.') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    let mut v = version.chars();
    if let Some(first) = v.next() {
        out.extend(first.to_uppercase());
        out.push_str(v.as_str());
    }
    out
}

/// One query or path parameter in either dialect: v3 puts the type in a
/// `schema`, v2 beside the name.
fn param(dialect: Dialect, name: &str, place: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": place, "description": description});
    if place == "path" {
        p["required"] = json!(true);
    }
    match dialect {
        Dialect::V3 => p["schema"] = json!({"type": ty, "uniqueItems": true}),
        Dialect::V2 => {
            p["type"] = json!(ty);
            p["uniqueItems"] = json!(true);
        }
    }
    p
}

/// The parameters of writes. `fieldValidation` is the one kubectl looks for.
fn write_params(dialect: Dialect, patch: bool) -> Vec<Value> {
    let mut out = vec![
        param(
            dialect,
            "dryRun",
            "query",
            "string",
            "When present (`All`), the request is validated and answered but nothing is stored.",
        ),
        param(
            dialect,
            "fieldManager",
            "query",
            "string",
            "The name of the actor making the change, recorded in managedFields.",
        ),
        param(
            dialect,
            "fieldValidation",
            "query",
            "string",
            "What to do with fields the schema does not know: `Ignore` drops them, `Warn` (the default) drops them with a warning, `Strict` fails the request (400, `strict decoding error: unknown field \"spec.x\"`).",
        ),
    ];
    if patch {
        out.push(param(
            dialect,
            "force",
            "query",
            "boolean",
            "Server-side apply only: take over fields that another manager owns.",
        ));
    }
    out
}

fn list_params(dialect: Dialect) -> Vec<Value> {
    [
        (
            "labelSelector",
            "string",
            "Only objects whose labels match.",
        ),
        (
            "fieldSelector",
            "string",
            "Only objects whose fields match.",
        ),
        (
            "limit",
            "integer",
            "At most this many objects; `continue` gets the rest.",
        ),
        ("continue", "string", "The token of the previous page."),
        (
            "resourceVersion",
            "string",
            "The version of the list to start from.",
        ),
        ("timeoutSeconds", "integer", "How long a watch stays open."),
        (
            "watch",
            "boolean",
            "Stream changes instead of returning a list.",
        ),
        (
            "allowWatchBookmarks",
            "boolean",
            "Let a watch send BOOKMARK events.",
        ),
    ]
    .iter()
    .map(|(n, t, d)| param(dialect, n, "query", t, d))
    .collect()
}

/// A request body or response of schema `schema_name`.
fn body(dialect: Dialect, schema_name: &str, patch: bool) -> (Option<Value>, Vec<Value>) {
    let schema = dialect.reference(schema_name);
    match dialect {
        Dialect::V3 => {
            let types: &[&str] = if patch { PATCH_TYPES } else { &["*/*"] };
            let content: Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({"schema": schema})))
                .collect();
            (Some(json!({"content": content, "required": true})), vec![])
        }
        Dialect::V2 => (
            None,
            vec![json!({"name": "body", "in": "body", "required": true, "schema": schema})],
        ),
    }
}

fn response(dialect: Dialect, description: &str, schema_name: &str) -> Value {
    let schema = dialect.reference(schema_name);
    match dialect {
        Dialect::V3 => json!({"description": description, "content": {
            "application/json": {"schema": schema},
            "application/yaml": {"schema": schema},
            "application/vnd.kubernetes.protobuf": {"schema": schema},
        }}),
        Dialect::V2 => json!({"description": description, "schema": schema}),
    }
}

/// What one operation is: its verb, id, action, GVK and answers.
struct Op<'a> {
    verb: &'static str,
    id: String,
    action: &'static str,
    gvk: (&'a str, &'a str, &'a str),
    params: Vec<Value>,
    /// The request body's schema and whether it is a PATCH body.
    body: Option<(&'a str, bool)>,
    responses: Vec<(&'static str, &'static str, &'a str)>,
}

fn operation(dialect: Dialect, op: Op) -> (String, Value) {
    let (group, version, kind) = op.gvk;
    let mut o = json!({
        "operationId": op.id,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": version},
    });
    let mut params = op.params;
    if let Some((schema, patch)) = op.body {
        let (request_body, body_params) = body(dialect, schema, patch);
        if let Some(rb) = request_body {
            o["requestBody"] = rb;
        }
        params.extend(body_params);
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    let mut responses = Map::new();
    for (code, description, schema) in op.responses {
        responses.insert(code.into(), response(dialect, description, schema));
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    o["responses"] = Value::Object(responses);
    if dialect == Dialect::V2 {
        o["consumes"] = if op.verb == "patch" {
            json!(PATCH_TYPES)
        } else {
            json!(["*/*"])
        };
        o["produces"] = json!([
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf"
        ]);
    }
    (op.verb.to_string(), o)
}

// ANCHOR: patch_types
/// The patch formats a `patch` operation lists. The server also takes
/// `application/strategic-merge-patch+json`, but it is left out on
/// purpose: when a kind's patch operation lists it, `kubectl apply`
/// computes its three-way strategic merge patch from these schemas, and
/// they lack upstream's `x-kubernetes-patch-merge-key` and
/// `x-kubernetes-patch-strategy` (k8s-openapi does not carry them), so a
/// list such as `containers` would be replaced where it should be merged
/// by name. Without it kubectl uses its compiled-in types, which have them.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];
// ANCHOR_END: patch_types

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// The paths of one resource whose schema is `schema`
/// (`io.k8s.api.apps.v1.Deployment`), in `dialect`.
pub fn resource_paths(r: &Resource, schema: &str, dialect: Dialect) -> Vec<(String, Value)> {
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let g = op_group(r.group, r.version);
    let (scope, collection) = if r.namespaced {
        (
            "Namespaced",
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
        )
    } else {
        ("", format!("{base}/{}", r.plural))
    };
    let kind = r.kind;
    let gvk = (r.group, r.version, kind);
    let list = format!("{schema}List");
    let mut scope_params = vec![param(
        dialect,
        "pretty",
        "query",
        "string",
        "If 'true', the output is indented.",
    )];
    if r.namespaced {
        scope_params.push(param(
            dialect,
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let with_name = |what: &str| {
        let mut p = scope_params.clone();
        p.push(param(
            dialect,
            "name",
            "path",
            "string",
            &format!("name of the {what}"),
        ));
        p
    };
    let mut out = Vec::new();

    let ops = vec![
        Op {
            verb: "get",
            id: format!("list{g}{scope}{kind}"),
            action: "list",
            gvk,
            params: list_params(dialect),
            body: None,
            responses: vec![("200", "OK", &list)],
        },
        Op {
            verb: "post",
            id: format!("create{g}{scope}{kind}"),
            action: "post",
            gvk,
            params: write_params(dialect, false),
            body: Some((schema, false)),
            responses: vec![
                ("200", "OK", schema),
                ("201", "Created", schema),
                ("202", "Accepted", schema),
            ],
        },
        Op {
            verb: "delete",
            id: format!("delete{g}Collection{scope}{kind}"),
            action: "deletecollection",
            gvk,
            params: list_params(dialect),
            body: None,
            responses: vec![("200", "OK", STATUS)],
        },
    ];
    out.push((
        collection.clone(),
        path_item(dialect, scope_params.clone(), ops),
    ));

    let item = format!("{collection}/{{name}}");
    let ops = vec![
        Op {
            verb: "get",
            id: format!("read{g}{scope}{kind}"),
            action: "get",
            gvk,
            params: vec![],
            body: None,
            responses: vec![("200", "OK", schema)],
        },
        Op {
            verb: "put",
            id: format!("replace{g}{scope}{kind}"),
            action: "put",
            gvk,
            params: write_params(dialect, false),
            body: Some((schema, false)),
            responses: vec![("200", "OK", schema), ("201", "Created", schema)],
        },
        Op {
            verb: "patch",
            id: format!("patch{g}{scope}{kind}"),
            action: "patch",
            gvk,
            params: write_params(dialect, true),
            body: Some((PATCH, true)),
            responses: vec![("200", "OK", schema), ("201", "Created", schema)],
        },
        Op {
            verb: "delete",
            id: format!("delete{g}{scope}{kind}"),
            action: "delete",
            gvk,
            params: vec![],
            body: Some(("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", false)),
            responses: vec![("200", "OK", STATUS), ("202", "Accepted", STATUS)],
        },
    ];
    out.push((item.clone(), path_item(dialect, with_name(kind), ops)));

    // `status` and `scale`: the subresources with a schema kubectl could
    // ask about. (`binding` and `log` are answered but not described.)
    for sub in r.subresources {
        let (suffix, sub_schema, sub_gvk) = match sub {
            Subresource::Status => ("Status", schema, gvk),
            Subresource::Scale => (
                "Scale",
                "io.k8s.api.autoscaling.v1.Scale",
                ("autoscaling", "v1", "Scale"),
            ),
            Subresource::Binding
            | Subresource::Log
            | Subresource::Eviction
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward => continue,
        };
        let ops = vec![
            Op {
                verb: "get",
                id: format!("read{g}{scope}{kind}{suffix}"),
                action: "get",
                gvk: sub_gvk,
                params: vec![],
                body: None,
                responses: vec![("200", "OK", sub_schema)],
            },
            Op {
                verb: "put",
                id: format!("replace{g}{scope}{kind}{suffix}"),
                action: "put",
                gvk: sub_gvk,
                params: write_params(dialect, false),
                body: Some((sub_schema, false)),
                responses: vec![("200", "OK", sub_schema), ("201", "Created", sub_schema)],
            },
            Op {
                verb: "patch",
                id: format!("patch{g}{scope}{kind}{suffix}"),
                action: "patch",
                gvk: sub_gvk,
                params: write_params(dialect, true),
                body: Some((PATCH, true)),
                responses: vec![("200", "OK", sub_schema), ("201", "Created", sub_schema)],
            },
        ];
        let path = format!("{item}/{}", suffix.to_lowercase());
        out.push((path, path_item(dialect, with_name(kind), ops)));
    }

    // Every namespace at once: `kubectl get deploy -A`.
    if r.namespaced {
        let ops = vec![Op {
            verb: "get",
            id: format!("list{g}{kind}ForAllNamespaces"),
            action: "list",
            gvk,
            params: list_params(dialect),
            body: None,
            responses: vec![("200", "OK", &list)],
        }];
        let pretty = scope_params[..1].to_vec();
        out.push((
            format!("{base}/{}", r.plural),
            path_item(dialect, pretty, ops),
        ));
    }
    out
}

fn path_item(dialect: Dialect, params: Vec<Value>, ops: Vec<Op>) -> Value {
    let mut item = Map::new();
    for op in ops {
        let (verb, o) = operation(dialect, op);
        item.insert(verb, o);
    }
    item.insert("parameters".into(), Value::Array(params));
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_name_the_group_as_upstream() {
        assert_eq!(op_group("", "v1"), "CoreV1");
        assert_eq!(op_group("apps", "v1"), "AppsV1");
        assert_eq!(op_group("coordination.k8s.io", "v1"), "CoordinationV1");
        assert_eq!(
            op_group("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(op_group("autoscaling", "v2"), "AutoscalingV2");
    }
}
