//! The Swagger 2.0 document in protobuf, the only form client-go reads.
//!
//! client-go's `OpenAPISchema()` asks `/openapi/v2` for
//! `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and decodes
//! the answer as gnostic's `openapi.v2.Document` message, with no JSON
//! fallback. kubectl 1.27 and 1.28 need it for `create -f` and `apply`
//! (they look up there whether the server validates fields itself), and
//! `kubectl explain --output=plaintext-openapiv2` reads it.
//!
//! gnostic's messages mirror the JSON document field by field, so this is
//! a walk over the JSON with the field numbers of gnostic's
//! `OpenAPIv2.proto`, written with prost's wire-format primitives. Only
//! what the documents of [`super`] contain is encoded: the document,
//! paths, operations, parameters, responses and schemas, with their
//! `x-` vendor extensions (the value as YAML text, as gnostic stores it;
//! JSON is YAML).

use prost::encoding::{WireType, encode_key, encode_varint};
use serde_json::{Map, Value};

/// One message being written: its fields, in order.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn bytes(&mut self, tag: u32, b: &[u8]) {
        encode_key(tag, WireType::LengthDelimited, &mut self.0);
        encode_varint(b.len() as u64, &mut self.0);
        self.0.extend_from_slice(b);
    }

    /// A string field; proto3 leaves out the empty string.
    fn string(&mut self, tag: u32, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            self.bytes(tag, s.as_bytes());
        }
    }

    fn strings(&mut self, tag: u32, v: Option<&Value>) {
        for s in v.and_then(Value::as_array).into_iter().flatten() {
            self.string(tag, Some(s));
        }
    }

    fn boolean(&mut self, tag: u32, v: Option<&Value>) {
        if v.and_then(Value::as_bool) == Some(true) {
            encode_key(tag, WireType::Varint, &mut self.0);
            encode_varint(1, &mut self.0);
        }
    }

    fn message(&mut self, tag: u32, m: Msg) {
        self.bytes(tag, &m.0);
    }

    /// A `Named*` pair: `name = 1`, `value = 2`.
    fn named(&mut self, tag: u32, name: &str, value: Msg) {
        let mut pair = Msg::default();
        pair.bytes(1, name.as_bytes());
        pair.message(2, value);
        self.message(tag, pair);
    }

    /// The `x-…` keys of `obj` as `repeated NamedAny vendor_extension`.
    fn extensions(&mut self, tag: u32, obj: &Map<String, Value>) {
        for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
            let mut any = Msg::default();
            any.bytes(2, v.to_string().as_bytes()); // Any.yaml
            self.named(tag, k, any);
        }
    }
}

/// `openapi.v2.Document`.
pub fn document(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.string(1, doc.get("swagger"));
    let mut info = Msg::default();
    info.string(1, doc.pointer("/info/title"));
    info.string(2, doc.pointer("/info/version"));
    m.message(2, info);
    let mut paths = Msg::default();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        paths.named(2, path, path_item(item));
    }
    m.message(8, paths);
    let mut defs = Msg::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        defs.named(1, name, schema(s));
    }
    m.message(9, defs);
    m.0
}

/// `PathItem`: one operation per verb, then the shared parameters.
fn path_item(item: &Value) -> Msg {
    let mut m = Msg::default();
    for (verb, tag) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(verb) {
            m.message(tag, operation(op));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        m.message(9, parameter(p));
    }
    m
}

fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(5, op.get("operationId"));
    m.strings(6, op.get("produces"));
    m.strings(7, op.get("consumes"));
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.message(8, parameter(p));
    }
    let mut responses = Msg::default();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut response = Msg::default();
        response.string(1, r.get("description"));
        if let Some(s) = r.get("schema") {
            let mut item = Msg::default();
            item.message(1, schema(s)); // SchemaItem.schema
            response.message(2, item);
        }
        let mut value = Msg::default();
        value.message(1, response); // ResponseValue.response
        responses.named(1, code, value);
    }
    m.message(9, responses);
    if let Some(obj) = op.as_object() {
        m.extensions(13, obj);
    }
    m
}

/// `ParametersItem` → `Parameter` → a body parameter, or a query or path
/// parameter (`NonBodyParameter`'s sub-schemas, whose field numbers
/// differ).
fn parameter(p: &Value) -> Msg {
    let mut param = Msg::default();
    match p["in"].as_str() {
        Some("body") => {
            let mut body = Msg::default();
            body.string(1, p.get("description"));
            body.string(2, p.get("name"));
            body.string(3, p.get("in"));
            body.boolean(4, p.get("required"));
            if let Some(s) = p.get("schema") {
                body.message(5, schema(s));
            }
            param.message(1, body);
        }
        place => {
            let mut sub = Msg::default();
            sub.boolean(1, p.get("required"));
            sub.string(2, p.get("in"));
            sub.string(3, p.get("description"));
            sub.string(4, p.get("name"));
            let (which, type_tag, unique_tag) = if place == Some("path") {
                (4, 5, 19)
            } else {
                (3, 6, 20)
            };
            sub.string(type_tag, p.get("type"));
            sub.boolean(unique_tag, p.get("uniqueItems"));
            let mut non_body = Msg::default();
            non_body.message(which, sub);
            param.message(2, non_body);
        }
    }
    let mut item = Msg::default();
    item.message(1, param);
    item
}

/// `Schema`: the fields the generated schemas use.
fn schema(s: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(obj) = s.as_object() else {
        return m;
    };
    m.string(1, obj.get("$ref"));
    m.string(2, obj.get("format"));
    m.string(3, obj.get("title"));
    m.string(4, obj.get("description"));
    m.strings(19, obj.get("required"));
    match obj.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut ap = Msg::default();
            ap.boolean(2, Some(&Value::Bool(*b)));
            m.message(21, ap);
        }
        Some(sub) => {
            let mut ap = Msg::default();
            ap.message(1, schema(sub));
            m.message(21, ap);
        }
        None => {}
    }
    if let Some(t) = obj.get("type") {
        let mut ty = Msg::default();
        match t {
            Value::Array(_) => ty.strings(1, Some(t)),
            _ => ty.string(1, Some(t)),
        }
        m.message(22, ty);
    }
    if let Some(items) = obj.get("items") {
        let mut it = Msg::default();
        it.message(1, schema(items));
        m.message(23, it);
    }
    for sub in obj
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(sub));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (name, sub) in props {
            p.named(1, name, schema(sub));
        }
        m.message(25, p);
    }
    m.boolean(27, obj.get("readOnly"));
    m.extensions(31, obj);
    m
}
