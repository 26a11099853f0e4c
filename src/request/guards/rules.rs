//! `--allow` and `--deny`: which keys this counter counts.

use regex::RegexSet;

/// `--allow` and `--deny` patterns, each matched against the whole key.
#[derive(Debug, Clone, Default)]
pub struct UrlRules {
    allow: Option<RegexSet>,
    deny: Option<RegexSet>,
}

impl UrlRules {
    /// Compiles the patterns, anchoring each to the whole key.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, regex::Error> {
        let set = |patterns: &[String]| -> Result<Option<RegexSet>, regex::Error> {
            if patterns.is_empty() {
                return Ok(None);
            }
            RegexSet::new(patterns.iter().map(|p| format!("^(?:{p})$"))).map(Some)
        };
        Ok(Self {
            allow: set(allow)?,
            deny: set(deny)?,
        })
    }

    /// Why `key` is refused, if it is: deny wins over allow.
    pub fn refusal(&self, key: &str) -> Option<&'static str> {
        if self.deny.as_ref().is_some_and(|deny| deny.is_match(key)) {
            return Some("this url is denied on this counter");
        }
        if self
            .allow
            .as_ref()
            .is_some_and(|allow| !allow.is_match(key))
        {
            return Some("this url is not allowed on this counter");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_patterns_match_whole_keys() -> Result<(), regex::Error> {
        let rules = UrlRules::new(
            &[r"example\.com(/.*)?".into()],
            &[r"example\.com/private(/.*)?".into()],
        )?;
        assert_eq!(rules.refusal("example.com/blog"), None);
        assert!(rules.refusal("example.com/private/x").is_some());
        assert!(
            rules.refusal("evil.example.com").is_some(),
            "anchored: no partial match"
        );
        assert!(rules.refusal("example.com.evil").is_some());
        assert_eq!(UrlRules::new(&[], &[])?.refusal("anything"), None);
        Ok(())
    }
}
