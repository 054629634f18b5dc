//! The verbs: get, list, create, update, patch, delete, and the `status`,
//! `scale` and `binding` subresources.
//!
//! This is the part of the API server that upstream calls the *generic
//! registry* (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`) and
//! the per-resource *strategies*. Every write goes through the same steps:
//!
//! 1. decode the body and round-trip it through the k8s-openapi type
//!    (400 BadRequest if that fails);
//! 2. prepare: fill what the server owns (uid, creationTimestamp,
//!    generation, namespace) and keep what the caller may not change here
//!    (`status` on the main resource, `spec` on `/status`);
//! 3. default, then validate (422 Invalid with field paths);
//! 4. write with compare-and-swap on the store's mod revision, which *is*
//!    the object's `resourceVersion`.
//!
//! Objects are kept as `serde_json::Value` the whole way: the server is
//! generic over kinds, as the real one is over `runtime.Object`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::ApiServer;
use super::resources::{self, Resource, Subresource};
use super::selector::{FieldSelector, LabelSelector};
use super::server::Call;
use super::status::{self, ApiError};
use super::validation::{FieldError, FieldErrorKind};
use super::{defaults, patch, table, validation};
use crate::store::{KeyValue, StoreError};

/// The media type of Table responses, as the real server sends it.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// A successful answer: an object (or list, or Table) with its HTTP code.
pub struct Reply {
    pub code: StatusCode,
    pub body: Value,
    /// Pre-serialized JSON, used instead of `body` when set (big lists).
    pub raw: Option<Vec<u8>>,
    pub content_type: &'static str,
    /// `Warning: 299 - "..."` headers; kubectl prints them as `Warning: ...`.
    pub warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            code: StatusCode::OK,
            body,
            raw: None,
            content_type: "application/json",
            warnings: vec![],
        }
    }

    fn raw(bytes: Vec<u8>) -> Reply {
        Reply {
            raw: Some(bytes),
            ..Reply::ok(Value::Null)
        }
    }

    fn created(body: Value) -> Reply {
        Reply {
            code: StatusCode::CREATED,
            ..Reply::ok(body)
        }
    }

    fn table(body: Value) -> Reply {
        Reply {
            content_type: TABLE_CONTENT_TYPE,
            ..Reply::ok(body)
        }
    }

    fn warn(mut self, warnings: Vec<String>) -> Reply {
        self.warnings = warnings;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = match self.raw {
            Some(bytes) => (self.code, bytes).into_response(),
            None => status::json_response(self.code, &self.body),
        };
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        for w in &self.warnings {
            let text = format!("299 - {:?}", w);
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }
}

// ---------------------------------------------------------------------------
// Small helpers over JSON objects.

/// RFC 3339 with seconds and `Z`: how Kubernetes writes `metav1.Time`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now() -> String {
    format_time(crate::machinery::clock::now())
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

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

fn to_store_bytes(obj: &Value) -> Bytes {
    let mut obj = obj.clone();
    meta_mut(&mut obj).remove("resourceVersion");
    Bytes::from(serde_json::to_vec(&obj).expect("JSON values serialize"))
}
// ANCHOR_END: resource_version

/// Two versions are "the same write" when they differ at most in
/// `resourceVersion`; such writes are not stored (no new revision, no watch
/// event), which keeps controllers that write unconditionally from looping.
fn same_object(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    meta_mut(&mut a).remove("resourceVersion");
    meta_mut(&mut b).remove("resourceVersion");
    a == b
}

fn key_of(r: &Resource, call: &Call) -> String {
    r.key(
        call.target.namespace.as_deref(),
        call.target.name.as_deref().unwrap_or(""),
    )
}

fn target_name(call: &Call) -> &str {
    call.target.name.as_deref().unwrap_or("")
}

fn store_error(r: &Resource, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists { .. } => ApiError::already_exists(r, name),
        StoreError::NotFound { .. } => ApiError::not_found(r, name),
        StoreError::Conflict { .. } => ApiError::conflict(r, name),
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
    }
}

// ---------------------------------------------------------------------------
// Decoding: body -> typed round trip -> JSON.

