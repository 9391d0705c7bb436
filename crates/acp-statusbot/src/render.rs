//! Rendering the pull request comment from minijinja templates: the default
//! `templates/comment.md.j2` of this crate, or a file of the same name in an
//! override directory. The hidden marker that finds the comment again is
//! added here, outside the template, so an override cannot lose it.
//! Templates show anything a session reports through the `agent` filter
//! ([`agent`]), which GitHub renders as code and nothing else.

use std::path::Path;

use minijinja::Environment;

use crate::report::Report;

pub mod agent;

/// The comment template's file name.
pub const COMMENT: &str = "comment.md.j2";
/// The built-in comment template.
pub const DEFAULT_COMMENT: &str = include_str!("../templates/comment.md.j2");
/// The tracking comment template's file name (sessions asked for by
/// pull-request comments: one comment per pull request).
pub const THREAD: &str = "thread.md.j2";
/// The built-in tracking comment template.
pub const DEFAULT_THREAD: &str = include_str!("../templates/thread.md.j2");

/// A template problem.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The override could not be read.
    #[error("failed to read template {path}: {source}")]
    Read {
        /// Template path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template does not compile or fails to render.
    #[error("failed to render a comment template: {0:#}")]
    Template(#[from] minijinja::Error),
}

/// The hidden marker identifying a session's comment.
pub fn marker(namespace: &str, name: &str) -> String {
    format!("<!-- acp:session {namespace}/{name} -->")
}

/// The hidden marker identifying the tracking comment of pull request
/// `pull` of `repository` kept for SessionSource `source`
/// (`namespace/name`): two sources serving one repository (even with one
/// GitHub App, so one bot login) never edit each other's comment.
pub fn thread_marker(repository: &str, pull: u64, source: &str) -> String {
    format!("<!-- acp:thread {repository}#{pull} {source} -->")
}

/// A pull request's thread of sessions, as the tracking comment shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Thread {
    /// `owner/name`.
    pub repository: String,
    /// Pull request number.
    pub pull: u64,
    /// The SessionSource that keeps it (`namespace/name`).
    pub source: String,
    /// The sessions, oldest first.
    pub turns: Vec<Report>,
}

/// Compiled templates.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    /// The built-in templates, or those in `overrides` where present.
    pub fn new(overrides: Option<&Path>) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.add_filter(agent::FILTER, agent::filter);
        for (name, default) in [(COMMENT, DEFAULT_COMMENT), (THREAD, DEFAULT_THREAD)] {
            let source = match overrides.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|source| RenderError::Read { path: path.display().to_string(), source })?,
                None => default.to_string(),
            };
            env.add_template_owned(name, source)?;
        }
        Ok(Self { env })
    }

    /// The comment body for `report`, starting with its marker.
    pub fn comment(&self, report: &Report) -> Result<String, RenderError> {
        let body = self.env.get_template(COMMENT)?.render(minijinja::value::Serde(report))?;
        Ok(format!("{}\n{}\n", marker(&report.namespace, &report.name), body.trim()))
    }

    /// The tracking comment body for `thread`, starting with its marker.
    pub fn thread(&self, thread: &Thread) -> Result<String, RenderError> {
        let body = self.env.get_template(THREAD)?.render(minijinja::value::Serde(thread))?;
        Ok(format!("{}\n{}\n", thread_marker(&thread.repository, thread.pull, &thread.source), body.trim()))
    }
}

#[cfg(test)]
mod tests;
