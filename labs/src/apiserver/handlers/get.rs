//! `GET` of one object and of a collection (list), with label and field
//! selectors, `resourceVersion` semantics and `kubectl get`'s Table.
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/get.go` and the
//! `Get`/`List` of `registry/generic/registry/store.go`.

use serde_json::{Value, json};

use super::storage::{object_bytes_from_kv, object_from_kv};
use super::{Reply, key_of, target_name};
use crate::apiserver::ApiServer;
use crate::apiserver::request::Call;
use crate::apiserver::resources::Resource;
use crate::apiserver::selector::{FieldSelector, LabelSelector};
use crate::apiserver::status::ApiError;
use crate::apiserver::table;
use crate::store::{KeyValue, StoreError};

pub fn get(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let kv = api
        .store()
        .get(&key_of(r, call))
        .ok_or_else(|| ApiError::not_found(r, target_name(call)))?;
    let obj = object_from_kv(&kv);
    if call.wants_table() && call.target.subresource.is_none() {
        let rv = kv.mod_revision.to_string();
        return Ok(Reply::table(table::table(
            r.kind,
            &[obj],
            &rv,
            crate::machinery::clock::now(),
        )));
    }
    Ok(Reply::ok(obj))
}

/// Parsed `labelSelector` and `fieldSelector` (400 on a syntax error).
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn from_call(call: &Call) -> Result<Selectors, ApiError> {
        let labels = match call.query.get("labelSelector") {
            None | Some("") => LabelSelector::everything(),
            Some(s) => s
                .parse()
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        };
        let fields = match call.query.get("fieldSelector") {
            None | Some("") => FieldSelector::everything(),
            Some(s) => s
                .parse()
                .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?,
        };
        Ok(Selectors { labels, fields })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

// ANCHOR: list
pub fn list(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let sel = Selectors::from_call(call)?;
    let prefix = r.prefix(call.target.namespace.as_deref());
    // resourceVersion on a list: unset or "0" = the latest state; "N" with
    // resourceVersionMatch=Exact = the state at revision N (from history);
    // "N" otherwise = any state not older than N, so the latest will do.
    let (kvs, rev) = match (
        call.query.get("resourceVersion"),
        call.query.get("resourceVersionMatch"),
    ) {
        (None | Some("" | "0"), _) => api.store().list(&prefix),
        (Some(rv), matching) => {
            let n: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            if matching == Some("Exact") {
                let kvs = api.store().list_at(&prefix, n).map_err(|e| match e {
                    StoreError::Compacted { .. } => {
                        ApiError::expired("The resourceVersion for the provided list is too old.")
                    }
                    other => other.into(),
                })?;
                (kvs, n)
            } else {
                let current = api.store().revision();
                if n > current {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {n}, current: {current}"
                    )));
                }
                api.store().list(&prefix)
            }
        }
    };
    // The list's resourceVersion is the store revision the snapshot was
    // taken at; a watch from it misses nothing and repeats nothing.
    let rv = rev.to_string();
    if sel.is_everything() && !call.wants_table() {
        return Ok(Reply::raw(list_bytes(r, &rv, &kvs)));
    }
    let items: Vec<Value> = kvs
        .iter()
        .map(object_from_kv)
        .filter(|o| sel.matches(o))
        .collect();
    if call.wants_table() {
        return Ok(Reply::table(table::table(
            r.kind,
            &items,
            &rv,
            crate::machinery::clock::now(),
        )));
    }
    Ok(Reply::ok(json!({
        "kind": r.list_kind(),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": rv},
        "items": items,
    })))
}
// ANCHOR_END: list

/// A whole list as bytes, objects copied through (see
/// `object_bytes_from_kv`). Same JSON as the `Value` path.
fn list_bytes(r: &Resource, rv: &str, kvs: &[KeyValue]) -> Vec<u8> {
    let mut out = Vec::with_capacity(kvs.iter().map(|kv| kv.value.len() + 32).sum::<usize>() + 128);
    out.extend_from_slice(format!("{{\"apiVersion\":{:?},\"items\":[", r.api_version()).as_bytes());
    for (i, kv) in kvs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&object_bytes_from_kv(kv));
    }
    out.extend_from_slice(
        format!(
            "],\"kind\":{:?},\"metadata\":{{\"resourceVersion\":{rv:?}}}}}",
            r.list_kind()
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::storage::to_store_bytes;
    use super::*;
    use crate::apiserver::resources;

    #[test]
    fn raw_object_bytes_match_the_value_path() {
        let obj = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"y"}},"spec":{"a":[1,2]}});
        let kv = KeyValue {
            key: "/registry/pods/default/a".into(),
            value: to_store_bytes(&obj),
            create_revision: 5,
            mod_revision: 7,
            version: 2,
        };
        let fast: Value = serde_json::from_slice(&object_bytes_from_kv(&kv)).unwrap();
        assert_eq!(fast, object_from_kv(&kv));
        let r = resources::by_kind("Pod").unwrap();
        let list: Value = serde_json::from_slice(&list_bytes(r, "9", &[kv.clone(), kv])).unwrap();
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        assert_eq!(list["items"][1]["metadata"]["resourceVersion"], "7");
    }
}