/// Rejects bodies the k8s-openapi type cannot decode (400, as the real
/// server does when its Go types cannot), and reports fields the type does
/// not know. `fieldValidation=Strict` (kubectl's default) makes them an
/// error, `Ignore` drops them silently, anything else warns.
fn decode_typed(r: &Resource, call: &Call, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {why}",
            r.kind, r.version, r.kind
        ))
    };
    if let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version != r.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            r.api_version()
        )));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != r.kind
    {
        return Err(cannot(format!(
            "no kind \"{kind}\" is registered for version \"{}\"",
            r.api_version()
        )));
    }
    let typed = r
        .round_trip(obj.clone())
        .map_err(|e| cannot(e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&obj, &typed, "", &mut unknown);
    let warnings: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match call.query.get("fieldValidation") {
        Some("Strict") if !warnings.is_empty() => Err(cannot(format!(
            "strict decoding error: {}",
            warnings.join(", ")
        ))),
        Some("Ignore") => Ok((typed, vec![])),
        _ => Ok((typed, warnings)),
    }
}

/// Paths present (and not null) in `before` but gone after the round trip.
fn unknown_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    None => out.push(p),
                    Some(av) => unknown_fields(v, av, &p, out),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if a.len() == b.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                unknown_fields(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// get and list

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
                    other => store_error(r, "", other),
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

// ---------------------------------------------------------------------------
// create

pub fn create(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    if call.target.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let obj = call.decode_object()?;
    let (obj, warnings) = decode_typed(call.target.resource, call, obj)?;
    let created = create_object(api, call, obj)?;
    Ok(Reply::created(created).warn(warnings))
}

/// The characters of generated name suffixes: no vowels (no accidental
/// words) and no look-alikes (`0/o`, `1/l`). Upstream `util/rand.String`.
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[..5]
        .iter()
        .map(|b| NAME_ALPHABET[*b as usize % NAME_ALPHABET.len()] as char)
        .collect()
}

// ANCHOR: create_object
/// Creates a decoded object (also used by server-side apply of a missing
/// object). Returns it as stored, with its resourceVersion.
fn create_object(api: &ApiServer, call: &Call, mut obj: Value) -> Result<Value, ApiError> {
    let r = call.target.resource;
    let url_ns = call.target.namespace.as_deref();
    prepare_create(r, url_ns, &mut obj)?;
    defaults::apply_defaults(r.kind, &mut obj);
    if r.kind == "Pod" {
        let config = api.config();
        defaults::default_toleration_seconds(
            &mut obj,
            config.default_not_ready_toleration_seconds,
            config.default_unreachable_toleration_seconds,
        );
    }
    if r.kind == "Service" {
        allocate_service_addresses(api, &mut obj)?;
    }
    let generated = meta_str(&obj, "name").is_empty() && !meta_str(&obj, "generateName").is_empty();
    // generateName: upstream retries a few times when the random name is taken.
    for _attempt in 0..8 {
        if generated {
            let name = format!("{}{}", meta_str(&obj, "generateName"), random_suffix());
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        let name = meta_str(&obj, "name").to_string();
        let mut errs = validation::validate(r.kind, &obj, None);
        if name.is_empty() && !errs.iter().any(|e| e.field == "metadata.name") {
            errs.push(FieldError {
                kind: FieldErrorKind::Required,
                field: "metadata.name".into(),
                bad_value: None,
                detail: "name or generateName is required".into(),
            });
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid_resource(r, &name, &errs));
        }
        // The NamespaceLifecycle admission plugin: no objects in a
        // namespace that does not exist.
        if let Some(ns) = url_ns.filter(|_| r.namespaced) {
            let nsr = resources::by_kind("Namespace").expect("namespaces are served");
            if api.store().get(&nsr.key(None, ns)).is_none() {
                return Err(ApiError::not_found(nsr, ns));
            }
        }
        if call.query.dry_run()? {
            return Ok(obj);
        }
        let key = r.key(url_ns, &name);
        match api.store().create(&key, to_store_bytes(&obj)) {
            Ok(kv) => return Ok(object_from_kv(&kv)),
            Err(StoreError::AlreadyExists { .. }) if generated => continue,
            Err(e) => return Err(store_error(r, &name, e)),
        }
    }
    Err(ApiError::already_exists(r, meta_str(&obj, "name")))
}
// ANCHOR_END: create_object

