//! The generic tree every file parses into before typing: resources holding
//! directives and nested blocks, in file order, with their locations.
//!
//! Password directives hold only their [`Secret`]: the clear text is hashed
//! (or, for a catalog's database password, moved into a `Secret`) as soon as
//! the directive is read, so no value in this tree can leak a password.

use baculink_proto::Secret;

use crate::error::Location;

/// One value token of a directive, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueToken {
    /// Unquoted text.
    Word(String),
    /// A quoted string after escape processing.
    Quoted(String),
    /// A `=` after the first one (Messages: `append = "f" = all`).
    Equals,
    /// A `,` (lists).
    Comma,
}

impl ValueToken {
    /// The text of a word or quoted string.
    pub fn text(&self) -> Option<&str> {
        match self {
            ValueToken::Word(s) | ValueToken::Quoted(s) => Some(s),
            ValueToken::Equals | ValueToken::Comma => None,
        }
    }
}

/// `Keyword = value ...` up to the end of the line (or `;`).
#[derive(Clone, Debug)]
pub struct Directive {
    /// The keyword as written, words joined by one space (e.g. `TLS CA Certificate File`).
    pub keyword: String,
    /// The keyword normalized for matching: lowercase, no whitespace (`tlscacertificatefile`).
    pub key: String,
    /// Where the directive starts.
    pub at: Location,
    /// Every token after the `=`, up to the end of the directive (empty for passwords).
    pub values: Vec<ValueToken>,
    /// For password directives: the key (MD5 hex for `Password`, `FD Password`,
    /// `SD Password`; the clear value moved into a `Secret` for other `*password`
    /// directives such as a Catalog's `dbpassword`).
    pub secret: Option<Secret>,
}

impl Directive {
    /// The value: the first word or quoted string (later tokens are ignored, as
    /// in Bacula: `Password = two words` means `two`).
    pub fn value(&self) -> Option<&str> {
        self.values.first().and_then(ValueToken::text)
    }

    /// The words of a comma-separated list (the first token of each element).
    pub fn list(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut want = true;
        for t in &self.values {
            match t {
                ValueToken::Comma => want = true,
                ValueToken::Equals => {}
                ValueToken::Word(s) | ValueToken::Quoted(s) => {
                    if want {
                        out.push(s.as_str());
                        want = false;
                    }
                }
            }
        }
        out
    }

    /// Every word and quoted string, in order.
    pub fn words(&self) -> Vec<&str> {
        self.values.iter().filter_map(ValueToken::text).collect()
    }

    /// The value tokens as text, quoted strings re-quoted
    /// (`"/var/log/bacula.log" = all, !skipped`). `<redacted>` for passwords.
    pub fn raw(&self) -> String {
        if self.secret.is_some() {
            return "<redacted>".into();
        }
        let mut s = String::new();
        for t in &self.values {
            match t {
                ValueToken::Comma => s.push(','),
                ValueToken::Equals => {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push('=');
                }
                ValueToken::Word(w) => {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(w);
                }
                ValueToken::Quoted(w) => {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push('"');
                    for c in w.chars() {
                        if c == '"' || c == '\\' {
                            s.push('\\');
                        }
                        s.push(c);
                    }
                    s.push('"');
                }
            }
        }
        s
    }
}

/// A nested block: `Include { ... }`, `Options { ... }`, `RunScript { ... }`,
/// `DirAddresses = { ip = { ... } }`.
#[derive(Clone, Debug)]
pub struct Block {
    /// The keyword as written.
    pub keyword: String,
    /// Normalized keyword (lowercase, no whitespace).
    pub key: String,
    /// Where the block starts.
    pub at: Location,
    /// Its contents.
    pub items: Vec<Item>,
}

/// A directive or a nested block.
#[derive(Clone, Debug)]
pub enum Item {
    /// `Keyword = value`.
    Directive(Directive),
    /// `Keyword { ... }`.
    Block(Block),
}

/// Finders shared by resources and blocks.
pub trait Items {
    /// The items in file order.
    fn items(&self) -> &[Item];

    /// Every top-level directive with this normalized key, in order.
    fn directives<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Directive> + 'a {
        self.items().iter().filter_map(move |i| match i {
            Item::Directive(d) if d.key == key => Some(d),
            _ => None,
        })
    }

    /// The first directive with this normalized key.
    fn directive(&self, key: &str) -> Option<&Directive> {
        self.items().iter().find_map(|i| match i {
            Item::Directive(d) if d.key == key => Some(d),
            _ => None,
        })
    }

    /// The value of the first directive with this normalized key.
    fn value(&self, key: &str) -> Option<&str> {
        self.directive(key).and_then(Directive::value)
    }

    /// Every nested block with this normalized key.
    fn blocks<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.items().iter().filter_map(move |i| match i {
            Item::Block(b) if b.key == key => Some(b),
            _ => None,
        })
    }
}

impl Items for Block {
    fn items(&self) -> &[Item] {
        &self.items
    }
}

/// One resource, `Type { ... }`, untyped.
#[derive(Clone, Debug)]
pub struct Resource {
    /// The type as written (`Director`, `JobDefs`, ...).
    pub kind: String,
    /// Normalized type (lowercase, no whitespace).
    pub key: String,
    /// The value of its first `Name` directive ("" if none).
    pub name: String,
    /// Where the resource starts.
    pub at: Location,
    /// Its contents.
    pub items: Vec<Item>,
}

impl Items for Resource {
    fn items(&self) -> &[Item] {
        &self.items
    }
}

/// Normalizes a keyword for matching: drops whitespace, lowercases ASCII.
pub fn normalize_key(keyword: &str) -> String {
    keyword
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
