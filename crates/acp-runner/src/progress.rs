//! Progress the runner reports while it works (the events themselves are
//! [`acp_api::progress::Progress`], the wire format its readers share), and
//! where it goes.
//!
//! Every event is redacted before any sink sees it. In a pod the sink prints
//! JSON lines on stdout (the operator and `kubectl logs` read them); `acp run`
//! renders the same events for a terminal.

use crate::redact::Redactor;

/// Longest text echoed per event; the transcript keeps everything.
pub const PREVIEW_BYTES: usize = 2000;

pub use acp_api::progress::Progress;

/// Where progress goes.
pub trait Sink: Send {
    /// Receives one (already redacted) event.
    fn emit(&mut self, progress: &Progress);
}

/// Prints each event as one JSON line on stdout.
pub struct JsonLines;

impl Sink for JsonLines {
    fn emit(&mut self, progress: &Progress) {
        if let Ok(line) = serde_json::to_string(progress) {
            println!("{line}");
        }
    }
}

/// Redacts events before passing them to the real sink.
pub struct Reporter<'a> {
    sink: &'a mut dyn Sink,
    redactor: Redactor,
}

impl<'a> Reporter<'a> {
    /// Wraps `sink`.
    pub fn new(sink: &'a mut dyn Sink, redactor: Redactor) -> Self {
        Self { sink, redactor }
    }

    /// The redactor in use.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Redacts and emits `progress`.
    pub fn emit(&mut self, progress: Progress) {
        // Redact the serialized form, so every string field is covered.
        let redacted = serde_json::to_string(&progress)
            .ok()
            .and_then(|json| serde_json::from_str::<Progress>(&self.redactor.redact(&json)).ok())
            .unwrap_or(Progress::Log { line: "[progress event withheld: could not be redacted]".into() });
        self.sink.emit(&redacted);
    }
}