// ANCHOR: prepare_create
/// What the server fills in on create, whatever the client sent.
fn prepare_create(r: &Resource, url_ns: Option<&str>, obj: &mut Value) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    if r.namespaced {
        let ns = url_ns.unwrap_or("");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "generation",
    ] {
        meta.remove(field);
    }
    // generation counts spec changes; the first spec is generation 1.
    if r.has_generation {
        meta.insert("generation".into(), json!(1));
    }
    if r.kind == "Namespace" {
        // Every namespace carries its own name as a label, so that
        // namespace selectors can pick namespaces by name.
        let name = meta.get("name").cloned().unwrap_or(json!(""));
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        labels["kubernetes.io/metadata.name"] = name;
    }
    // A new object starts with the status the server gives it: the
    // client's status is ignored (nodes are the exception: the kubelet
    // registers its node with a status).
    match r.kind {
        "Deployment" | "ReplicaSet" => obj["status"] = json!({}),
        "Pod" => obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)}),
        "Service" => obj["status"] = json!({"loadBalancer": {}}),
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        "Secret" => string_data_to_data(obj),
        _ => {}
    }
    Ok(())
}
// ANCHOR_END: prepare_create

/// `stringData` is a write-only convenience: the server merges it into
/// `data` (base64) and never stores it.
fn string_data_to_data(obj: &mut Value) {
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let data = obj
        .as_object_mut()
        .expect("objects are JSON objects")
        .entry("data")
        .or_insert_with(|| json!({}));
    for (k, v) in sd {
        let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or("").as_bytes().to_vec());
        data[k] = serde_json::to_value(bytes).expect("ByteString serializes");
    }
}

