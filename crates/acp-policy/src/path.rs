//! Field paths (`spec.repos[0].url`) shared by findings and by the YAML
//! locator that turns them into a line and column.

use std::fmt;

/// One step into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A path from a document's root to one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Whether this is the root.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This path plus a key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    /// `self` followed by every segment of `rest`.
    pub fn join(&self, rest: &FieldPath) -> Self {
        let mut next = self.clone();
        next.0.extend(rest.0.iter().cloned());
        next
    }

    /// This path plus an index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// Parses a dotted path as written in messages (`spec.repos[0].url`) or a
    /// JSON pointer (`/spec/repos/0/url`).
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        if let Some(pointer) = text.strip_prefix('/') {
            for part in pointer.split('/') {
                let part = part.replace("~1", "/").replace("~0", "~");
                match part.parse::<usize>() {
                    Ok(index) => segments.push(Segment::Index(index)),
                    Err(_) => segments.push(Segment::Key(part)),
                }
            }
            return Self(segments);
        }
        for part in text.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                segments.push(Segment::Key(rest[..open].to_string()));
                rest = &rest[open..];
                while let Some(close) = rest.find(']') {
                    let inner = &rest[1..close];
                    match inner.parse::<usize>() {
                        Ok(index) => segments.push(Segment::Index(index)),
                        Err(_) => segments.push(Segment::Key(inner.trim_matches(['\'', '"']).to_string())),
                    }
                    rest = &rest[close + 1..];
                }
            } else {
                segments.push(Segment::Key(rest.to_string()));
            }
        }
        Self(segments)
    }
}

impl serde::Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) if key.contains(['.', '[', ']']) => write!(f, "[{key:?}]")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dotted_and_pointer_forms() {
        let dotted = FieldPath::parse("spec.repos[1].url");
        assert_eq!(dotted.to_string(), "spec.repos[1].url");
        assert_eq!(FieldPath::parse("/spec/repos/1/url"), dotted);
        assert_eq!(FieldPath::parse(".spec.timeout").to_string(), "spec.timeout");
        assert!(FieldPath::parse("").is_empty());
    }
}
