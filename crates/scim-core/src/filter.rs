//! The filter language of RFC 7644 §3.4.2.2: an AST, a parser and its display form.
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! ```
//! `or` binds weakest, then `and`, then `not` and parentheses. Keywords and operators are
//! case-insensitive. `and`/`or` chains are n-ary ([`Filter::And`] of every term at one level);
//! parentheses keep their own node, so `display` then `parse` gives back the same tree.
//! A path followed by `.sub op value` after a value filter (`emails[type eq "work"].value eq "x"`,
//! as Entra's matching sends it) is read as `emails[type eq "work" and value eq "x"]`.
//!
//! The parser never recurses more than [`FilterLimits::max_depth`] levels and refuses input
//! longer than [`FilterLimits::max_len`] before reading it.

use std::fmt;

use serde_json::Number;

use crate::error::{Result, ScimError};
use crate::path::{AttrPath, Path};

/// Size limits for filters and paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterLimits {
    /// The longest filter accepted, in bytes.
    pub max_len: usize,
    /// The deepest nesting of parentheses, `not` and value filters.
    pub max_depth: usize,
}

impl Default for FilterLimits {
    fn default() -> Self {
        FilterLimits { max_len: 10_000, max_depth: 32 }
    }
}

/// A comparison operator (RFC 7644 §3.4.2.2, table 3; `pr` is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater than or equal to
    Ge,
    /// less than
    Lt,
    /// less than or equal to
    Le,
}

impl CompareOp {
    /// All operators, in the RFC's order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The lower-case keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// Whether the operator orders values (`gt`, `ge`, `lt`, `le`).
    pub fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }
}

/// A comparison value: a JSON string, number, boolean or null. A dateTime is a string whose
/// meaning comes from the attribute it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string (JSON escapes decoded).
    String(String),
    /// A number.
    Number(Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath op value`
    Compare(AttrPath, CompareOp, Literal),
    /// `attrPath pr`
    Present(AttrPath),
    /// Every term holds (n-ary).
    And(Vec<Filter>),
    /// Some term holds (n-ary).
    Or(Vec<Filter>),
    /// `not (filter)`
    Not(Box<Filter>),
    /// `attrPath[filter]`: some element of a multi-valued (or complex) attribute matches the
    /// inner filter, whose paths name sub-attributes of that attribute.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// Parses a filter with the default limits; errors are `invalidFilter` and say where.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_with(text, &FilterLimits::default())
    }

    /// Parses a filter; errors are `invalidFilter` and say where and what was expected.
    pub fn parse_with(text: &str, limits: &FilterLimits) -> Result<Self> {
        if text.len() > limits.max_len {
            return Err(ScimError::invalid_filter(format!(
                "the filter is {} characters long; the limit is {}",
                text.len(),
                limits.max_len
            )));
        }
        let mut p = Parser::new(text, limits);
        p.filter_to_end().map_err(ScimError::invalid_filter)
    }

    /// Calls `f` on every attribute path in the filter (inner value-filter paths relative).
    pub fn visit_paths<'a>(&'a self, f: &mut impl FnMut(&'a AttrPath)) {
        match self {
            Filter::Compare(p, _, _) | Filter::Present(p) => f(p),
            Filter::And(xs) | Filter::Or(xs) => xs.iter().for_each(|x| x.visit_paths(f)),
            Filter::Not(x) => x.visit_paths(f),
            Filter::ValuePath(p, x) => {
                f(p);
                x.visit_paths(f)
            }
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn term(f: &mut fmt::Formatter<'_>, x: &Filter, parens: bool) -> fmt::Result {
            if parens { write!(f, "({x})") } else { write!(f, "{x}") }
        }
        match self {
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::And(xs) => {
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    term(f, x, matches!(x, Filter::And(_) | Filter::Or(_)))?;
                }
                Ok(())
            }
            Filter::Or(xs) => {
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    term(f, x, matches!(x, Filter::Or(_)))?;
                }
                Ok(())
            }
            Filter::Not(x) => write!(f, "not ({x})"),
            Filter::ValuePath(p, x) => write!(f, "{p}[{x}]"),
        }
    }
}