/// The pod's quality-of-service class (upstream `qos.GetPodQOS`), which
/// `kubectl describe pod` prints: no requests or limits anywhere is
/// BestEffort; limits equal to requests for cpu and memory in every
/// container is Guaranteed; anything else Burstable.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let get = |c: &Value, kind: &str, res: &str| {
        c.pointer(&format!("/resources/{kind}/{res}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        for res in ["cpu", "memory"] {
            let (req, lim) = (get(c, "requests", res), get(c, "limits", res));
            any |= req.is_some() || lim.is_some();
            if lim.is_none() || (req.is_some() && req != lim) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Services get a cluster IP from the service CIDR (kubeadm's default
/// 10.96.0.0/12) and, for NodePort and LoadBalancer, node ports from
/// 30000-32767. Upstream allocates at random from a bitmap; the labs hand
/// out the lowest free address so that runs are repeatable. (Two services
/// created at the very same moment could race for an address; the labs
/// create services one at a time.)
fn allocate_service_addresses(api: &ApiServer, svc: &mut Value) -> Result<(), ApiError> {
    let svc_type = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if svc_type == "ExternalName" {
        return Ok(());
    }
    let r = resources::by_kind("Service").expect("services are served");
    let (kvs, _) = api.store().list(&r.prefix(None));
    let others: Vec<Value> = kvs.iter().map(object_from_kv).collect();
    let used_ips: std::collections::HashSet<String> = others
        .iter()
        .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let spec = svc
        .as_object_mut()
        .expect("objects are JSON objects")
        .entry("spec")
        .or_insert_with(|| json!({}));
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ip = if requested == "None" {
        "None".to_string()
    } else if !requested.is_empty() {
        if used_ips.contains(&requested) {
            return Err(ApiError::invalid_resource(
                r,
                meta_str(svc, "name"),
                &[FieldError {
                    kind: FieldErrorKind::Invalid,
                    field: "spec.clusterIPs".into(),
                    bad_value: Some(json!([requested])),
                    detail: format!(
                        "failed to allocate IP {requested}: provided IP is already allocated"
                    ),
                }],
            ));
        }
        requested
    } else {
        // .1 is the `kubernetes` service and .10 cluster DNS on kubeadm
        // clusters; start above them.
        (11u32..65536)
            .map(|i| format!("10.96.{}.{}", i / 256, i % 256))
            .find(|ip| !used_ips.contains(ip) && !ip.ends_with(".0") && !ip.ends_with(".255"))
            .ok_or_else(|| ApiError::internal("the service IP range is full"))?
    };
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    if ip != "None" {
        spec.as_object_mut()
            .expect("spec is an object")
            .entry("ipFamilies")
            .or_insert(json!(["IPv4"]));
        spec.as_object_mut()
            .expect("spec is an object")
            .entry("ipFamilyPolicy")
            .or_insert(json!("SingleStack"));
    }
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        let mut used_ports: std::collections::HashSet<i64> = others
            .iter()
            .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
            .flatten()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
            .collect();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                    let port = (30000..=32767)
                        .find(|n| !used_ports.contains(n))
                        .ok_or_else(|| ApiError::internal("the node port range is full"))?;
                    used_ports.insert(port);
                    p["nodePort"] = json!(port);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// update (PUT) and the shared write path

// ANCHOR: update
pub fn update(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let body = call.decode_object()?;
    let (body, warnings) = decode_typed(r, call, body)?;
    let body_name = meta_str(&body, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    // A resourceVersion in the body is a precondition: "update this only
    // if nobody wrote it since I read it". Empty means unconditional.
    let precondition = meta_str(&body, "resourceVersion").to_string();
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()?;
    loop {
        let kv = api
            .store()
            .get(&key)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        if !precondition.is_empty() && precondition != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(r, name));
        }
        let old = object_from_kv(&kv);
        let new = body.clone();
        match commit_update(
            api,
            r,
            &key,
            &old,
            kv.mod_revision,
            new,
            call.target.subresource,
            dry_run,
        )? {
            Some(obj) => return Ok(Reply::ok(obj).warn(warnings)),
            // Someone wrote in between; with a precondition the next round
            // answers 409, without one it simply retries on the new state.
            None => continue,
        }
    }
}
// ANCHOR_END: update

// ANCHOR: commit_update
/// The write path shared by PUT, PATCH, `/status` and `/scale`: prepare,
/// default, validate, then compare-and-swap against `old_rev`.
/// `Ok(None)` means the compare-and-swap lost a race: re-read and retry
/// (upstream's `GuaranteedUpdate` loop).
#[allow(clippy::too_many_arguments)]
fn commit_update(
    api: &ApiServer,
    r: &Resource,
    key: &str,
    old: &Value,
    old_rev: i64,
    mut new: Value,
    sub: Option<Subresource>,
    dry_run: bool,
) -> Result<Option<Value>, ApiError> {
    let name = meta_str(old, "name").to_string();
    prepare_update(r, sub, old, &mut new);
    // Go's `omitempty`: a patch that removes the last ownerReference (the
    // garbage collector orphaning a pod) or the last finalizer leaves `[]`,
    // which the real server never writes back; clients test for absence.
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        for list in ["ownerReferences", "finalizers"] {
            if meta
                .get(list)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                meta.remove(list);
            }
        }
    }
    defaults::apply_defaults(r.kind, &mut new);
    // generation moves only when the desired state (spec) moves; this is
    // what `status.observedGeneration` is compared with.
    if r.has_generation && new.get("spec") != old.get("spec") {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    let errs = validation::validate(r.kind, &new, Some(old));
    if !errs.is_empty() {
        return Err(ApiError::invalid_resource(r, &name, &errs));
    }
    if same_object(&new, old) {
        return Ok(Some(old.clone()));
    }
    // The last finalizer of an object being deleted is gone: delete it now.
    let finished = new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        && new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0;
    if dry_run {
        return Ok(Some(new));
    }
    if finished {
        return match api.store().delete(key, Some(old_rev)) {
            Ok(_) => Ok(Some(new)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(store_error(r, &name, e)),
        };
    }
    match api.store().update(key, to_store_bytes(&new), Some(old_rev)) {
        Ok(kv) => Ok(Some(object_from_kv(&kv))),
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(e) => Err(store_error(r, &name, e)),
    }
}
// ANCHOR_END: commit_update

// ANCHOR: prepare_update
/// What an update may not change. The server owns identity and
/// bookkeeping metadata; the main resource does not write `status` and
/// `/status` does not write `spec` or labels (upstream's
/// `PrepareForUpdate` of each strategy). This split is what lets a
/// controller and a user write the same object without overwriting each
/// other's half.
fn prepare_update(r: &Resource, sub: Option<Subresource>, old: &Value, new: &mut Value) {
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = meta_mut(new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        set_or_remove(meta, field, old_meta.get(field));
    }
    meta.remove("managedFields");
    meta.remove("selfLink");
    if sub == Some(Subresource::Status) {
        set_or_remove(meta, "labels", old_meta.get("labels"));
        let obj = new.as_object_mut().expect("objects are JSON objects");
        set_or_remove(obj, "spec", old.get("spec"));
    } else if r.has(Subresource::Status) {
        let obj = new.as_object_mut().expect("objects are JSON objects");
        set_or_remove(obj, "status", old.get("status"));
    }
    match r.kind {
        // An update that leaves out the allocated cluster IP (a manifest
        // applied again) keeps it rather than trying to change it.
        "Service" => {
            for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                let missing = new
                    .pointer(&format!("/spec/{field}"))
                    .is_none_or(|v| v.as_str() == Some("") || v.is_null());
                if missing && let Some(v) = old.pointer(&format!("/spec/{field}")) {
                    new["spec"][field] = v.clone();
                }
            }
        }
        "Secret" => string_data_to_data(new),
        _ => {}
    }
}
// ANCHOR_END: prepare_update

// ---------------------------------------------------------------------------
// patch

/// 400 for a malformed patch, 422 for one that does not fit the object.
fn patch_error(e: patch::PatchError) -> ApiError {
    if e.status_code() == 422 {
        ApiError::unprocessable(e.to_string())
    } else {
        ApiError::bad_request(e.to_string())
    }
}

// ANCHOR: patch
pub fn patch(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let ct = call.content_type();
    let Some(patch_type) = patch::PatchType::from_content_type(&ct) else {
        return Err(ApiError::unsupported_media_type(
            &ct,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ],
        ));
    };
    let patch_body = patch::decode_body(patch_type, &call.body).map_err(patch_error)?;
    if matches!(patch_type, patch::PatchType::Apply)
        && call.query.get("fieldManager").is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[FieldError {
                kind: FieldErrorKind::Required,
                field: "fieldManager".into(),
                bad_value: None,
                detail: "is required for apply patch".into(),
            }],
        ));
    }
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()?;
    let sub = call.target.subresource;
    loop {
        let Some(kv) = api.store().get(&key) else {
            // Server-side apply creates what does not exist yet.
            if matches!(patch_type, patch::PatchType::Apply) && sub.is_none() {
                let mut obj = patch_body.clone();
                if !obj.is_object() {
                    return Err(ApiError::bad_request("the apply patch is not an object"));
                }
                let body_name = meta_str(&obj, "name").to_string();
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let (obj, warnings) = decode_typed(r, call, obj)?;
                return Ok(Reply::created(create_object(api, call, obj)?).warn(warnings));
            }
            return Err(ApiError::not_found(r, name));
        };
        let current = object_from_kv(&kv);
        let base = if sub == Some(Subresource::Scale) {
            scale_of(r, &current)
        } else {
            current.clone()
        };
        let kind = if sub == Some(Subresource::Scale) {
            "Scale"
        } else {
            r.kind
        };
        let patched = match patch_type {
            patch::PatchType::Json => patch::json_patch(&base, &patch_body).map_err(patch_error)?,
            patch::PatchType::Merge => patch::merge_patch(&base, &patch_body),
            patch::PatchType::StrategicMerge => {
                patch::strategic_merge_patch(&base, &patch_body, kind).map_err(patch_error)?
            }
            patch::PatchType::Apply => {
                patch::apply_patch(&base, &patch_body, kind).map_err(patch_error)?
            }
        };
        // A resourceVersion inside the patch is a precondition, as in PUT.
        let rv = meta_str(&patched, "resourceVersion");
        if !rv.is_empty() && rv != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(r, name));
        }
        let (new, warnings, scale) = if sub == Some(Subresource::Scale) {
            (scaled(r, &current, &patched)?, vec![], true)
        } else {
            let (typed, warnings) = decode_typed(r, call, patched)?;
            (typed, warnings, false)
        };
        let main_or_status = if scale { None } else { sub };
        match commit_update(
            api,
            r,
            &key,
            &current,
            kv.mod_revision,
            new,
            main_or_status,
            dry_run,
        )? {
            Some(obj) if scale => return Ok(Reply::ok(scale_of(r, &obj))),
            Some(obj) => return Ok(Reply::ok(obj).warn(warnings)),
            None => continue,
        }
    }
}
// ANCHOR_END: patch

