//! Attribute paths (RFC 7644 §3.10) and PATCH paths (RFC 7644 §3.5.2).
//!
//! ```text
//! attrPath  = [URI ":"] ATTRNAME *1subAttr          e.g. name.givenName
//! PATH      = attrPath / valuePath [subAttr]          e.g. emails[type eq "work"].value
//! ```
//! A path is only syntax here; [`crate::registry::ResourceDef::resolve`] gives it meaning.

use std::fmt;

use crate::error::{Result, ScimError};
use crate::filter::{Filter, FilterLimits, Parser};

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`, plus `$ref`.
pub fn is_attr_name(s: &str) -> bool {
    let body = s.strip_prefix('$').unwrap_or(s);
    let mut chars = body.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// An attribute path: an optional schema URN, an attribute name and an optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN the path is qualified with, as written.
    pub urn: Option<String>,
    /// The attribute name, as written (names match case-insensitively).
    pub name: String,
    /// The sub-attribute name, as written.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute with no URN.
    pub fn name(name: &str) -> Self {
        AttrPath { urn: None, name: name.to_owned(), sub: None }
    }

    /// A path to a sub-attribute with no URN.
    pub fn sub(name: &str, sub: &str) -> Self {
        AttrPath { urn: None, name: name.to_owned(), sub: Some(sub.to_owned()) }
    }

    /// Parses `[URI ":"] ATTRNAME [ "." subAttr ]`.
    ///
    /// The URN is everything before the last `:` when the text starts with `urn:`; a bare
    /// schema URN (`urn:...:enterprise:2.0:User`) parses with the URN's last segment as the
    /// name, and resolution recognises it as the schema itself.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_word(text).map_err(ScimError::invalid_path)
    }

    pub(crate) fn parse_word(text: &str) -> std::result::Result<Self, String> {
        let (urn, rest) = if text.len() > 4 && text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            match text.rfind(':') {
                Some(i) => (Some(text[..i].to_owned()), &text[i + 1..]),
                None => (None, text),
            }
        } else {
            (None, text)
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if !is_attr_name(name) {
            return Err(format!("\"{text}\" is not an attribute path: \"{name}\" is not an attribute name"));
        }
        if let Some(s) = sub {
            if !is_attr_name(s) {
                return Err(format!("\"{text}\" is not an attribute path: \"{s}\" is not a sub-attribute name"));
            }
        }
        Ok(AttrPath { urn, name: name.to_owned(), sub: sub.map(str::to_owned) })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A PATCH path: an attribute path with an optional value filter on the attribute,
/// e.g. `emails[type eq "work"].value` is `emails` + filter + sub-attribute `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The attribute, and the sub-attribute that follows the filter if any.
    pub attr: AttrPath,
    /// The value filter selecting elements of a multi-valued attribute.
    pub filter: Option<Filter>,
}

impl Path {
    /// Parses a PATCH `path` with the default limits; errors are `invalidPath`.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_with(text, &FilterLimits::default())
    }

    /// Parses a PATCH `path`; errors are `invalidPath`.
    pub fn parse_with(text: &str, limits: &FilterLimits) -> Result<Self> {
        if text.len() > limits.max_len {
            return Err(ScimError::invalid_path(format!(
                "the path is {} characters long; the limit is {}",
                text.len(),
                limits.max_len
            )));
        }
        let mut p = Parser::new(text.trim(), limits);
        p.path().map_err(|e| ScimError::invalid_path(format!("invalid path \"{text}\": {e}")))
    }
}

impl From<AttrPath> for Path {
    fn from(attr: AttrPath) -> Self {
        Path { attr, filter: None }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.filter {
            None => self.attr.fmt(f),
            Some(filter) => {
                if let Some(urn) = &self.attr.urn {
                    write!(f, "{urn}:")?;
                }
                write!(f, "{}[{filter}]", self.attr.name)?;
                if let Some(sub) = &self.attr.sub {
                    write!(f, ".{sub}")?;
                }
                Ok(())
            }
        }
    }
}
