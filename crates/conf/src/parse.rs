//! Parser: tokens into the generic tree of [`Resource`]s (protocol.md §8.1).

use std::path::Path;

use baculink_proto::Secret;
use zeroize::Zeroize;

use crate::ast::{Block, Directive, Item, Resource, ValueToken};
use crate::error::{ConfigError, Location};
use crate::lexer::{Lexer, Tok, Token};

/// Deepest block nesting accepted inside a resource.
const MAX_BLOCK_DEPTH: usize = 16;

/// Parses the file at `path` (and what it includes).
pub fn parse_file(path: &Path) -> Result<Vec<Resource>, ConfigError> {
    parse(Lexer::open(path)?)
}

/// Parses `text`, naming it `name` in messages.
pub fn parse_text(name: &str, text: &str) -> Result<Vec<Resource>, ConfigError> {
    parse(Lexer::from_text(name, text)?)
}

fn parse(mut lx: Lexer) -> Result<Vec<Resource>, ConfigError> {
    let mut out = Vec::new();
    loop {
        let t = lx.next()?;
        match t.tok {
            Tok::Eof => return Ok(out),
            Tok::Eol => {}
            Tok::Word(w) => {
                let (words, next) = keyword_words(&mut lx, w)?;
                let kind = words.join(" ");
                check_keyword(&kind, &t.at, false)?;
                let next = skip_eols(&mut lx, next)?;
                if next.tok != Tok::LBrace {
                    return Err(ConfigError::syntax(
                        &next.at,
                        format!(
                            "expected \"{{\" after resource type \"{kind}\", got {}",
                            describe(&next.tok)
                        ),
                    ));
                }
                let items = parse_body(&mut lx, &t.at, &kind, 0)?;
                let name = items
                    .iter()
                    .find_map(|i| match i {
                        Item::Directive(d) if d.key == "name" => d.value().map(str::to_string),
                        _ => None,
                    })
                    .unwrap_or_default();
                out.push(Resource {
                    key: crate::ast::normalize_key(&kind),
                    kind,
                    name,
                    at: t.at,
                    items,
                });
            }
            other => {
                return Err(ConfigError::syntax(
                    &t.at,
                    format!("expected a resource type, got {}", describe(&other)),
                ))
            }
        }
    }
}

/// Parses directives and blocks up to the closing `}` of a block opened at `open`.
fn parse_body(
    lx: &mut Lexer,
    open: &Location,
    what: &str,
    depth: usize,
) -> Result<Vec<Item>, ConfigError> {
    if depth > MAX_BLOCK_DEPTH {
        return Err(ConfigError::syntax(open, "blocks nested too deeply"));
    }
    let mut items = Vec::new();
    loop {
        let t = lx.next()?;
        match t.tok {
            Tok::Eol => {}
            Tok::RBrace => return Ok(items),
            Tok::Eof => {
                return Err(ConfigError::syntax(
                    &t.at,
                    format!("end of file inside \"{what}\" that starts at {open} (missing \"}}\")"),
                ))
            }
            Tok::Word(w) => {
                let (words, next) = keyword_words(lx, w)?;
                let keyword = words.join(" ");
                check_keyword(&keyword, &t.at, depth > 0)?;
                let key = crate::ast::normalize_key(&keyword);
                let next = match next.tok {
                    Tok::Equals => {
                        let n = lx.next()?;
                        if n.tok == Tok::LBrace {
                            n
                        } else {
                            lx.unget(n);
                            let values = read_values(lx, &keyword)?;
                            items.push(Item::Directive(make_directive(keyword, key, t.at, values)));
                            continue;
                        }
                    }
                    _ => next,
                };
                if next.tok == Tok::LBrace {
                    let inner = parse_body(lx, &t.at, &keyword, depth + 1)?;
                    items.push(Item::Block(Block {
                        keyword,
                        key,
                        at: t.at,
                        items: inner,
                    }));
                } else {
                    return Err(ConfigError::value(
                        &t.at,
                        &keyword,
                        format!(
                            "expected \"=\" after the keyword, got {}",
                            describe(&next.tok)
                        ),
                    ));
                }
            }
            other => {
                return Err(ConfigError::syntax(
                    &t.at,
                    format!(
                        "unexpected {} in \"{what}\" resource definition",
                        describe(&other)
                    ),
                ))
            }
        }
    }
}

