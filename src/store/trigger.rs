//! What starts a plan, an apply or a prune: stored as the record's `triggered_by` text. Who was
//! behind it (the local user, a token's name, ...) is the record's actor, not part of this.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The trigger of a record. Its text (`cli`, `pull_request`, `serve:webhook:github,startup`, ...)
/// is what older versions stored; any other stored text reads back as [`Trigger::Other`], so
/// [`Trigger::to_string`] always gives back exactly what was stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Trigger {
    /// The `weir` command line.
    Cli,
    /// A push to the tracked branch.
    Push,
    /// A pull/merge request preview.
    PullRequest,
    /// A periodic poll of the repo or the clusters.
    Poll,
    /// A person approving a plan by hand.
    Manual,
    /// The daemon API; the actor is the token's name.
    Api,
    /// The daemon's audit retention (a prune).
    Retention,
    /// The daemon (`weir serve`), for these reasons (`push`, `webhook:github`, `startup`, ...):
    /// stored as `serve:` and the reasons joined by `,`.
    Serve(Vec<String>),
    /// Anything else found in a store.
    Other(String),
}

impl Trigger {
    /// The daemon, for one reason.
    pub fn serve(reason: impl Into<String>) -> Trigger {
        Trigger::Serve(vec![reason.into()])
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Trigger::Cli => "cli",
            Trigger::Push => "push",
            Trigger::PullRequest => "pull_request",
            Trigger::Poll => "poll",
            Trigger::Manual => "manual",
            Trigger::Api => "api",
            Trigger::Retention => "retention",
            Trigger::Serve(reasons) => return write!(f, "serve:{}", reasons.join(",")),
            Trigger::Other(text) => text,
        };
        f.write_str(name)
    }
}

impl FromStr for Trigger {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Trigger, Self::Err> {
        Ok(match s {
            "cli" => Trigger::Cli,
            "push" => Trigger::Push,
            "pull_request" => Trigger::PullRequest,
            "poll" => Trigger::Poll,
            "manual" => Trigger::Manual,
            "api" => Trigger::Api,
            "retention" => Trigger::Retention,
            other => match other.strip_prefix("serve:") {
                Some(reasons) => Trigger::Serve(reasons.split(',').map(str::to_string).collect()),
                None => Trigger::Other(other.to_string()),
            },
        })
    }
}

impl From<&str> for Trigger {
    fn from(s: &str) -> Trigger {
        let Ok(t) = s.parse();
        t
    }
}

impl From<String> for Trigger {
    fn from(s: String) -> Trigger {
        Trigger::from(s.as_str())
    }
}

impl From<Trigger> for String {
    fn from(t: Trigger) -> String {
        t.to_string()
    }
}

impl sqlx::Type<sqlx::Any> for Trigger {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <String as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for Trigger {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Any>>::encode(self.to_string(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Trigger {
    fn decode(
        value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
        Ok(Trigger::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_round_trips() {
        for text in [
            "cli",
            "push",
            "pull_request",
            "poll",
            "manual",
            "api",
            "retention",
            "serve:push",
            "serve:webhook:github,startup",
            "serve:",
            "webhook",
            "",
        ] {
            let t = Trigger::from(text);
            assert_eq!(t.to_string(), text);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), t);
        }
        assert_eq!(Trigger::from("cli"), Trigger::Cli);
        assert_eq!(
            Trigger::from("serve:webhook:github,startup"),
            Trigger::Serve(vec!["webhook:github".into(), "startup".into()])
        );
        assert_eq!(Trigger::serve("api").to_string(), "serve:api");
    }
}
