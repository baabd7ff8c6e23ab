//! The `Messages` resource every daemon has: where job and daemon messages go.

use crate::ast::{Item, Resource};
use crate::error::{ConfigError, Location, Warning};
use crate::fields::Reader;

/// Directives a Messages resource may hold besides Name/Description.
const KNOWN: &[&str] = &[
    "mailcommand",
    "operatorcommand",
    "syslog",
    "mail",
    "mailonerror",
    "mailonsuccess",
    "file",
    "append",
    "stdout",
    "stderr",
    "director",
    "console",
    "operator",
    "catalog",
];

/// One destination line, e.g. `append = "/var/log/bacula.log" = all, !skipped`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDestination {
    /// Normalized keyword: `console`, `append`, `mail`, `director`, ...
    pub kind: String,
    /// The value exactly as tokens were written (`"/f" = all, !skipped`).
    pub raw: String,
    /// The target before the second `=` (file, address, director), if any.
    pub target: Option<String>,
    /// The message types after it (`all`, `!skipped`, ...).
    pub types: Vec<String>,
    /// Where the line is.
    pub at: Location,
}

/// A `Messages` resource.
#[derive(Clone, Debug)]
pub struct Messages {
    /// `Name`.
    pub name: String,
    /// Where it starts.
    pub at: Location,
    /// `mailcommand`.
    pub mail_command: Option<String>,
    /// `operatorcommand`.
    pub operator_command: Option<String>,
    /// Every destination line, in order.
    pub destinations: Vec<MessageDestination>,
}

impl Messages {
    pub(crate) fn from_resource(
        res: &Resource,
        warnings: &mut Vec<Warning>,
    ) -> Result<Self, ConfigError> {
        let r = Reader::new(res, "Messages");
        let name = r.name()?;
        let mail_command = r.string(&["mailcommand"])?;
        let operator_command = r.string(&["operatorcommand"])?;
        r.unknown(KNOWN, false, warnings)?;
        let mut destinations = Vec::new();
        for item in &res.items {
            let Item::Directive(d) = item else { continue };
            if !KNOWN.contains(&d.key.as_str())
                || matches!(d.key.as_str(), "mailcommand" | "operatorcommand")
            {
                continue;
            }
            let has_target = d.values.contains(&crate::ast::ValueToken::Equals);
            let mut target = None;
            let mut list_from = 0;
            if has_target {
                target = d.value().map(str::to_string);
                list_from = d
                    .values
                    .iter()
                    .position(|t| *t == crate::ast::ValueToken::Equals)
                    .map_or(0, |p| p + 1);
            }
            let tail = crate::ast::Directive {
                values: d.values[list_from..].to_vec(),
                ..d.clone()
            };
            destinations.push(MessageDestination {
                kind: d.key.clone(),
                raw: d.raw(),
                target,
                types: tail.list().into_iter().map(str::to_string).collect(),
                at: d.at.clone(),
            });
        }
        Ok(Messages {
            name,
            at: res.at.clone(),
            mail_command,
            operator_command,
            destinations,
        })
    }
}
