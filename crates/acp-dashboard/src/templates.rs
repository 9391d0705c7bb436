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
    ("schedules.html", include_str!("../templates/schedules.html")),
    ("schedule.html", include_str!("../templates/schedule.html")),
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
        env.add_filter("from_now", |t: String| {
            t.parse::<Timestamp>().map(|t| view::schedule::from_now(t, Timestamp::now())).unwrap_or(t)
        });
        env.add_filter("urlencode", |s: String| view::percent_encode(&s));
        env.add_function("session_url", |ns: String, name: String| view::session_path(&ns, &name));
        env.add_function("schedule_url", |ns: String, name: String| {
            view::schedule::schedule_path(&ns, &name)
        });
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

#[cfg(test)]
mod tests {
    use minijinja::context;
    use minijinja::value::Serde;
    use serde_json::json;

    use super::*;
    use crate::view::schedule::ScheduleView;

    /// Text from a schedule (its cron string, the scheduler's message, a
    /// run's name) is escaped on both schedule pages.
    #[test]
    fn schedule_pages_escape_what_they_show() {
        let pages = Pages::new().expect("templates compile");
        let schedule: acp_api::SessionSchedule = serde_json::from_value(json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
            "metadata": {"namespace": "team-a", "name": "nightly"},
            "spec": {"schedule": "<script>alert(1)</script>", "timeZone": "\"><b>zone</b>",
                     "template": {"spec": {"initialPrompt": "</pre><script>x()</script>"}}},
            "status": {"active": ["<i>run</i>"],
                       "runs": [{"name": "<i>run</i>", "scheduledTime": "2026-11-24T08:00:00Z", "phase": "Running"}],
                       "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSchedule",
                                       "message": "<img src=x onerror=alert(2)>"}]}
        }))
        .expect("a schedule");
        let view = ScheduleView::new(&schedule);
        let list = pages
            .render("schedules.html", context! { schedules => Serde(vec![&view]), section => "schedules" })
            .expect("list renders");
        let runs = json!([{"name": "<i>run</i>", "scheduledTime": "2026-11-24T08:00:00Z", "phase": "Running",
                           "triggered": false, "href": null}]);
        let detail = pages
            .render(
                "schedule.html",
                context! {
                    s => Serde(&view), runs => Serde(&runs), keep_successful => 3, keep_failed => 1,
                    template => "</pre><script>x()</script>", section => "schedules",
                },
            )
            .expect("detail renders");
        for html in [&list, &detail] {
            assert!(!html.contains("<script>alert(1)"), "the schedule is escaped");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
            assert!(!html.contains("\"><b>zone"), "the time zone is escaped");
            assert!(html.contains("aria-current=\"page\">Schedules</a>"), "the nav marks the section");
        }
        assert!(!detail.contains("<img src=x"), "the message is escaped");
        assert!(!detail.contains("<i>run</i>") && detail.contains("&lt;i&gt;run&lt;/i&gt;"), "run names");
        assert!(
            detail.contains("href=\"/sessions/team-a/%3Ci%3Erun%3C%2Fi%3E\""),
            "active runs link, encoded"
        );
        assert!(!detail.contains("<script>x()"), "the template is escaped");
    }
}