// ---------------------------------------------------------------------------
// scale

// ANCHOR: scale
/// The `autoscaling/v1` `Scale` view of a Deployment or ReplicaSet: what
/// `kubectl scale` and autoscalers read and write instead of the whole
/// object.
fn scale_of(r: &Resource, obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| LabelSelector::from_api_value(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut meta = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{field}")) {
            meta[field] = v.clone();
        }
    }
    let _ = r;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// The object with `spec.replicas` taken from a written `Scale`.
fn scaled(r: &Resource, current: &Value, scale: &Value) -> Result<Value, ApiError> {
    let name = meta_str(current, "name");
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let bad = |detail: &str| {
        ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[FieldError {
                kind: FieldErrorKind::Invalid,
                field: "spec.replicas".into(),
                bad_value: Some(replicas.clone()),
                detail: detail.into(),
            }],
        )
    };
    let n = replicas.as_i64().ok_or_else(|| bad("must be an integer"))?;
    if n < 0 {
        return Err(bad("must be greater than or equal to 0"));
    }
    if n > i64::from(i32::MAX) {
        return Err(bad("must be less than or equal to 2147483647"));
    }
    let _ = r;
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(n);
    Ok(new)
}
// ANCHOR_END: scale

pub fn get_scale(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let kv = api
        .store()
        .get(&key_of(r, call))
        .ok_or_else(|| ApiError::not_found(r, target_name(call)))?;
    Ok(Reply::ok(scale_of(r, &object_from_kv(&kv))))
}

