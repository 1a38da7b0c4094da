//! The published OpenAPI document: poem-openapi's, finished with what its derive macros cannot
//! say. `/openapi.json`, `/openapi.yaml`, the docs UI at `/docs` and `authd openapi` (hence the
//! committed `openapi.yaml`) all serve this one document.
//!
//! The finishing touches:
//! - `security: []` on public operations, so that tools (and readers) know they need no
//!   credentials rather than that nobody said;
//! - response header names in their usual case (`Set-Cookie`, not `SET-COOKIE`);
//! - one example per error code on every error response, built from [`ApiError`] itself.
use serde_yaml::{Mapping, Value};

use crate::api::error::ApiError;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document could not be finished (a poem-openapi upgrade changed what it emits).
#[derive(Debug, thiserror::Error)]
#[error("the OpenAPI document: {0}")]
pub struct SpecError(String);

fn spec_error(e: impl std::fmt::Display) -> SpecError {
    SpecError(e.to_string())
}

/// The finished document, keys in poem-openapi's order.
pub fn document() -> Result<Value, SpecError> {
    let raw = super::service().spec();
    // JSON is YAML: parsing it into serde_yaml's ordered mapping keeps the key order.
    let mut doc: Value = serde_yaml::from_str(&raw).map_err(spec_error)?;
    for (path, op) in operations(&mut doc) {
        public_operations_say_so(op);
        let scope = scope_of(&path);
        for (_, resp) in op
            .get_mut("responses")
            .and_then(Value::as_mapping_mut)
            .into_iter()
            .flatten()
        {
            if let Some(resp) = resp.as_mapping_mut() {
                header_names(resp);
                error_examples(resp, scope);
            }
        }
    }
    closed_objects(&mut doc);
    Ok(doc)
}

/// The document as JSON (`/openapi.json`).
pub fn json() -> Result<String, SpecError> {
    serde_json::to_string_pretty(&document()?).map_err(spec_error)
}

/// The document as YAML (`/openapi.yaml`, `authd openapi`, the committed `openapi.yaml`).
pub fn yaml() -> Result<String, SpecError> {
    serde_yaml::to_string(&document()?).map_err(spec_error)
}

/// The Swagger UI page, embedding the finished document (poem-openapi's page embeds its own).
pub fn swagger_ui_html() -> Result<String, SpecError> {
    let service = super::service();
    let html = service.swagger_ui_html();
    let embedded = service.spec();
    if !html.contains(&embedded) {
        return Err(SpecError(
            "the Swagger UI page no longer embeds the spec verbatim".into(),
        ));
    }
    Ok(html.replacen(&embedded, &json()?, 1))
}

/// The finished document as JSON, built once (the guard reads it to explain a 400 and to list
/// the methods of a 405).
pub fn published() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        json()
            .ok()
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default()
    })
}

/// The path item of the spec whose template matches `path` (`/auth/sessions/{id}` matches
/// `/auth/sessions/abc`).
fn path_item<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let segments: Vec<&str> = path.split('/').collect();
    doc.get("paths")?
        .as_object()?
        .iter()
        .find(|(template, _)| {
            let template: Vec<&str> = template.split('/').collect();
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                })
        })
        .map(|(_, item)| item)
}

/// The operation at `path` for `method` (lower-case), if the spec has one.
pub fn operation<'a>(
    doc: &'a serde_json::Value,
    path: &str,
    method: &str,
) -> Option<&'a serde_json::Value> {
    path_item(doc, path)?.get(method)
}

/// The `Allow` header for a 405 on `path`: the methods the spec documents there, if it is one
/// of the spec's paths.
pub fn allowed_methods(path: &str) -> Option<String> {
    let item = path_item(published(), path)?.as_object()?;
    let methods: Vec<String> = item
        .keys()
        .filter(|m| METHODS.contains(&m.as_str()))
        .map(|m| m.to_ascii_uppercase())
        .collect();
    Some(methods.join(", "))
}

/// Every operation, with its path.
fn operations(doc: &mut Value) -> impl Iterator<Item = (String, &mut Mapping)> {
    doc.get_mut("paths")
        .and_then(Value::as_mapping_mut)
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .filter_map(|(path, item)| Some((path.as_str()?.to_owned(), item.as_mapping_mut()?)))
        .flat_map(|(path, item)| item.iter_mut().map(move |op| (path.clone(), op)))
        .filter(|(_, (method, _))| method.as_str().is_some_and(|m| METHODS.contains(&m)))
        .filter_map(|(path, (_, op))| Some((path, op.as_mapping_mut()?)))
}

