//! The string form of a label selector, `a=b,c!=d,e in (x,y),!f`, as
//! kubectl's `-l` sends it: a lexer and a recursive-descent parser with
//! upstream's tokens and error messages.
//!
//! Upstream: the `Lexer` and `Parser` of
//! `k8s.io/apimachinery/pkg/labels/selector.go`.

use std::fmt;
use std::str::FromStr;

use super::{LabelSelector, Operator, Requirement, SelectorError};

/// Tokens of the selector language, as upstream's lexer produces them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    /// `!`
    Not,
    /// `!=`
    NotEquals,
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `>`
    GreaterThan,
    /// `<`
    LessThan,
    OpenParen,
    CloseParen,
    Comma,
    In,
    NotIn,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Identifier(s) => f.write_str(s),
            Token::Not => f.write_str("!"),
            Token::NotEquals => f.write_str("!="),
            Token::Equals => f.write_str("="),
            Token::DoubleEquals => f.write_str("=="),
            Token::GreaterThan => f.write_str(">"),
            Token::LessThan => f.write_str("<"),
            Token::OpenParen => f.write_str("("),
            Token::CloseParen => f.write_str(")"),
            Token::Comma => f.write_str(","),
            Token::In => f.write_str("in"),
            Token::NotIn => f.write_str("notin"),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a selector string into tokens. Whitespace separates tokens and is
/// otherwise ignored, so `app = web` and `app=web` are the same; `in` and
/// `notin` are keywords only when they stand alone.
fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if is_special(c) {
            chars.next();
            let two = chars.peek() == Some(&'=');
            let token = match (c, two) {
                ('!', true) => Token::NotEquals,
                ('=', true) => Token::DoubleEquals,
                ('!', false) => Token::Not,
                ('=', false) => Token::Equals,
                ('>', _) => Token::GreaterThan,
                ('<', _) => Token::LessThan,
                ('(', _) => Token::OpenParen,
                (')', _) => Token::CloseParen,
                _ => Token::Comma,
            };
            if matches!(token, Token::NotEquals | Token::DoubleEquals) {
                chars.next();
            }
            tokens.push(token);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || is_special(c) {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word),
            });
        }
    }
    tokens
}

/// A small recursive-descent parser over the tokens, following upstream's
/// grammar:
///
/// ```text
/// selector    = [ requirement { "," requirement } ]
/// requirement = [ "!" ] key
///             | key ( "=" | "==" | "!=" | ">" | "<" ) [ value ]
///             | key ( "in" | "notin" ) "(" [ value { "," [ value ] } ] ")"
/// ```
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn found(t: Option<&Token>) -> String {
        t.map_or_else(|| "end of string".to_string(), |t| t.to_string())
    }

    fn parse(mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek().is_none() {
            return Ok(requirements);
        }
        loop {
            match self.peek() {
                Some(Token::Identifier(_)) | Some(Token::Not) => {
                    requirements.push(self.parse_requirement()?)
                }
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        Self::found(t)
                    )));
                }
            }
            match self.next() {
                None => return Ok(requirements),
                Some(Token::Comma) => {
                    if !matches!(self.peek(), Some(Token::Identifier(_)) | Some(Token::Not)) {
                        return Err(SelectorError(format!(
                            "found '{}', expected: identifier after ','",
                            Self::found(self.peek())
                        )));
                    }
                }
                Some(t) => {
                    return Err(SelectorError(format!(
                        "found '{t}', expected: ',' or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek() == Some(&Token::Not);
        if negated {
            self.next();
        }
        let key = match self.next() {
            Some(Token::Identifier(k)) => k,
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: identifier",
                    Self::found(t.as_ref())
                )));
            }
        };
        // A bare key (or `!key`) ends at a comma or at the end.
        if matches!(self.peek(), None | Some(Token::Comma)) {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, []);
        }
        if negated {
            return Err(SelectorError(format!(
                "found '{}', expected: ',' or 'end of string'",
                Self::found(self.peek())
            )));
        }
        let operator = match self.next() {
            Some(Token::Equals) => Operator::Equals,
            Some(Token::DoubleEquals) => Operator::DoubleEquals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::GreaterThan) => Operator::GreaterThan,
            Some(Token::LessThan) => Operator::LessThan,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    Self::found(t.as_ref())
                )));
            }
        };
        let values = if matches!(operator, Operator::In | Operator::NotIn) {
            self.parse_set()?
        } else {
            // `app=` is allowed and means "the label is set to the empty string".
            match self.peek() {
                None | Some(Token::Comma) => vec![String::new()],
                Some(Token::Identifier(v)) => {
                    let v = v.clone();
                    self.next();
                    vec![v]
                }
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: identifier",
                        Self::found(t)
                    )));
                }
            }
        };
        Requirement::new(&key, operator, values)
    }

    /// `( a, b )`; an empty slot means the empty string, as upstream.
    fn parse_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::OpenParen) => {}
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: '('",
                    Self::found(t.as_ref())
                )));
            }
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Identifier(v)) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Some(Token::CloseParen) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        Self::found(t.as_ref())
                    )));
                }
            }
        }
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h` (and `==`, `>`, `<`).
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        let requirements = Parser {
            tokens: lex(s),
            pos: 0,
        }
        .parse()?;
        Ok(LabelSelector::from_requirements(requirements))
    }
}
