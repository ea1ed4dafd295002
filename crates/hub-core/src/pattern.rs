//! Room patterns, as flags name groups of rooms: `lobby` names one room, `chat:*` every room
//! whose name starts with `chat:` (a `*` only at the end), and `*` every room.

use std::fmt;

/// One room pattern: an exact name, or a prefix when it ends with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPattern {
    text: String,
    prefix: bool,
}

/// Why a room pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing to match.
    #[error("a room pattern must not be empty")]
    Empty,
    /// A `*` somewhere but at the end.
    #[error("'*' may only end a room pattern: {0:?}")]
    InnerStar(String),
}

impl RoomPattern {
    /// Parses `lobby`, `chat:*` or `*`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let (stem, prefix) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if stem.contains('*') {
            return Err(PatternError::InnerStar(text.to_owned()));
        }
        Ok(Self {
            text: stem.to_owned(),
            prefix,
        })
    }

    /// Whether `room` matches.
    pub fn matches(&self, room: &str) -> bool {
        if self.prefix {
            room.starts_with(&self.text)
        } else {
            room == self.text
        }
    }
}

impl fmt::Display for RoomPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// A set of room patterns; empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPatterns(Vec<RoomPattern>);

impl RoomPatterns {
    /// Parses a comma-separated list (`chat:*,lobby`); blanks between commas are skipped.
    pub fn parse_list(list: &str) -> Result<Self, PatternError> {
        let mut out = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(RoomPattern::parse(part)?);
        }
        Ok(Self(out))
    }

    /// Adds a pattern.
    pub fn push(&mut self, pattern: RoomPattern) {
        self.0.push(pattern);
    }

    /// Whether any pattern matches `room`.
    pub fn matches(&self, room: &str) -> bool {
        self.0.iter().any(|p| p.matches(room))
    }

    /// Whether the set has no pattern.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns.
    pub fn iter(&self) -> impl Iterator<Item = &RoomPattern> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_everything() {
        let p = RoomPattern::parse("chat:*").expect("pattern");
        assert!(p.matches("chat:") && p.matches("chat:1") && !p.matches("chat"));
        let e = RoomPattern::parse("lobby").expect("pattern");
        assert!(e.matches("lobby") && !e.matches("lobby2"));
        assert!(RoomPattern::parse("*").expect("pattern").matches("x"));
        assert_eq!(RoomPattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            RoomPattern::parse("a*b"),
            Err(PatternError::InnerStar(_))
        ));
        assert_eq!(p.to_string(), "chat:*");
        let set = RoomPatterns::parse_list("chat:*, lobby,").expect("list");
        assert!(set.matches("lobby") && set.matches("chat:x") && !set.matches("other"));
        assert!(RoomPatterns::default().is_empty());
        assert!(!RoomPatterns::default().matches("x"));
        assert!(RoomPatterns::parse_list("ok,**").is_err());
    }
}