pub fn update_scale(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let body = call.decode_object()?;
    let precondition = meta_str(&body, "resourceVersion").to_string();
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()?;
    loop {
        let kv = api
            .store()
            .get(&key)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        if !precondition.is_empty() && precondition != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(r, name));
        }
        let current = object_from_kv(&kv);
        let new = scaled(r, &current, &body)?;
        if let Some(obj) =
            commit_update(api, r, &key, &current, kv.mod_revision, new, None, dry_run)?
        {
            return Ok(Reply::ok(scale_of(r, &obj)));
        }
    }
}

// ---------------------------------------------------------------------------
// binding

// ANCHOR: bind
/// `POST pods/{name}/binding`: how the scheduler assigns a pod to a node.
/// A pod is bound once; a second binding is a conflict, which is how two
/// schedulers racing for the same pod find out.
pub fn bind(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let binding = call.decode_object()?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            name,
            &[FieldError {
                kind: FieldErrorKind::Required,
                field: "target.name".into(),
                bad_value: None,
                detail: "".into(),
            }],
        ));
    }
    let key = key_of(r, call);
    loop {
        let kv = api
            .store()
            .get(&key)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let mut pod = object_from_kv(&kv);
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let current = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!("pod {name} is already assigned to node {current:?}"),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        // The Binding's annotations are copied onto the pod (upstream's
        // `setPodNodeAndMetadata`): a scheduler can record something about
        // its decision in the same write that binds.
        if let Some(Value::Object(annotations)) = binding.pointer("/metadata/annotations")
            && !annotations.is_empty()
        {
            let meta = meta_mut(&mut pod);
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in annotations {
                target[k.as_str()] = v.clone();
            }
        }
        let conditions = pod["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
        if let Some(Value::Array(conds)) = conditions {
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conds.push(
                json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}),
            );
        }
        if call.query.dry_run()? {
            return Ok(Reply::created(status::success(201)));
        }
        match api
            .store()
            .update(&key, to_store_bytes(&pod), Some(kv.mod_revision))
        {
            Ok(_) => return Ok(Reply::created(status::success(201))),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_error(r, name, e)),
        }
    }
}
// ANCHOR_END: bind

// ---------------------------------------------------------------------------
// delete

/// `DeleteOptions`, from the body and the query string.
#[derive(Debug, Default)]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
    /// `Orphan`, `Background` or `Foreground` (see
    /// `apply_propagation_policy`).
    propagation_policy: Option<String>,
}

fn delete_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !call.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("unable to decode DeleteOptions: {e}")))?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "unable to decode DeleteOptions: not an object",
            ));
        }
        opts.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.resource_version = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        // The deprecated `orphanDependents` bool means Orphan or Background.
        opts.propagation_policy = match body.get("orphanDependents").and_then(Value::as_bool) {
            Some(true) => Some("Orphan".into()),
            Some(false) => Some("Background".into()),
            None => None,
        };
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation_policy = Some(p.to_string());
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str)
            && !["Orphan", "Background", "Foreground"].contains(&p)
        {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                &[FieldError {
                    kind: FieldErrorKind::NotSupported,
                    field: "propagationPolicy".into(),
                    bad_value: Some(json!(p)),
                    detail: "supported values: \"Foreground\", \"Background\", \"Orphan\"".into(),
                }],
            ));
        }
    }
    if let Some(g) = call.query.int("gracePeriodSeconds")? {
        opts.grace_period_seconds = Some(g);
    }
    Ok(opts)
}