/// Collects the words of a keyword (whitespace inside keywords is ignored);
/// returns them and the token that ended the keyword.
fn keyword_words(lx: &mut Lexer, first: String) -> Result<(Vec<String>, Token), ConfigError> {
    let mut words = vec![first];
    loop {
        let t = lx.next()?;
        match t.tok {
            Tok::Word(w) => words.push(w),
            _ => return Ok((words, t)),
        }
    }
}

/// A keyword is letters only (spaces between words allowed), as in Bacula;
/// inside nested blocks digits are allowed too (`ipv4 = { ... }`).
fn check_keyword(keyword: &str, at: &Location, digits: bool) -> Result<(), ConfigError> {
    if keyword
        .chars()
        .all(|c| c.is_ascii_alphabetic() || c == ' ' || (digits && c.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(ConfigError::syntax(
            at,
            format!("unexpected token \"{keyword}\": keywords are made of letters only"),
        ))
    }
}

fn skip_eols(lx: &mut Lexer, mut t: Token) -> Result<Token, ConfigError> {
    while t.tok == Tok::Eol {
        t = lx.next()?;
    }
    Ok(t)
}

/// Reads value tokens to the end of the directive. A `}` ends the directive
/// too and is left for the enclosing block.
fn read_values(lx: &mut Lexer, keyword: &str) -> Result<Vec<ValueToken>, ConfigError> {
    let mut values = Vec::new();
    loop {
        let t = lx.next()?;
        match t.tok {
            Tok::Eol | Tok::Eof => {
                if t.tok == Tok::Eof {
                    lx.unget(t);
                }
                return Ok(values);
            }
            Tok::RBrace => {
                lx.unget(t);
                return Ok(values);
            }
            Tok::Word(w) => values.push(ValueToken::Word(w)),
            Tok::Quoted(w) => values.push(ValueToken::Quoted(w)),
            Tok::Equals => values.push(ValueToken::Equals),
            Tok::Comma => values.push(ValueToken::Comma),
            Tok::LBrace => {
                return Err(ConfigError::value(
                    &t.at,
                    keyword,
                    "unexpected \"{\" in the value",
                ))
            }
        }
    }
}

/// Builds a directive; a password's value becomes a `Secret` and its clear
/// text is wiped.
fn make_directive(
    keyword: String,
    key: String,
    at: Location,
    mut values: Vec<ValueToken>,
) -> Directive {
    let mut secret = None;
    if key.contains("password") {
        if let Some(text) = values.first().and_then(ValueToken::text) {
            secret = Some(match key.as_str() {
                "password" | "fdpassword" | "sdpassword" => Secret::from_password(text),
                _ => Secret::new(text.as_bytes()),
            });
        }
        for v in &mut values {
            if let ValueToken::Word(s) | ValueToken::Quoted(s) = v {
                s.zeroize();
            }
        }
        values.clear();
    }
    Directive {
        keyword,
        key,
        at,
        values,
        secret,
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("\"{w}\""),
        Tok::Quoted(_) => "a quoted string".into(),
        Tok::Equals => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::LBrace => "\"{\"".into(),
        Tok::RBrace => "\"}\"".into(),
        Tok::Eol => "end of line".into(),
        Tok::Eof => "end of file".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Items;

    fn one(text: &str) -> Resource {
        let mut v = parse_text("t.conf", text).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn keywords_ignore_case_and_spaces() {
        let r = one("director {\n  TLS CA Certificate File = /a\n TlsCaCertificateDir=/b\n tls  key = /c\n}\n");
        assert_eq!(r.key, "director");
        assert_eq!(r.kind, "director");
        assert_eq!(r.value("tlscacertificatefile"), Some("/a"));
        assert_eq!(r.value("tlscacertificatedir"), Some("/b"));
        let d = r.directive("tlskey").unwrap();
        assert_eq!(d.keyword, "tls key");
        assert_eq!(d.at.line, 4);
    }

    #[test]
    fn semicolons_end_directives_and_extra_tokens_are_kept_apart() {
        let r = one("Catalog { Name = C; dbname = \"b\"; dbuser = \"\"; Where = two words\n}");
        assert_eq!(r.name, "C");
        assert_eq!(r.value("dbname"), Some("b"));
        assert_eq!(r.value("dbuser"), Some(""));
        assert_eq!(r.value("where"), Some("two"));
        assert_eq!(r.directive("where").unwrap().words(), vec!["two", "words"]);
    }

    #[test]
    fn closing_brace_ends_a_value() {
        let r = one("FileSet { Name = x; Include { Options { signature = MD5 } File = /a }}");
        let inc = r.blocks("include").next().unwrap();
        let opt = inc.blocks("options").next().unwrap();
        assert_eq!(opt.value("signature"), Some("MD5"));
        assert_eq!(inc.value("file"), Some("/a"));
    }

    #[test]
    fn messages_lines_keep_every_token() {
        let r = one("Messages {\n Name = M\n append = \"/l og\" = all, !skipped\n}");
        let d = r.directive("append").unwrap();
        assert_eq!(d.raw(), "\"/l og\" = all, !skipped");
        assert_eq!(d.words(), vec!["/l og", "all", "!skipped"]);
    }

    #[test]
    fn lists() {
        let r = one("Console { CommandACL = status, .status ; x = \"a b\", c d, e }");
        assert_eq!(
            r.directive("commandacl").unwrap().list(),
            vec!["status", ".status"]
        );
        assert_eq!(r.directive("x").unwrap().list(), vec!["a b", "c", "e"]);
    }

    #[test]
    fn blocks_with_equals() {
        let r = one("Director { DirAddresses = { ip = { addr = 127.0.0.1; port = 1 }\n ipv6 = { addr = ::1 } } }");
        let b = r.blocks("diraddresses").next().unwrap();
        let ip = b.blocks("ip").next().unwrap();
        assert_eq!(ip.value("addr"), Some("127.0.0.1"));
        assert_eq!(ip.value("port"), Some("1"));
        assert_eq!(b.blocks("ipv6").next().unwrap().value("addr"), Some("::1"));
    }

    #[test]
    fn passwords_are_hashed_and_wiped() {
        let r = one("Client { Password = \"pw one\"\n Catalog { } dbpassword = xyz\n}");
        let d = r.directive("password").unwrap();
        assert!(d.values.is_empty());
        assert_eq!(
            d.secret.as_ref().unwrap().expose(),
            Secret::from_password("pw one").expose()
        );
        assert_eq!(d.raw(), "<redacted>");
        let db = r.directive("dbpassword").unwrap();
        assert_eq!(db.secret.as_ref().unwrap().expose(), b"xyz");
        assert!(!format!("{r:?}").contains("xyz"));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = parse_text("a.conf", "Director {\n Name = x\n Foo2 = 1\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.conf:3: unexpected token \"Foo2\": keywords are made of letters only"
        );
        let e = parse_text("a.conf", "Director {\n Name\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.conf:2: directive \"Name\": expected \"=\" after the keyword, got end of line"
        );
        let e = parse_text("a.conf", "Director {\n Name = x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.conf:3: end of file inside \"Director\" that starts at a.conf:1 (missing \"}\")"
        );
        let e = parse_text("a.conf", "Director \n\n x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.conf:3: expected \"{\" after resource type \"Director\", got \"x\""
        );
        let e = parse_text("a.conf", "} ").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.conf:1: expected a resource type, got \"}\""
        );
        let e = parse_text("a.conf", "Director { Name = { }").unwrap_err();
        assert!(e.to_string().starts_with("a.conf:1:"), "{e}");
    }

    #[test]
    fn resource_type_may_be_on_its_own_line() {
        let r = one("JobDefs\n{\n Name = d\n}\n");
        assert_eq!((r.key.as_str(), r.name.as_str()), ("jobdefs", "d"));
    }
}
