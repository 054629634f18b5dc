//! What a request asks for: the resource, namespace, name and subresource
//! its path names ([`Target`], [`parse_path`]), its query ([`Query`]), and
//! the whole of it as handlers see it ([`Call`]).
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/request` (`RequestInfo`, built
//! by `requestinfo.go` from the URL) and the body decoding of
//! `endpoints/handlers/rest.go`. Every handler depends on this module and it
//! depends on none of them, which keeps the files of the API server a
//! graph without cycles: `request` ← `handlers`, `watch`, `logs` ← `server`.
//!
//! Kubernetes URLs have one regular shape, so instead of registering a route
//! per resource the server parses the path against the resource table:
//!
//! ```text
//! /api/v1/namespaces/{ns}/pods/{name}/status
//! ^^^^^^^ group/version   ^^^^ resource   ^^^^^^ subresource
//! /apis/apps/v1/deployments              (all namespaces)
//! /api/v1/nodes/{name}                   (cluster-scoped)
//! ```

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, header};
use bytes::Bytes;
use serde_json::Value;

use super::resources::{self, Resource, Subresource};
use super::status::ApiError;

// ANCHOR: target
/// What a resource URL names.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static Resource,
    /// `None` for cluster-scoped resources and for all-namespaces lists.
    pub namespace: Option<String>,
    /// `None` for collections (list, watch, create).
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}
// ANCHOR_END: target

// ANCHOR: parse_path
/// Parses a resource path. `None` means "no such resource": a 404.
pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    // `namespaces/{ns}/{resource}/...` is a namespaced path; otherwise the
    // path starts with a resource (`nodes/n1`, `namespaces/default`, or
    // `pods` for a list across all namespaces).
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..]
            if resources::find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    let resource = resources::find(group, version, plural)?;
    // A namespaced object needs its namespace in the path; only the
    // collection may be read across all namespaces.
    if resource.namespaced && namespace.is_none() && name.is_some() {
        return None;
    }
    let subresource = match sub {
        None => None,
        Some(s) => {
            let s = match s {
                "status" => Subresource::Status,
                "scale" => Subresource::Scale,
                "binding" => Subresource::Binding,
                "log" => Subresource::Log,
                "eviction" => Subresource::Eviction,
                "exec" => Subresource::Exec,
                "attach" => Subresource::Attach,
                "portforward" => Subresource::PortForward,
                _ => return None,
            };
            if !resource.has(s) {
                return None;
            }
            Some(s)
        }
    };
    if name.is_some_and(str::is_empty) {
        return None;
    }
    Some(Target {
        resource,
        namespace,
        name: name.map(str::to_string),
        subresource,
    })
}
// ANCHOR_END: parse_path

/// Query parameters, parsed tolerantly: kube-rs sends `?&watch=true&...`.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Booleans as Go's `strconv.ParseBool` accepts them (`watch=1` too).
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("true" | "1" | "True" | "TRUE" | "t" | "T")
        )
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for query parameter {key}"))
            }),
        }
    }

    /// `dryRun=All`: run everything, store nothing.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}; supported values: All"
            ))),
        }
    }
}

/// Everything a resource handler needs from the request.
pub struct Call {
    pub method: Method,
    pub target: Target,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// The media type of the body, without parameters (`;charset=utf-8`).
    pub fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default()
    }

    /// Whether the client asked for a `meta.k8s.io/v1` Table (kubectl get).
    pub fn wants_table(&self) -> bool {
        self.headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("as=Table"))
    }

    /// The content type of JSON request bodies, or the other formats the
    /// server decodes. Anything else is 415 Unsupported Media Type.
    pub fn decode_object(&self) -> Result<Value, ApiError> {
        let ct = self.content_type();
        let value: Value = match ct.as_str() {
            "" | "application/json" | "*/*" => serde_json::from_slice(&self.body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })?,
            "application/yaml" => serde_yaml::from_slice(&self.body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; yaml parse error: {e}"))
            })?,
            // kubectl >= 1.32 sends protobuf for `kubectl create deployment`.
            "application/vnd.kubernetes.protobuf" => {
                super::protobuf::decode(&self.body).map_err(|e| {
                    ApiError::bad_request(format!("unable to decode protobuf body: {e}"))
                })?
            }
            other => {
                return Err(ApiError::unsupported_media_type(
                    other,
                    &[
                        "application/json",
                        "application/yaml",
                        "application/vnd.kubernetes.protobuf",
                    ],
                ));
            }
        };
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "couldn't get version/kind; json parse error: the body is not a JSON object",
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/apis/apps/v1/namespaces/default/deployments/web/scale").unwrap();
        assert_eq!(t.resource.plural, "deployments");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource, Some(Subresource::Scale));

        let t = parse_path("/api/v1/pods").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());

        let t = parse_path("/api/v1/namespaces/default").unwrap();
        assert_eq!(t.resource.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("default"));

        let t = parse_path("/api/v1/namespaces/kube-system/status").unwrap();
        assert_eq!(t.subresource, Some(Subresource::Status));

        assert!(
            parse_path("/api/v1/pods/web").is_none(),
            "namespaced object without namespace"
        );
        assert!(parse_path("/api/v1/namespaces/default/configmaps/x/scale").is_none());
        assert!(parse_path("/apis/apps/v2/deployments").is_none());
        assert!(parse_path("/api/v1/nodes/n1/status").is_some());
        assert!(parse_path("/api/v1/namespaces/default/widgets").is_none());
    }

    #[test]
    fn query_is_tolerant() {
        let q = Query::parse(Some("&watch=1&labelSelector=app%3Dweb"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
    }
}
