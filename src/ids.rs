//! Ids of users and sessions, each a type of its own (the bottom layer: no dependencies).

/// A user's id. A type of its own, so that a user's id and a session's can never be swapped in
/// a call that takes both:
///
/// ```compile_fail
/// fn end(_user: &authd::ids::UserId, _session: &authd::ids::SessionId) {}
/// let (user, session) = (authd::ids::UserId::from("u"), authd::ids::SessionId::from("s"));
/// end(&session, &user);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// A session's id (see [`UserId`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(pub String);

macro_rules! id_type {
    ($t:ident) => {
        impl $t {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $t {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(UserId);
id_type!(SessionId);
