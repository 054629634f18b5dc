//! Routing: from an HTTP request to the handler of its verb.
//!
//! [`request::parse_path`](super::request::parse_path) says which resource,
//! namespace, object and subresource a URL names; [`dispatch`] picks the
//! verb from the method and hands a [`Call`] to the handler. Discovery and
//! OpenAPI documents get ordinary axum routes. This is the top of the
//! request path: it uses the handlers, `watch` and `logs`, and none of them
//! uses it.
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/installer.go` (the routes per
//! resource and verb) and `pkg/server/handler.go`.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;

use super::ApiServer;
use super::discovery;
use super::handlers;
use super::openapi;
use super::request::{Call, Query, parse_path};
use super::resources::Subresource;
use super::status::ApiError;

/// The router: discovery routes plus one catch-all for resources.
pub fn router(api: ApiServer) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::api_versions))
        .route("/apis", get(discovery::api_group_list))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_index))
        .route("/openapi/v3/{*gv}", get(openapi::v3_group_version))
        // The streaming subresource: an upgraded connection, not a verb.
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            any(super::portforward::portforward),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .fallback(dispatch)
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::method_not_allowed(req.method().as_str()).into_response()
        })
        .layer(middleware::from_fn(log_request))
        .with_state(api)
}

/// One debug line per request (`RUST_LOG=labs=debug`): method, path,
/// answer, time. `-v=8` on kubectl shows the same from the other side.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %uri, status = resp.status().as_u16(), elapsed = ?start.elapsed(), "request");
    resp
}

// ANCHOR: dispatch
/// The catch-all handler: parse the path, read the body (with a size
/// limit), pick the verb.
async fn dispatch(State(api): State<ApiServer>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(target) = parse_path(parts.uri.path()) else {
        return ApiError::no_route().into_response();
    };
    let limit = api.config().max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return ApiError::too_large(limit).into_response();
    }
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let call = Call {
        method: parts.method,
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
        target,
        body,
    };
    let t = &call.target;
    let collection = t.name.is_none();
    let result = match (&call.method, collection, t.subresource) {
        (&Method::GET, true, _) if call.query.flag("watch") => {
            return super::watch::watch(&api, &call);
        }
        (&Method::GET, true, _) => handlers::list(&api, &call),
        (&Method::POST, true, _) => handlers::create(&api, &call),
        (&Method::DELETE, true, _) => handlers::delete_collection(&api, &call),
        (&Method::GET, false, None | Some(Subresource::Status)) => handlers::get(&api, &call),
        (&Method::PUT, false, None | Some(Subresource::Status)) => handlers::update(&api, &call),
        (&Method::PATCH, false, None | Some(Subresource::Status | Subresource::Scale)) => {
            handlers::patch(&api, &call)
        }
        (&Method::DELETE, false, None) => handlers::delete(&api, &call),
        (&Method::GET, false, Some(Subresource::Scale)) => handlers::get_scale(&api, &call),
        (&Method::PUT, false, Some(Subresource::Scale)) => handlers::update_scale(&api, &call),
        (&Method::POST, false, Some(Subresource::Binding)) => handlers::bind(&api, &call),
        // Logs come from the kubelet of the pod's node.
        (&Method::GET, false, Some(Subresource::Log)) => {
            match super::logs::pod_log(&api, &call).await {
                Ok(resp) => return resp,
                Err(e) => Err(e),
            }
        }
        (m, _, _) => Err(ApiError::method_not_allowed(m.as_str())),
    };
    match result {
        Ok(reply) => reply.into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "request failed");
            e.into_response()
        }
    }
}
// ANCHOR_END: dispatch

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(ApiError::too_large(limit));
                }
                source = err.source();
            }
            Err(ApiError::bad_request(format!(
                "unable to read the request body: {e}"
            )))
        }
    }
}