pub fn delete(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    if r.kind == "Namespace" && crate::apiserver::INITIAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            r,
            name,
            "this namespace may not be deleted",
        ));
    }
    let opts = delete_options(call)?;
    let key = key_of(r, call);
    let obj = delete_one(api, r, &key, name, &opts, call.query.dry_run()?)?;
    Ok(Reply::ok(obj))
}

// ANCHOR: delete_one
/// Deletes one object; returns it as it was deleted (or as marked).
///
/// Deletion is immediate unless something has to happen first:
/// - a pod running on a node gets a grace period: the server only sets
///   `deletionTimestamp` (now + grace) and the kubelet stops the containers
///   and then deletes the pod for good (with grace period 0);
/// - finalizers: the object stays, marked with `deletionTimestamp`, until
///   whoever owns each finalizer removes it (see `commit_update`).
fn delete_one(
    api: &ApiServer,
    r: &Resource,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
    dry_run: bool,
) -> Result<Value, ApiError> {
    loop {
        let kv = api
            .store()
            .get(key)
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let obj = object_from_kv(&kv);
        if let Some(uid) = &opts.uid
            && uid != meta_str(&obj, "uid")
        {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&obj, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                ),
            ));
        }
        let mut obj = obj;
        let finalizers_changed =
            apply_propagation_policy(&mut obj, opts.propagation_policy.as_deref());
        let grace = if r.kind == "Pod" {
            pod_grace_period(&obj, opts)
        } else {
            0
        };
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if grace == 0 && !has_finalizers {
            if dry_run {
                return Ok(obj);
            }
            match api.store().delete(key, Some(kv.mod_revision)) {
                Ok(_) => return Ok(obj),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(r, name, e)),
            }
        }
        // Mark for deletion. A second delete may shorten the grace period,
        // never lengthen it.
        let current_grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if obj.pointer("/metadata/deletionTimestamp").is_some()
            && current_grace.is_some_and(|g| g <= grace)
            && !finalizers_changed
        {
            return Ok(obj);
        }
        let mut marked = obj.clone();
        let at = crate::machinery::clock::now() + SignedDuration::from_secs(grace);
        let meta = meta_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(format_time(at)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if dry_run {
            return Ok(marked);
        }
        match api
            .store()
            .update(key, to_store_bytes(&marked), Some(kv.mod_revision))
        {
            Ok(kv) => return Ok(object_from_kv(&kv)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_error(r, name, e)),
        }
    }
}
// ANCHOR_END: delete_one

// ANCHOR: propagation_policy
/// How a delete treats the object's dependents (upstream's
/// `deletionFinalizersForGarbageCollection`). The API server does not
/// delete dependents itself; it only records the request as a finalizer for
/// the garbage collector, which is a controller like any other:
///
/// - `Orphan`: finalizer `orphan`. The collector removes this object's
///   ownerReference from every dependent, then the finalizer.
/// - `Foreground`: finalizer `foregroundDeletion`. The collector deletes
///   the dependents, and removes the finalizer when none that blocks
///   (`blockOwnerDeletion: true`) is left.
/// - `Background` (the default for apps/v1 and core/v1): neither; the
///   object goes at once and the collector deletes the dependents after.
///
/// With a finalizer the object stays, with `deletionTimestamp` set, until
/// the collector is done, so without a garbage collector running an orphan
/// or foreground delete never finishes. Returns whether the finalizers
/// changed.
fn apply_propagation_policy(obj: &mut Value, policy: Option<&str>) -> bool {
    const ORPHAN: &str = "orphan";
    const FOREGROUND: &str = "foregroundDeletion";
    let (add, remove): (&[&str], &[&str]) = match policy {
        Some("Orphan") => (&[ORPHAN], &[FOREGROUND]),
        Some("Foreground") => (&[FOREGROUND], &[ORPHAN]),
        Some("Background") => (&[], &[ORPHAN, FOREGROUND]),
        _ => return false,
    };
    let before: Vec<String> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut after: Vec<String> = before
        .iter()
        .filter(|f| !remove.contains(&f.as_str()))
        .cloned()
        .collect();
    for f in add {
        if !after.iter().any(|x| x == f) {
            after.push(f.to_string());
        }
    }
    if after == before {
        return false;
    }
    let meta = meta_mut(obj);
    if after.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(after));
    }
    true
}
// ANCHOR_END: propagation_policy