/// The recursive-descent parser shared by filters and PATCH paths.
pub(crate) struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    max_depth: usize,
}

type PResult<T> = std::result::Result<T, String>;

fn is_word_byte(b: u8) -> bool {
    !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'"')
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, limits: &FilterLimits) -> Self {
        Parser { src, pos: 0, depth: 0, max_depth: limits.max_depth }
    }

    fn err<T>(&self, expected: &str) -> PResult<T> {
        let found = match self.src[self.pos..].chars().next() {
            None => "the end of the filter".to_owned(),
            Some(_) => {
                let rest: String = self.src[self.pos..].chars().take(20).collect();
                format!("\"{rest}\"")
            }
        };
        Err(format!("at position {}: expected {expected}, found {found}", self.pos + 1))
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.src.as_bytes().get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The word at the cursor, without consuming it.
    fn peek_word(&self) -> &'a str {
        let bytes = self.src.as_bytes();
        let mut end = self.pos;
        while end < bytes.len() && is_word_byte(bytes[end]) {
            end += 1;
        }
        &self.src[self.pos..end]
    }

    fn take_word(&mut self) -> &'a str {
        let w = self.peek_word();
        self.pos += w.len();
        w
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        self.peek_word().eq_ignore_ascii_case(kw)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(format!(
                "at position {}: the filter nests deeper than {} levels",
                self.pos + 1,
                self.max_depth
            ));
        }
        Ok(())
    }

    pub(crate) fn filter_to_end(&mut self) -> PResult<Filter> {
        let f = self.or_expr()?;
        self.skip_ws();
        if self.pos < self.src.len() {
            return self.err("\"and\", \"or\" or the end of the filter");
        }
        Ok(f)
    }

    pub(crate) fn path(&mut self) -> PResult<Path> {
        let attr = self.attr_path()?;
        if !self.eat(b'[') {
            if self.pos < self.src.len() {
                return self.err("\"[\" or the end of the path");
            }
            return Ok(Path { attr, filter: None });
        }
        if attr.sub.is_some() {
            return Err(format!("a value filter must follow an attribute, not the sub-attribute \"{attr}\""));
        }
        self.enter()?;
        let filter = self.or_expr()?;
        self.depth -= 1;
        self.skip_ws();
        if !self.eat(b']') {
            return self.err("\"]\"");
        }
        let mut attr = attr;
        if self.eat(b'.') {
            let word = self.take_word();
            if !crate::path::is_attr_name(word) {
                return self.err("a sub-attribute name after \"].\"");
            }
            attr.sub = Some(word.to_owned());
        }
        if self.pos < self.src.len() {
            return self.err("\".\" and a sub-attribute, or the end of the path");
        }
        Ok(Path { attr, filter: Some(filter) })
    }

    fn or_expr(&mut self) -> PResult<Filter> {
        let first = self.and_expr()?;
        let mut terms = vec![first];
        loop {
            self.skip_ws();
            if self.peek_keyword("or") {
                self.take_word();
                terms.push(self.and_expr()?);
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Filter::Or(terms) })
    }

    fn and_expr(&mut self) -> PResult<Filter> {
        let first = self.unary()?;
        let mut terms = vec![first];
        loop {
            self.skip_ws();
            if self.peek_keyword("and") {
                self.take_word();
                terms.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Filter::And(terms) })
    }

    fn parenthesised(&mut self) -> PResult<Filter> {
        self.skip_ws();
        if !self.eat(b'(') {
            return self.err("\"(\"");
        }
        self.enter()?;
        let inner = self.or_expr()?;
        self.depth -= 1;
        self.skip_ws();
        if !self.eat(b')') {
            return self.err("\")\"");
        }
        Ok(inner)
    }

    fn unary(&mut self) -> PResult<Filter> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            return self.parenthesised();
        }
        if self.peek_keyword("not") {
            let save = self.pos;
            self.take_word();
            self.skip_ws();
            if self.peek() == Some(b'(') {
                self.enter()?;
                let inner = self.parenthesised()?;
                self.depth -= 1;
                return Ok(Filter::Not(Box::new(inner)));
            }
            // An attribute that happens to be called "not".
            self.pos = save;
        }
        self.attr_exp()
    }

    fn attr_path(&mut self) -> PResult<AttrPath> {
        self.skip_ws();
        let start = self.pos;
        let word = self.take_word();
        if word.is_empty() {
            return self.err("an attribute path");
        }
        AttrPath::parse_word(word).map_err(|e| format!("at position {}: {e}", start + 1))
    }

    fn attr_exp(&mut self) -> PResult<Filter> {
        let path = self.attr_path()?;
        if self.eat(b'[') {
            if path.sub.is_some() {
                return Err(format!("a value filter must follow an attribute, not the sub-attribute \"{path}\""));
            }
            self.enter()?;
            let inner = self.or_expr()?;
            self.depth -= 1;
            self.skip_ws();
            if !self.eat(b']') {
                return self.err("\"]\"");
            }
            if let Some(Filter::ValuePath(..)) = find_value_path(&inner) {
                return Err("value filters cannot be nested".to_owned());
            }
            if self.eat(b'.') {
                // emails[type eq "work"].value eq "x"  ==  emails[type eq "work" and value eq "x"]
                let word = self.take_word();
                if !crate::path::is_attr_name(word) {
                    return self.err("a sub-attribute name after \"].\"");
                }
                let sub = self.operator_tail(AttrPath::name(word))?;
                if matches!(inner, Filter::Or(_)) {
                    // Shown as `[(a or b) and sub]`: the bracket and the parentheses are two levels.
                    self.enter()?;
                    self.enter()?;
                    self.depth -= 2;
                }
                let inner = match inner {
                    Filter::And(mut xs) => {
                        xs.push(sub);
                        Filter::And(xs)
                    }
                    other => Filter::And(vec![other, sub]),
                };
                return Ok(Filter::ValuePath(path, Box::new(inner)));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.operator_tail(path)
    }

    fn operator_tail(&mut self, path: AttrPath) -> PResult<Filter> {
        self.skip_ws();
        let op_word = self.peek_word();
        if op_word.eq_ignore_ascii_case("pr") {
            self.take_word();
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(op_word) else {
            return self.err("an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)");
        };
        self.take_word();
        self.skip_ws();
        let value = self.literal()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn literal(&mut self) -> PResult<Literal> {
        if self.peek() == Some(b'"') {
            let bytes = self.src.as_bytes();
            let start = self.pos;
            let mut i = start + 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        let raw = &self.src[start..=i];
                        let s: String = serde_json::from_str(raw)
                            .map_err(|_| format!("at position {}: invalid escape in string {raw}", start + 1))?;
                        if s.contains('\0') {
                            // No attribute value holds U+0000 (and PostgreSQL text cannot).
                            return Err(format!("at position {}: a string must not contain U+0000", start + 1));
                        }
                        self.pos = i + 1;
                        return Ok(Literal::String(s));
                    }
                    _ => i += 1,
                }
            }
            return Err(format!("at position {}: the string is not closed with '\"'", start + 1));
        }
        let word = self.peek_word();
        let lit = if word.eq_ignore_ascii_case("true") {
            Literal::Bool(true)
        } else if word.eq_ignore_ascii_case("false") {
            Literal::Bool(false)
        } else if word.eq_ignore_ascii_case("null") {
            Literal::Null
        } else if let Some(n) =
            word.bytes().next().filter(|b| *b == b'-' || b.is_ascii_digit()).and_then(|_| word.parse::<Number>().ok())
        {
            Literal::Number(n)
        } else {
            return self.err("a value (a quoted string, a number, true, false or null)");
        };
        self.pos += word.len();
        Ok(lit)
    }
}

fn find_value_path(f: &Filter) -> Option<&Filter> {
    match f {
        Filter::ValuePath(..) => Some(f),
        Filter::And(xs) | Filter::Or(xs) => xs.iter().find_map(find_value_path),
        Filter::Not(x) => find_value_path(x),
        _ => None,
    }
}
