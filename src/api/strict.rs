//! A JSON string that is only ever a JSON string, documented with the rule its handler applies.
//!
//! poem-openapi's `String` also accepts JSON numbers and booleans (`1` becomes `"1"`), so a body
//! that breaks the published schema (`"password": 12345678`) would be accepted. Request fields
//! use [`StrictString`] instead: anything but a JSON string is a 400 `invalid_request`, as the
//! spec says.
//!
//! Some fields are checked by their handler, with an error code of their own (`invalid_email`,
//! `weak_password`) rather than poem-openapi's `invalid_request`: [`NewEmail`] and
//! [`NewPassword`] publish that check in the schema (so that clients, and schemathesis, know what
//! is valid) without enforcing it at parse time.
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// What the schema of a [`StrictString`] says beyond `type: string`.
pub trait Rule: Send + Sync + 'static {
    /// Adds the rule to the schema.
    fn document(_schema: &mut MetaSchema) {}
}

/// No rule beyond the validators of the field.
pub struct Plain;
impl Rule for Plain {}

/// An email as registration accepts it (see `policy::normalize_email`): one `@`, a local part of
/// 1 to 64 characters, a dotted domain, no whitespace, control characters, invisible formatting
/// characters (bidirectional controls, zero-width characters, the soft hyphen), `<` or `>`; at
/// most 254 characters. Once normalised (NFKC, lower case, the domain in IDNA ASCII form) the
/// local part must also be ASCII and the domain valid IDNA. Anything else is `invalid_email`.
pub struct EmailRule;
impl Rule for EmailRule {
    fn document(schema: &mut MetaSchema) {
        schema.max_length = Some(254);
        schema.pattern = Some(EMAIL_PATTERN.to_owned());
    }
}

/// The registration pattern of [`EmailRule`] (ECMA-262 and Python `re` alike).
pub const EMAIL_PATTERN: &str = concat!(
    r"^[^\s@<>\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]{1,64}",
    r"@[^\s@<>.\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+",
    r"(\.[^\s@<>.\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+)+$"
);

/// A new password (see `passwords::is_acceptable`): 8 to 1024 characters (Unicode scalar
/// values), any of them, and not one of the common passwords authd ships. Anything else is
/// `weak_password`.
pub struct PasswordRule;
impl Rule for PasswordRule {
    fn document(schema: &mut MetaSchema) {
        schema.min_length = Some(crate::passwords::MIN_LEN);
        schema.max_length = Some(crate::passwords::MAX_LEN);
    }
}

/// An email to register: documented with [`EmailRule`], checked by the handler.
pub type NewEmail = StrictString<EmailRule>;
/// A password to set: documented with [`PasswordRule`], checked by the handler.
pub type NewPassword = StrictString<PasswordRule>;

/// A string field of a request body; documented as `type: string` plus its rule `R`.
pub struct StrictString<R: Rule = Plain>(pub String, PhantomData<R>);

impl<R: Rule> StrictString<R> {
    /// The string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<R: Rule> fmt::Debug for StrictString<R> {
    /// Request strings include passwords and tokens: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StrictString({} chars)", self.0.chars().count())
    }
}

impl<R: Rule> std::ops::Deref for StrictString<R> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<R: Rule> AsRef<str> for StrictString<R> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<R: Rule> From<&str> for StrictString<R> {
    fn from(s: &str) -> Self {
        Self(s.to_owned(), PhantomData)
    }
}

impl<R: Rule> From<String> for StrictString<R> {
    fn from(s: String) -> Self {
        Self(s, PhantomData)
    }
}

impl<R: Rule> Type for StrictString<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        R::document(&mut schema);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<R: Rule> ParseFromJSON for StrictString<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Self::from(s)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl<R: Rule> ToJSON for StrictString<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An optional field: it may be left out, but not sent as `null`, which its schema (not
/// `nullable`) does not allow. poem-openapi's `Option` takes `null` for "left out".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Optional<T>(pub Option<T>);

/// An optional field that may also be sent as `null`, which means the same as leaving it out;
/// its schema says `nullable: true`. For the few fields that clients and SDK generators are
/// known to send as `null` when they have no value (`refresh_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nullable<T>(pub Option<T>);

/// The two optional wrappers differ only in what `null` means.
macro_rules! optional_field {
    ($wrapper:ident, $prefix:literal, null_is_none: $null_ok:literal) => {
        impl<T: Type> Type for $wrapper<T> {
            const IS_REQUIRED: bool = false;
            type RawValueType = T::RawValueType;
            type RawElementValueType = T::RawElementValueType;

            fn name() -> Cow<'static, str> {
                format!("{}_{}", $prefix, T::name()).into()
            }

            fn schema_ref() -> MetaSchemaRef {
                match T::schema_ref() {
                    MetaSchemaRef::Inline(mut schema) if $null_ok => {
                        schema.nullable = true;
                        MetaSchemaRef::Inline(schema)
                    }
                    schema => schema,
                }
            }

            fn register(registry: &mut Registry) {
                T::register(registry);
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                self.0.as_ref().and_then(Type::as_raw_value)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                match &self.0 {
                    Some(value) => value.raw_element_iter(),
                    None => Box::new(std::iter::empty()),
                }
            }

            fn is_none(&self) -> bool {
                self.0.is_none()
            }
        }

        impl<T: ParseFromJSON> ParseFromJSON for $wrapper<T> {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    None => Ok(Self(None)),
                    Some(Value::Null) if $null_ok => Ok(Self(None)),
                    Some(Value::Null) => Err(ParseError::expected_type(Value::Null)),
                    Some(value) => T::parse_from_json(Some(value))
                        .map(|v| Self(Some(v)))
                        .map_err(ParseError::propagate),
                }
            }
        }

        impl<T: ToJSON> ToJSON for $wrapper<T> {
            fn to_json(&self) -> Option<Value> {
                self.0.as_ref().and_then(ToJSON::to_json)
            }
        }
    };
}

