//! The page templates (minijinja, compiled once) and their filters and
//! escaping.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;
use minijinja::Environment;

use crate::view;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("sessions.html", include_str!("../templates/sessions.html")),
    ("session.html", include_str!("../templates/session.html")),
    ("sources.html", include_str!("../templates/sources.html")),
    ("source.html", include_str!("../templates/source.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// The compiled page templates.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Compiles the templates; fails on a template error.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("duration", |ms: i64| view::human_duration(ms));
        env.add_filter("usd", |usd: f64| format!("${usd:.4}"));
        env.add_filter("short_revision", |r: String| view::short_revision(&r));
        env.add_filter("ago", |t: String| {
            t.parse::<Timestamp>().map(|t| view::ago(t, Timestamp::now())).unwrap_or(t)
        });
        env.add_filter("urlencode", |s: String| view::percent_encode(&s));
        // Text from the agent's output becomes a link only when it is an
        // http(s) URL: never `javascript:`, `data:` or anything else.
        env.add_test("web_link", |s: String| view::is_web_link(&s));
        env.set_formatter(escape);
        Ok(Self { env })
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// HTML escaping of `&<>"'` only: minijinja's default also escapes `/`,
/// which makes every URL in the page source unreadable.
fn escape(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match (state.auto_escape(), value.as_str()) {
        (minijinja::AutoEscape::Html, Some(text)) if !value.is_safe() => {
            for c in text.chars() {
                let escaped = match c {
                    '&' => "&amp;",
                    '<' => "&lt;",
                    '>' => "&gt;",
                    '"' => "&quot;",
                    '\'' => "&#39;",
                    _ => {
                        out.write_char(c).map_err(|_| fmt_error())?;
                        continue;
                    }
                };
                out.write_str(escaped).map_err(|_| fmt_error())?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn fmt_error() -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "failed to write the page")
}
