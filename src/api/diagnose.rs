//! Says which field of a refused JSON body is wrong, read off the operation's published schema.
//!
//! poem-openapi refuses a body that breaks the schema with a message that quotes the value it
//! found and names the Rust type, never the field. The guard keeps the body's bytes and, when
//! parsing failed, asks this module what is wrong: the spec is then the one source of both the
//! rule and its explanation. The answer names a field and the rule it breaks; it never repeats
//! what the client sent (a misplaced password must not come back in a response or a log).
use serde_json::Value;

/// What is wrong with `body` for the operation at `path` and `method`, if the schema says.
pub fn body_problem(doc: &Value, path: &str, method: &str, body: &[u8]) -> Option<String> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Some("the body is not valid JSON".to_owned());
    };
    let op = super::spec::operation(doc, path, method)?;
    let content = op.get("requestBody")?.get("content")?.as_object()?;
    let schema = resolve(doc, content.values().next()?.get("schema")?);
    if !value.is_object() {
        return Some("the body must be a JSON object".to_owned());
    }
    object_problem(doc, schema, &value)
}

/// `$ref` to the schema it names (one level: the spec's refs point at components).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .and_then(|name| doc.get("components")?.get("schemas")?.get(name));
    target.unwrap_or(schema)
}

fn object_problem(doc: &Value, schema: &Value, value: &Value) -> Option<String> {
    let props = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if value.get(name).is_none() {
            return Some(format!("`{name}` is missing"));
        }
    }
    let present = || {
        props
            .into_iter()
            .flatten()
            .filter_map(|(name, s)| Some((name, resolve(doc, s), value.get(name)?)))
    };
    // Kinds before lengths: the field that made parsing fail is far more often of the wrong
    // kind, and some documented lengths are the handler's to enforce (`weak_password`).
    present()
        .find_map(|(name, s, v)| kind_problem(name, s, v))
        .or_else(|| present().find_map(|(name, s, v)| length_problem(name, s, v)))
}

fn kind_problem(name: &str, schema: &Value, value: &Value) -> Option<String> {
    if value.is_null() {
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        return (!nullable).then(|| format!("`{name}` must not be null (leave it out instead)"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if allowed.contains(value) {
            return None;
        }
        let names: Vec<String> = allowed
            .iter()
            .filter_map(Value::as_str)
            .map(|a| format!("`{a}`"))
            .collect();
        return Some(format!("`{name}` must be one of {}", names.join(", ")));
    }
    let fits = match schema.get("type").and_then(Value::as_str) {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        _ => true,
    };
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("value");
    (!fits).then(|| format!("`{name}` must be a JSON {kind}"))
}

fn length_problem(name: &str, schema: &Value, value: &Value) -> Option<String> {
    let len = value.as_str()?.chars().count() as u64;
    let max = schema.get("maxLength").and_then(Value::as_u64);
    max.filter(|&m| len > m)
        .map(|m| format!("`{name}` is longer than {m} characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &str, body: &str) -> Option<String> {
        body_problem(
            super::super::spec::published(),
            path,
            "post",
            body.as_bytes(),
        )
    }

    #[test]
    fn a_refused_body_is_explained_by_its_field_never_by_its_value() {
        let cases = [
            ("/auth/login", "{", "the body is not valid JSON"),
            ("/auth/login", "[]", "the body must be a JSON object"),
            (
                "/auth/login",
                r#"{"email":"ada@example.com"}"#,
                "`password` is missing",
            ),
            (
                "/auth/login",
                r#"{"email":"ada@example.com","password":12345678}"#,
                "`password` must be a JSON string",
            ),
            (
                "/auth/login",
                r#"{"email":"a@b.co","password":"secret-value","delivery":"Body"}"#,
                "`delivery` must be one of `cookie`, `body`",
            ),
            (
                "/auth/login",
                r#"{"email":"a@b.co","password":"secret-value","delivery":null}"#,
                "`delivery` must not be null (leave it out instead)",
            ),
            (
                "/auth/refresh",
                r#"{"refresh_token":7}"#,
                "`refresh_token` must be a JSON string",
            ),
        ];
        for (path, body, want) in cases {
            let got = problem(path, body);
            assert_eq!(got.as_deref(), Some(want), "{path} {body}");
            assert!(!got.unwrap_or_default().contains("secret-value"));
        }
        let long = format!(r#"{{"email":"{}","password":"x"}}"#, "a".repeat(400));
        assert_eq!(
            problem("/auth/login", &long).as_deref(),
            Some("`email` is longer than 320 characters")
        );
    }

    #[test]
    fn a_null_refresh_token_is_no_problem_and_unknown_paths_say_nothing() {
        assert_eq!(problem("/auth/refresh", r#"{"refresh_token":null}"#), None);
        assert_eq!(problem("/nope", r#"{}"#), None);
    }
}
