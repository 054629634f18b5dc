//! The object as stored, and the compare-and-swap loop every change of an
//! existing object goes through.
//!
//! Upstream: `k8s.io/apiserver/pkg/storage/etcd3/store.go` — the
//! `resourceVersion` filled in from etcd's mod revision on the way out
//! (`versioner.UpdateObject`) and `GuaranteedUpdate`, the read → decide →
//! write-if-unchanged → retry loop that turns optimistic concurrency into
//! an update that cannot lose a concurrent write.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::meta_mut;
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::status::ApiError;
use crate::apiserver::{ApiServer, allocator};
use crate::store::{KeyValue, StoreError};

// ANCHOR: resource_version
/// The stored bytes never contain `resourceVersion`: it *is* the store's
/// mod revision, and is filled in on the way out. (Upstream's etcd3 storage
/// does the same in `UpdateObject`.)
pub fn object_from_kv(kv: &KeyValue) -> Value {
    let mut obj: Value = serde_json::from_slice(&kv.value).unwrap_or_else(|_| json!({}));
    meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    obj
}

/// The same as `object_from_kv`, straight to JSON bytes, without building
/// a `Value` tree for the whole object: only `metadata` is decoded, the
/// rest is copied through as raw JSON. Lists of thousands of objects spend
/// most of their time here, so it matters (about 3x faster).
pub fn object_bytes_from_kv(kv: &KeyValue) -> Vec<u8> {
    use serde_json::value::RawValue;
    let fast = || -> Option<Vec<u8>> {
        let top: std::collections::BTreeMap<String, &RawValue> =
            serde_json::from_slice(&kv.value).ok()?;
        let mut meta: Map<String, Value> = match top.get("metadata") {
            Some(m) => serde_json::from_str(m.get()).ok()?,
            None => Map::new(),
        };
        meta.insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        let mut out = Vec::with_capacity(kv.value.len() + 32);
        out.push(b'{');
        let mut first = true;
        let meta_json = serde_json::to_string(&meta).ok()?;
        let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
        if !top.contains_key("metadata") {
            keys.push("metadata");
        }
        for k in keys {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut out, k).ok()?;
            out.push(b':');
            match k {
                "metadata" => out.extend_from_slice(meta_json.as_bytes()),
                _ => out.extend_from_slice(top[k].get().as_bytes()),
            }
        }
        out.push(b'}');
        Some(out)
    };
    fast()
        .unwrap_or_else(|| serde_json::to_vec(&object_from_kv(kv)).expect("JSON values serialize"))
}

pub(super) fn to_store_bytes(obj: &Value) -> Bytes {
    let mut obj = obj.clone();
    meta_mut(&mut obj).remove("resourceVersion");
    Bytes::from(serde_json::to_vec(&obj).expect("JSON values serialize"))
}
// ANCHOR_END: resource_version

/// Two versions are "the same write" when they differ at most in
/// `resourceVersion`; such writes are not stored (no new revision, no watch
/// event), which keeps controllers that write unconditionally from looping.
pub(super) fn same_object(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    meta_mut(&mut a).remove("resourceVersion");
    meta_mut(&mut b).remove("resourceVersion");
    a == b
}

// ANCHOR: guaranteed_update
/// What one round of [`guaranteed_update`] decided to do with the object
/// it read.
pub(super) enum Write {
    /// Store this object in place of the one read.
    Update(Value),
    /// Delete the object read; the answer is this value (its last state).
    Delete(Value),
    /// Store nothing — no change, a dry run, or an object the round created
    /// by other means — and answer with this value.
    Keep(Value),
}