/// The service-key scope the operations at `path` need, for their `insufficient_scope` text.
fn scope_of(path: &str) -> Option<crate::tokens::Scope> {
    use crate::tokens::Scope;
    if path.starts_with("/admin/") {
        Some(Scope::Admin)
    } else if path == "/auth/introspect" {
        Some(Scope::Introspect)
    } else if path == "/auth/revocations" {
        Some(Scope::RevocationsRead)
    } else {
        None
    }
}

/// Request bodies that refuse unknown fields (`deny_unknown_fields`), which poem-openapi does
/// not write into their schemas: `additionalProperties: false`, so that clients and testing
/// tools know an extra field is an error, not ignored.
pub const CLOSED_OBJECTS: [&str; 4] = [
    "CreateUserRequest",
    "UpdateUserRequest",
    "DeleteMeRequest",
    "PasswordResetRequest",
];

fn closed_objects(doc: &mut Value) {
    let Some(schemas) = doc
        .get_mut("components")
        .and_then(|c| c.get_mut("schemas"))
        .and_then(Value::as_mapping_mut)
    else {
        return;
    };
    for name in CLOSED_OBJECTS {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_mapping_mut) {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// An operation without security requirements is public: say `security: []`.
fn public_operations_say_so(op: &mut Mapping) {
    if !op.contains_key("security") {
        op.insert("security".into(), Value::Sequence(Vec::new()));
    }
}

/// `SET-COOKIE` -> `Set-Cookie`, `WWW-AUTHENTICATE` -> `WWW-Authenticate`.
fn header_names(resp: &mut Mapping) {
    let Some(headers) = resp.get_mut("headers").and_then(Value::as_mapping_mut) else {
        return;
    };
    let renamed: Mapping = std::mem::take(headers)
        .into_iter()
        .map(|(name, header)| {
            let name = name
                .as_str()
                .map_or(name.clone(), |n| Value::from(canonical_header(n)));
            (name, header)
        })
        .collect();
    *headers = renamed;
}

fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            if part.eq_ignore_ascii_case("www") {
                "WWW".to_owned()
            } else {
                let lower = part.to_ascii_lowercase();
                let mut chars = lower.chars();
                chars.next().map_or_else(String::new, |c| {
                    c.to_ascii_uppercase().to_string() + chars.as_str()
                })
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Every error response lists its codes in its description (see `crate::api::error::Errors`): add an
/// example body for each, so that the docs UI and generated clients show the real bodies.
fn error_examples(resp: &mut Mapping, scope: Option<crate::tokens::Scope>) {
    // The documented `insufficient_scope` names one scope; say the operation's own.
    let scoped = |err: &ApiError| match (err, scope) {
        (ApiError::InsufficientScope(_), Some(s)) => ApiError::InsufficientScope(s),
        (other, _) => other.clone(),
    };
    if let Some(description) = resp.get("description").and_then(Value::as_str) {
        let mut text = description.to_owned();
        for (_, err) in &ApiError::DOCUMENTED {
            let (generic, own) = (err.message(), scoped(err).message());
            if generic != own {
                text = text.replace(generic.as_ref(), own.as_ref());
            }
        }
        resp.insert("description".into(), text.into());
    }
    let Some(description) = resp
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let Some(content) = resp.get_mut("content").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, media) in content.iter_mut() {
        let Some(media) = media.as_mapping_mut() else {
            continue;
        };
        let is_error_body = media
            .get("schema")
            .and_then(|s| s.get("$ref"))
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("/ErrorBody"));
        if !is_error_body {
            continue;
        }
        let mut examples = Mapping::new();
        for (_, err) in &ApiError::DOCUMENTED {
            let code = err.to_string();
            if !description.contains(&format!("`{code}`:")) {
                continue;
            }
            let body = scoped(err).body();
            let mut value = Mapping::new();
            value.insert("error".into(), body.error.into());
            value.insert("message".into(), body.message.into());
            let mut example = Mapping::new();
            example.insert("value".into(), Value::Mapping(value));
            examples.insert(code.into(), Value::Mapping(example));
        }
        if !examples.is_empty() {
            media.insert("examples".into(), Value::Mapping(examples));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        serde_json::from_str(&json().unwrap()).unwrap()
    }

    #[test]
    fn json_and_yaml_are_one_document() {
        let from_yaml: serde_json::Value = serde_yaml::from_str(&yaml().unwrap()).unwrap();
        assert_eq!(from_yaml, doc());
    }

    #[test]
    fn every_operation_is_complete() {
        let doc = doc();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let here = format!("{method} {path}");
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{here}: operationId"));
                assert!(
                    ids.insert(id.to_owned()),
                    "{here}: duplicate operationId {id}"
                );
                assert!(!op["tags"].as_array().unwrap().is_empty(), "{here}: tag");
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{here}: summary"
                );
                assert!(
                    op["description"].as_str().is_some_and(|s| !s.is_empty()),
                    "{here}: description"
                );
                assert!(op["security"].is_array(), "{here}: security");
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('4')),
                    "{here}: a 4xx response"
                );
                for (status, resp) in responses {
                    assert!(
                        resp["description"].as_str().is_some_and(|s| !s.is_empty()),
                        "{here} {status}: description"
                    );
                    if status.starts_with(['4', '5']) {
                        let media = &resp["content"]["application/json; charset=utf-8"];
                        assert_eq!(
                            media["schema"]["$ref"], "#/components/schemas/ErrorBody",
                            "{here} {status}"
                        );
                        assert!(
                            !media["examples"].as_object().unwrap().is_empty(),
                            "{here} {status}: examples"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_object_schema_has_a_description_and_an_example() {
        let doc = doc();
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            assert!(
                schema["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}"
            );
            if schema["type"] == "object" {
                assert!(schema["example"].is_object(), "{name}: example");
            }
        }
    }

    #[test]
    fn public_operations_need_no_credentials() {
        let doc = doc();
        for (path, method) in [
            ("/auth/register", "post"),
            ("/auth/login", "post"),
            ("/healthz", "get"),
        ] {
            assert_eq!(
                doc["paths"][path][method]["security"],
                serde_json::json!([]),
                "{path}"
            );
        }
        assert_eq!(
            doc["paths"]["/me"]["get"]["security"],
            serde_json::json!([{ "bearerAuth": [] }])
        );
    }

    #[test]
    fn cookies_are_documented_in_the_usual_case() {
        let doc = doc();
        for path in ["/auth/login", "/auth/refresh"] {
            assert!(
                doc["paths"][path]["post"]["responses"]["200"]["headers"]["Set-Cookie"].is_object(),
                "{path}"
            );
        }
        for (status, resp) in doc["paths"]["/auth/logout"]["post"]["responses"]
            .as_object()
            .unwrap()
        {
            // Only an answer that ended the session (or found its token dead) expires the
            // cookie: an error never drops the credential of a session that may be alive.
            let documented = resp["headers"]["Set-Cookie"].is_object();
            assert_eq!(documented, status == "204", "logout {status}");
        }
        let unauthorized = &doc["paths"]["/me"]["get"]["responses"]["401"];
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
        assert_eq!(
            unauthorized["content"]["application/json; charset=utf-8"]["examples"]["invalid_token"]
                ["value"]["error"],
            "invalid_token"
        );
    }

    #[test]
    fn the_docs_page_embeds_the_finished_document() {
        let html = swagger_ui_html().unwrap();
        assert!(html.contains("\"security\": []"));
    }

    #[test]
    fn bodies_that_refuse_unknown_fields_say_so_and_admin_refusals_name_their_scope() {
        let doc = doc();
        for name in CLOSED_OBJECTS {
            let schema = &doc["components"]["schemas"][name];
            assert_eq!(schema["additionalProperties"], false, "{name}");
        }
        let forbidden = &doc["paths"]["/admin/users"]["get"]["responses"]["403"];
        let example = &forbidden["content"]["application/json; charset=utf-8"]["examples"]["insufficient_scope"]
            ["value"]["message"];
        assert!(
            example.as_str().is_some_and(|m| m.ends_with("admin.")),
            "{example}"
        );
        assert!(
            forbidden["description"]
                .as_str()
                .is_some_and(|d| !d.contains("revocations:read"))
        );
        let feed = &doc["paths"]["/auth/revocations"]["get"]["responses"]["403"]["description"];
        assert!(
            feed.as_str()
                .is_some_and(|d| d.contains("revocations:read"))
        );
        let patch = &doc["components"]["schemas"]["UpdateUserRequest"]["properties"];
        assert_eq!(patch["max_sessions"]["nullable"], true);
        assert_eq!(patch["app_metadata"]["nullable"], true);
    }

    #[test]
    fn a_405_names_the_allowed_methods() {
        assert_eq!(allowed_methods("/auth/login").as_deref(), Some("POST"));
        assert_eq!(
            allowed_methods("/auth/sessions/abc").as_deref(),
            Some("DELETE")
        );
        assert_eq!(allowed_methods("/me").as_deref(), Some("DELETE, GET"));
        assert_eq!(allowed_methods("/auth/sessions/"), None);
        assert_eq!(allowed_methods("/nope"), None);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical_header("SET-COOKIE"), "Set-Cookie");
        assert_eq!(canonical_header("WWW-AUTHENTICATE"), "WWW-Authenticate");
        assert_eq!(canonical_header("retry-after"), "Retry-After");
    }
}
