//! Secret redaction: every byte the runner writes (stdout, transcript, result)
//! passes through [`Redactor::redact`].

use aho_corasick::AhoCorasick;

/// What replaces a secret.
pub const MASK: &str = "[REDACTED]";
/// Values shorter than this are not treated as secrets (they would mask
/// ordinary words).
const MIN_SECRET_LEN: usize = 6;

/// Replaces every occurrence of known secret values.
#[derive(Clone, Debug)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor for `secrets`; short and empty values are ignored.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> =
            secrets.into_iter().map(|s| s.trim().to_owned()).filter(|s| s.len() >= MIN_SECRET_LEN).collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let matcher = if secrets.is_empty() {
            None
        } else {
            AhoCorasick::builder().match_kind(aho_corasick::MatchKind::LeftmostLongest).build(&secrets).ok()
        };
        Self { matcher }
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        match &self.matcher {
            Some(matcher) => matcher.replace_all(text, &vec![MASK; matcher.patterns_len()]),
            None => text.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_ignores_short_values() {
        let r = Redactor::new(vec!["sk-ant-123456".into(), "ghp_abcdef".into(), "abc".into(), String::new()]);
        assert_eq!(
            r.redact("key sk-ant-123456 and ghp_abcdef; sk-ant-123456 again, abc stays"),
            "key [REDACTED] and [REDACTED]; [REDACTED] again, abc stays"
        );
        assert_eq!(Redactor::new(Vec::new()).redact("plain"), "plain");
    }

    #[test]
    fn longer_secret_containing_another_is_masked_whole() {
        let r = Redactor::new(vec!["token1".into(), "token1-extended".into()]);
        assert_eq!(r.redact("x token1-extended y token1"), "x [REDACTED] y [REDACTED]");
    }
}