/// Reads `key`, lets `try_update` decide what to write, and writes it only
/// if nobody wrote the key since the read (compare-and-swap on the read's
/// mod revision, that is its `resourceVersion`). When somebody did, it
/// reads again and asks again: upstream's `GuaranteedUpdate`. A caller's
/// own precondition (a `resourceVersion` in the body) is checked inside
/// `try_update`, and answers 409 instead of retrying.
///
/// `try_update` gets `None` when the object does not exist (most callers
/// answer 404; server-side apply creates it). It may run more than once,
/// so it must not write anything except through the `Write` it returns.
/// Returns the object as stored (with its new `resourceVersion`).
pub(super) fn guaranteed_update(
    api: &ApiServer,
    key: &str,
    mut try_update: impl FnMut(Option<&KeyValue>) -> Result<Write, ApiError>,
) -> Result<Value, ApiError> {
    let service = resources::parse_key(key).filter(|(r, _)| r.kind == "Service");
    loop {
        let current = api.store().get(key);
        let read_rev = current.as_ref().map(|kv| kv.mod_revision);
        // A Service write may take addresses (a type change to NodePort)
        // and give some back (away from it, or a delete): the registry's
        // BeginUpdate / AfterDelete hooks around the same write.
        let mut taken = None;
        let written = match (try_update(current.as_ref())?, read_rev) {
            (Write::Keep(answer), _) => return Ok(answer),
            (Write::Update(mut new), Some(rev)) => {
                if let (Some((r, name)), Some(kv)) = (service, current.as_ref()) {
                    let old = object_from_kv(kv);
                    let t = api
                        .allocators()
                        .allocate(Some(&old), &mut new)
                        .map_err(|e| service_alloc_error(r, name, e))?;
                    taken = Some((t, old));
                }
                api.store()
                    .update(key, to_store_bytes(&new), Some(rev))
                    .map(|kv| object_from_kv(&kv))
            }
            (Write::Delete(last), Some(rev)) => {
                let deleted = api.store().delete(key, Some(rev)).map(|_| last);
                if let (Some(_), Ok(_), Some(kv)) = (service, &deleted, current.as_ref()) {
                    api.allocators().release(&object_from_kv(kv));
                }
                deleted
            }
            // Nothing was read, so there is nothing to replace.
            (Write::Update(_) | Write::Delete(_), None) => Err(StoreError::NotFound {
                key: key.to_string(),
            }),
        };
        if let Some((t, old)) = taken {
            match &written {
                Ok(new) => api.allocators().release_replaced(&old, new),
                Err(_) => api.allocators().undo(&t),
            }
        }
        match written {
            Ok(answer) => return Ok(answer),
            // Someone wrote in between: decide again on the new state.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An allocation failure as the API answers it: 422 with the field, or 500.
pub(super) fn service_alloc_error(
    r: &Resource,
    name: &str,
    e: allocator::ServiceAllocError,
) -> ApiError {
    match e {
        allocator::ServiceAllocError::Invalid(fe) => ApiError::invalid_resource(r, name, &[fe]),
        allocator::ServiceAllocError::Internal(msg) => ApiError::internal(msg),
    }
}
// ANCHOR_END: guaranteed_update

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_lost_race_is_decided_again_on_the_new_state() {
        let api = ApiServer::new(Store::new());
        let key = "/registry/configmaps/default/c";
        let cm = json!({"metadata": {"name": "c"}, "data": {"n": "0"}});
        api.store().create(key, to_store_bytes(&cm)).unwrap();
        let mut rounds = 0;
        let stored = guaranteed_update(&api, key, |kv| {
            rounds += 1;
            let mut obj = object_from_kv(kv.expect("the object exists"));
            if rounds == 1 {
                // Another writer gets in between this read and our write.
                let mut theirs = obj.clone();
                theirs["data"]["other"] = json!("x");
                api.store()
                    .update(key, to_store_bytes(&theirs), None)
                    .unwrap();
            }
            obj["data"]["n"] = json!(rounds.to_string());
            Ok(Write::Update(obj))
        })
        .unwrap();
        assert_eq!(rounds, 2, "the conflict was retried once");
        // Built on the other writer's version: its change is kept.
        assert_eq!(stored["data"], json!({"n": "2", "other": "x"}));
    }

    #[test]
    fn a_missing_object_is_not_written() {
        let api = ApiServer::new(Store::new());
        let key = "/registry/configmaps/default/gone";
        let err = guaranteed_update(&api, key, |kv| {
            assert!(kv.is_none());
            Ok(Write::Update(json!({})))
        })
        .unwrap_err();
        assert_eq!((err.code, err.reason), (404, "NotFound"));
        assert_eq!(err.message, "configmaps \"gone\" not found");
    }
}