optional_field!(Optional, "optional", null_is_none: false);
optional_field!(Nullable, "nullable", null_is_none: true);

/// A field of a change request: left out (leave it as it is), `null` (clear it) or a value.
/// Its schema says `nullable: true` (poem-openapi's `MaybeUndefined` does not).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T: Type> Type for Patch<T> {
    const IS_REQUIRED: bool = false;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("patch_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        match T::schema_ref() {
            MetaSchemaRef::Inline(mut schema) => {
                schema.nullable = true;
                MetaSchemaRef::Inline(schema)
            }
            reference => reference,
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        match self {
            Self::Value(v) => v.as_raw_value(),
            _ => None,
        }
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match self {
            Self::Value(v) => v.raw_element_iter(),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Patch<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Ok(Self::Absent),
            Some(Value::Null) => Ok(Self::Null),
            Some(value) => T::parse_from_json(Some(value))
                .map(Self::Value)
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Patch<T> {
    fn to_json(&self) -> Option<Value> {
        match self {
            Self::Absent => None,
            Self::Null => Some(Value::Null),
            Self::Value(v) => v.to_json(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_strings_parse() {
        assert_eq!(
            <StrictString>::parse_from_json(Some(Value::from("a")))
                .unwrap()
                .0,
            "a"
        );
        for v in [
            Value::from(1),
            Value::from(true),
            Value::Null,
            serde_json::json!([]),
            serde_json::json!({}),
        ] {
            assert!(
                <StrictString>::parse_from_json(Some(v.clone())).is_err(),
                "{v} parsed"
            );
            assert!(
                NewPassword::parse_from_json(Some(v.clone())).is_err(),
                "{v} parsed"
            );
        }
        assert!(<StrictString>::parse_from_json(None).is_err());
        // The rule is documented, not enforced: the handler answers with its own code.
        assert_eq!(
            NewPassword::parse_from_json(Some(Value::from("short")))
                .unwrap()
                .0,
            "short"
        );
    }

    #[test]
    fn optional_fields_may_be_left_out_but_not_null() {
        assert!(
            Optional::<StrictString>::parse_from_json(None)
                .unwrap()
                .0
                .is_none()
        );
        assert_eq!(
            Optional::<StrictString>::parse_from_json(Some(Value::from("a")))
                .unwrap()
                .0
                .unwrap()
                .0,
            "a"
        );
        assert!(Optional::<StrictString>::parse_from_json(Some(Value::Null)).is_err());
        assert!(Optional::<StrictString>::parse_from_json(Some(Value::from(1))).is_err());
    }

    #[test]
    fn nullable_fields_take_null_as_left_out_and_say_so_in_the_schema() {
        for absent in [None, Some(Value::Null)] {
            assert!(
                Nullable::<StrictString>::parse_from_json(absent)
                    .unwrap()
                    .0
                    .is_none()
            );
        }
        assert!(Nullable::<StrictString>::parse_from_json(Some(Value::from(1))).is_err());
        match Nullable::<StrictString>::schema_ref() {
            MetaSchemaRef::Inline(schema) => assert!(schema.nullable),
            MetaSchemaRef::Reference(r) => panic!("inline schema expected, got {r}"),
        }
    }

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(
            format!("{:?}", <StrictString>::from("hunter22")),
            "StrictString(8 chars)"
        );
    }

    /// The documented email pattern and `normalize_email` agree on typical and edge inputs,
    /// except that the handler also refuses what normalisation shows to be a non-ASCII local part
    /// (the pattern only describes the shape).
    #[test]
    fn the_email_pattern_is_the_handler_rule() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let longest_local = format!("{}@example.com", "a".repeat(64));
        let cases = [
            "ada@example.com",
            "a@b.co",
            "first.last+tag@sub.example.org",
            "eleve@\u{e9}cole.fr",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@.example.com",
            "ada@example.com.",
            "ada@example..com",
            "ada@exa@mple.com",
            "ada lovelace@example.com",
            "<ada>@example.com",
            "ada@exa\tmple.com",
            "ada@exa\u{7f}mple.com",
            "ada@exa\u{85}mple.com",
            "a\u{202e}b@example.com",
            "pg\u{200b}@example.com",
            "ada@exam\u{ad}ple.com",
            "\u{feff}ada@example.com",
            long_local.as_str(),
            longest_local.as_str(),
        ];
        for case in cases {
            let by_handler = crate::policy::normalize_email(case).is_some();
            assert_eq!(matches_email_pattern(case), by_handler, "{case:?}");
        }
        let non_ascii_local = "\u{e9}l\u{e8}ve@\u{e9}cole.fr";
        assert!(matches_email_pattern(non_ascii_local));
        assert!(crate::policy::normalize_email(non_ascii_local).is_none());
    }

    /// `EMAIL_PATTERN`, by hand (no regex crate here).
    fn matches_email_pattern(s: &str) -> bool {
        let bad = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || crate::policy::is_invisible(c)
                || "@<>".contains(c)
        };
        let Some((local, domain)) = s.split_once('@') else {
            return false;
        };
        (1..=64).contains(&local.chars().count())
            && !local.chars().any(bad)
            && domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.chars().any(bad))
            && s.chars().count() <= 254
    }
}