/// The grace period of a pod deletion: the request's, else the pod's
/// `terminationGracePeriodSeconds`. A pod that never reached a node, or has
/// already finished, has nothing to stop and goes at once.
fn pod_grace_period(pod: &Value, opts: &DeleteOptions) -> i64 {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    opts.grace_period_seconds
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

pub fn delete_collection(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let sel = Selectors::from_call(call)?;
    let opts = delete_options(call)?;
    let dry_run = call.query.dry_run()?;
    let (kvs, _) = api
        .store()
        .list(&r.prefix(call.target.namespace.as_deref()));
    let mut deleted = Vec::new();
    for kv in kvs {
        let obj = object_from_kv(&kv);
        if !sel.matches(&obj) {
            continue;
        }
        let name = meta_str(&obj, "name").to_string();
        if r.kind == "Namespace" && crate::apiserver::INITIAL_NAMESPACES.contains(&name.as_str()) {
            continue;
        }
        match delete_one(api, r, &kv.key, &name, &opts, dry_run) {
            Ok(obj) => deleted.push(obj),
            // Deleted by someone else meanwhile: that is fine.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(json!({
        "kind": r.list_kind(),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": api.store().revision().to_string()},
        "items": deleted,
    })))
}

/// Creates a namespace directly in the store if it is missing (the
/// namespaces every cluster starts with).
pub fn ensure_namespace(api: &ApiServer, name: &str) {
    let r = resources::by_kind("Namespace").expect("namespaces are served");
    let key = r.key(None, name);
    if api.store().get(&key).is_some() {
        return;
    }
    let mut ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {}});
    if prepare_create(r, None, &mut ns).is_ok() {
        defaults::apply_defaults("Namespace", &mut ns);
        let _ = api.store().create(&key, to_store_bytes(&ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_policy_becomes_a_finalizer() {
        let mut rs = json!({"metadata": {"name": "web", "finalizers": ["keep"]}});
        assert!(!apply_propagation_policy(&mut rs, None));
        assert!(apply_propagation_policy(&mut rs, Some("Orphan")));
        assert_eq!(rs["metadata"]["finalizers"], json!(["keep", "orphan"]));
        assert!(!apply_propagation_policy(&mut rs, Some("Orphan")));
        assert!(apply_propagation_policy(&mut rs, Some("Foreground")));
        assert_eq!(
            rs["metadata"]["finalizers"],
            json!(["keep", "foregroundDeletion"])
        );
        assert!(apply_propagation_policy(&mut rs, Some("Background")));
        assert_eq!(rs["metadata"]["finalizers"], json!(["keep"]));
        let mut pod = json!({"metadata": {"name": "p"}});
        assert!(!apply_propagation_policy(&mut pod, Some("Background")));
        assert!(pod["metadata"].get("finalizers").is_none());
    }

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

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"spec":{"containers":[{"name":"a"}]}})),
            "BestEffort"
        );
        let g =
            json!({"spec":{"containers":[{"resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec":{"containers":[{"resources":{"requests":{"cpu":"1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn unknown_fields_are_found() {
        let before =
            json!({"spec":{"replicas":1,"replicaz":2,"template":{"x":null}},"a":[{"b":1}]});
        let after = json!({"spec":{"replicas":1,"template":{}},"a":[{}]});
        let mut out = vec![];
        unknown_fields(&before, &after, "", &mut out);
        assert_eq!(out, vec!["a[0].b", "spec.replicaz"]);
    }

    #[test]
    fn string_data_is_merged() {
        let mut s = json!({"stringData":{"k":"v"},"data":{"a":"Yg=="}});
        string_data_to_data(&mut s);
        assert_eq!(s, json!({"data":{"a":"Yg==","k":"dg=="}}));
    }
}
