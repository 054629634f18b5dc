//! The schemas of the served kinds, from k8s-openapi's types.
//!
//! k8s-openapi is generated from upstream's own OpenAPI definitions, and
//! with its `schemars` feature every type can give its schema back —
//! upstream's field descriptions included. [`schemas`] asks for the schema
//! of each kind (through [`Resource::with_type`], the one place that maps a
//! kind to its type), collects every definition they refer to, and shapes
//! them the way upstream's documents look and kubectl reads them:
//!
//! - named as upstream names them (`io.k8s.api.apps.v1.Deployment`) and
//!   referred to by `$ref` (`#/components/schemas/…` in v3,
//!   `#/definitions/…` in v2);
//! - in v3 a reference with a description beside it is wrapped in a
//!   one-element `allOf`, as upstream does (OpenAPI 3.0 ignores the
//!   siblings of a `$ref`); Swagger 2.0 keeps them side by side;
//! - each top-level kind carries `x-kubernetes-group-version-kind`: that is
//!   how `kubectl explain deployment` finds the schema of a Deployment
//!   among all the others;
//! - `IntOrString` and `Quantity` get upstream's `oneOf` of their two
//!   types (v3) or are strings (v2), where schemars' output only has the
//!   `x-kubernetes-int-or-string` flag.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::transform::RemoveRefSiblings;
use serde_json::{Map, Value, json};

use crate::apiserver::resources::{KindType, Resource, Subresource, TypeVisitor};

/// The two document formats: OpenAPI 3.0 (`/openapi/v3/…`, what kubectl
/// reads today) and Swagger 2.0 (`/openapi/v2`, what older clients read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    V3,
    V2,
}

impl Dialect {
    /// Where a `$ref` points: `#/components/schemas/NAME` or
    /// `#/definitions/NAME`.
    pub fn reference(self, name: &str) -> Value {
        match self {
            Dialect::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
            Dialect::V2 => json!({"$ref": format!("#/definitions/{name}")}),
        }
    }

    fn generator(self) -> SchemaGenerator {
        SchemaSettings::openapi3()
            .with(|s| {
                if self == Dialect::V2 {
                    s.definitions_path = "/definitions".into();
                    s.transforms.retain(|t| !t.is::<RemoveRefSiblings>());
                }
            })
            .into_generator()
    }
}

/// The schema name of a kind's type (`io.k8s.api.apps.v1.Deployment`),
/// and, as a side effect, its schema and every schema it refers to are
/// added to the generator's definitions.
struct Register<'a>(&'a mut SchemaGenerator);

impl TypeVisitor for Register<'_> {
    type Output = String;
    fn visit<T: KindType>(self) -> String {
        self.0.subschema_for::<T>();
        T::schema_name().into_owned()
    }
}

/// The name a kind's schema has in the documents, if the kind has a type.
pub fn schema_name(r: &Resource) -> Option<String> {
    struct Name;
    impl TypeVisitor for Name {
        type Output = String;
        fn visit<T: KindType>(self) -> String {
            T::schema_name().into_owned()
        }
    }
    r.with_type(Name)
}

/// The schemas one document carries: the kinds in `resources`, their
/// lists, what they refer to, and the few shared types the operations of
/// [`super::paths`] refer to (`Status`, `DeleteOptions`, `Patch`, `Scale`).
pub fn schemas(resources: &[&Resource], dialect: Dialect) -> Map<String, Value> {
    let mut generator = dialect.generator();
    let mut kinds = Vec::new();
    for r in resources {
        if let Some(name) = r.with_type(Register(&mut generator)) {
            kinds.push((*r, name));
        }
    }
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    let scale = resources.iter().any(|r| r.has(Subresource::Scale));
    if scale {
        generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
    }
    let mut defs = generator.take_definitions(true);

    for (r, name) in &kinds {
        if let Some(Value::Object(schema)) = defs.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                gvk(r.group, r.version, r.kind),
            );
        }
        defs.insert(format!("{name}List"), list_schema(r, name, dialect));
    }
    for (name, group, version, kind) in [
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "",
            "v1",
            "Status",
        ),
        (
            "io.k8s.api.autoscaling.v1.Scale",
            "autoscaling",
            "v1",
            "Scale",
        ),
    ] {
        if let Some(Value::Object(schema)) = defs.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                gvk(group, version, kind),
            );
        }
    }
    // The body of a PATCH: any of the four patch formats, so no schema
    // beyond "an object".
    defs.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({
            "description": "The body of a PATCH request: a JSON patch, a JSON merge patch, a strategic merge patch or an apply configuration, as the Content-Type says.",
            "type": "object",
        }),
    );
    for name in [
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
    ] {
        if let Some(Value::Object(schema)) = defs.get_mut(name) {
            int_or_string(schema, dialect, name.ends_with("IntOrString"));
        }
    }
    // Sorted, as upstream's documents are, so that a document (and its
    // hash) depends only on what it describes.
    defs.into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// `[{"group": "apps", "kind": "Deployment", "version": "v1"}]`: a list,
/// because upstream's shared types (`DeleteOptions`, `WatchEvent`) belong
/// to many group/versions at once.
fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// `DeploymentList`: k8s-openapi has one generic `List<T>` with no schema
/// of its own, so the list kinds are written here, with upstream's fields.
fn list_schema(r: &Resource, item: &str, dialect: Dialect) -> Value {
    let item_ref = dialect.reference(item);
    let meta_ref = dialect.reference("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta");
    let metadata = match dialect {
        Dialect::V3 => json!({"allOf": [meta_ref], "description": LIST_META}),
        Dialect::V2 => {
            let mut m = meta_ref;
            m["description"] = json!(LIST_META);
            m
        }
    };
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "items": {"description": format!("The {} objects of the list.", r.kind), "type": "array", "items": item_ref},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": metadata,
        },
        "x-kubernetes-group-version-kind": gvk(r.group, r.version, &r.list_kind()),
    })
}

const LIST_META: &str = "Standard list metadata: resourceVersion and continue.";

/// `IntOrString` (`3` or `"25%"`) and `Quantity` (`"500m"` or `2`) in
/// upstream's shapes. OpenAPI v3 says "one of these types" and has no
/// `type` of its own, which is why `kubectl explain` names the schema
/// instead (`maxSurge <IntOrString>`, `limits <map[string]Quantity>`),
/// where `Time`, a plain string, prints as `<string>`. Swagger 2.0 has no
/// `oneOf`: there both are strings. `IntOrString` keeps its
/// `int-or-string` format in both. schemars' `x-kubernetes-int-or-string`
/// flag is dropped: upstream's built-in schemas do not carry it (it is the
/// CRD schemas' way of saying the same), and on `Quantity` it is wrong.
fn int_or_string(schema: &mut Map<String, Value>, dialect: Dialect, int_or_string: bool) {
    schema.remove("x-kubernetes-int-or-string");
    if int_or_string {
        schema.insert("format".into(), json!("int-or-string"));
    }
    match dialect {
        Dialect::V3 => {
            let types = if int_or_string {
                json!([{"type": "integer"}, {"type": "string"}])
            } else {
                json!([{"type": "string"}, {"type": "number"}])
            };
            schema.insert("oneOf".into(), types);
        }
        Dialect::V2 => {
            schema.insert("type".into(), json!("string"));
        }
    }
}
