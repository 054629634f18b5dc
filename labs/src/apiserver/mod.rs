//! The API server: the only door to the store.
//!
//! This file declares the *pure* parts of the API server: functions over
//! `serde_json::Value` that know Kubernetes' rules but nothing about HTTP or
//! the store. The HTTP layer (routes, handlers, watch streams) lives beside
//! them and calls them; keeping the rules pure is what lets the tests (and the
//! book) check each rule with a plain table of inputs and outputs.
//!
//! | module | Kubernetes' counterpart |
//! |---|---|
//! | [`names`] | `k8s.io/apimachinery/pkg/util/validation` (name and label syntax) |
//! | [`selector`] | `k8s.io/apimachinery/pkg/labels`, `.../pkg/fields` |
//! | [`patch`] | `k8s.io/apiserver/.../handlers/patch.go`, `k8s.io/apimachinery/pkg/util/strategicpatch` |
//! | [`defaults`] | `pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go` |
//! | [`validation`] | `pkg/apis/core/validation`, `pkg/apis/apps/validation` |
//! | [`table`] | `pkg/printers/internalversion/printers.go` (server-side printing) |
//! | [`protobuf`] | `k8s.io/apimachinery/pkg/runtime/serializer/protobuf` (decoding only) |

pub mod defaults;
pub mod names;
pub mod patch;
pub mod protobuf;
pub mod selector;
pub mod table;
pub mod validation;
