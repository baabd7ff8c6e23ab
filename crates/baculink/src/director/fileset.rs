//! A FileSet resource turned into the FD's `fileset` command
//! (protocol-jobs.md §5.3 step 3): `I`/`E` blocks, `O` option letters with
//! their pattern lines, `F` file items (no newline), `P` plugins, `N` ends.

use baculink_conf::ast::{Block, Items};
use baculink_conf::dir::FileSet;
use baculink_conf::value::parse_bool;

/// The packets of the `fileset` command, in order (the caller sends an EOD
/// after them). `Err` names a directive the Director cannot translate or a
/// `<file` / `|command` item that failed.
pub fn fileset_packets(fs: &FileSet) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let res = &fs.resource;
    let vss = res.value("enablevss").and_then(parse_bool).unwrap_or(true);
    let snap = res
        .value("enablesnapshot")
        .and_then(parse_bool)
        .unwrap_or(false);
    out.push(format!(
        "fileset{}{}\n",
        if vss { " vss=1" } else { "" },
        if snap { " snap=1" } else { "" }
    ));
    for b in res.blocks("include") {
        out.push("I\n".into());
        block(b, &mut out)?;
    }
    for b in res.blocks("exclude") {
        out.push("E\n".into());
        block(b, &mut out)?;
    }
    Ok(out)
}

fn block(b: &Block, out: &mut Vec<String>) -> Result<(), String> {
    for d in b.directives("excludedircontaining") {
        for v in d.words() {
            out.push(format!("Z {v}\n"));
        }
    }
    for o in b.blocks("options") {
        options(o, out)?;
    }
    for d in b.directives("file") {
        for v in d.words() {
            file_item(v, out)?;
        }
    }
    out.push("N\n".into());
    for d in b.directives("plugin") {
        for v in d.words() {
            out.push(format!("P {v}"));
        }
    }
    out.push("N\n".into());
    Ok(())
}

/// `F` lines for one `File =` value: plain paths go without newline;
/// `<file` and `|command` are expanded here, one `F` per produced line
/// (with its newline); `\<` / `\|` escape the first character.
fn file_item(v: &str, out: &mut Vec<String>) -> Result<(), String> {
    if let Some(path) = v.strip_prefix('<') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read FileSet file list \"{path}\": {e}"))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            out.push(format!("F {line}\n"));
        }
    } else if let Some(cmd) = v.strip_prefix('|') {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run FileSet command \"{cmd}\": {e}"))?;
        if !o.status.success() {
            return Err(format!("FileSet command \"{cmd}\" failed: {}", o.status));
        }
        for line in String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            out.push(format!("F {line}\n"));
        }
    } else {
        let v = v
            .strip_prefix("\\<")
            .map(|r| format!("<{r}"))
            .or_else(|| v.strip_prefix("\\|").map(|r| format!("|{r}")))
            .unwrap_or_else(|| v.to_string());
        out.push(format!("F {v}"));
    }
    Ok(())
}

/// One `Options { }` block: the `O` letters, then its pattern lines, then `N`.
fn options(o: &Block, out: &mut Vec<String>) -> Result<(), String> {
    let mut letters = String::new();
    let mut patterns = Vec::new();
    for d in o.directives_all() {
        let v = d.value().unwrap_or("");
        let yes = parse_bool(v).unwrap_or(false);
        let lower = v.to_ascii_lowercase();
        match d.key.as_str() {
            "signature" => letters.push_str(match lower.as_str() {
                "md5" => "M",
                "sha1" => "S",
                "sha256" => "S2",
                "sha512" => "S3",
                _ => return Err(format!("unknown signature \"{v}\"")),
            }),
            "compression" => {
                if lower == "lzo" {
                    letters.push_str("Zo");
                } else if let Some(level) = lower.strip_prefix("gzip") {
                    let level = if level.is_empty() { "6" } else { level };
                    letters.push('Z');
                    letters.push_str(level);
                } else {
                    return Err(format!("unknown compression \"{v}\""));
                }
            }
            "onefs" if !yes => letters.push('f'),
            "recurse" if !yes => letters.push('h'),
            "sparse" if yes => letters.push('s'),
            "hardlinks" if !yes => letters.push('H'),
            "replace" => letters.push(match lower.as_str() {
                "always" => 'a',
                "ifnewer" => 'w',
                "ifolder" => 'o',
                "never" => 'n',
                _ => return Err(format!("unknown replace \"{v}\"")),
            }),
            "readfifo" if yes => letters.push('r'),
            "portable" if yes => letters.push('p'),
            "mtimeonly" if yes => letters.push('m'),
            "keepatime" if yes => letters.push('k'),
            "noatime" if yes => letters.push('K'),
            "exclude" if yes => letters.push('e'),
            "aclsupport" if yes => letters.push('A'),
            "xattrsupport" if yes => letters.push('X'),
            "ignorecase" if yes => letters.push('i'),
            "hfsplussupport" if yes => letters.push('R'),
            "checkfilechanges" if yes => letters.push('c'),
            "honornodumpflag" if yes => letters.push('N'),
            "verify" => letters.push_str(&format!("V{v}:")),
            "accurate" => letters.push_str(&format!("C{v}:")),
            "basejob" => letters.push_str(&format!("J{v}:")),
            "strippath" => letters.push_str(&format!("P{v}:")),
            "wild" => patterns.push(format!("W {v}\n")),
            "wilddir" => patterns.push(format!("WD {v}\n")),
            "wildfile" => patterns.push(format!("WF {v}\n")),
            "regex" => patterns.push(format!("R {v}\n")),
            "regexdir" => patterns.push(format!("RD {v}\n")),
            "regexfile" => patterns.push(format!("RF {v}\n")),
            "base" => patterns.push(format!("B {v}\n")),
            "fstype" => patterns.push(format!("X {v}\n")),
            "drivetype" => patterns.push(format!("XD {v}\n")),
            "plugin" => patterns.push(format!("G {v}\n")),
            "reader" => patterns.push(format!("D {v}\n")),
            "writer" => patterns.push(format!("T {v}\n")),
            // Yes/no options left at their default, or ones that send nothing.
            _ => {}
        }
        if d.key == "enhancedwild" && yes {
            letters.push('W');
        }
    }
    out.push(format!("O {letters}\n"));
    out.extend(patterns);
    out.push("N\n".into());
    Ok(())
}

/// Every directive of a block in order (lets `options` see repeats).
trait AllDirectives {
    fn directives_all(&self) -> Vec<&baculink_conf::ast::Directive>;
}

impl AllDirectives for Block {
    fn directives_all(&self) -> Vec<&baculink_conf::ast::Directive> {
        self.items
            .iter()
            .filter_map(|i| match i {
                baculink_conf::ast::Item::Directive(d) => Some(d),
                baculink_conf::ast::Item::Block(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baculink_conf::DirectorConfig;

    fn conf(fileset: &str) -> DirectorConfig {
        let text = format!("Director {{ Name = d; Password = p }}\n{fileset}\n");
        DirectorConfig::parse_str("t.conf", &text).unwrap().0
    }

    #[test]
    fn captured_md5_fileset() {
        let c = conf("FileSet { Name = S; Include { Options { signature = MD5 } File = /data } }");
        let p = fileset_packets(&c.filesets[0]).unwrap();
        assert_eq!(
            p,
            vec![
                "fileset vss=1\n",
                "I\n",
                "O M\n",
                "N\n",
                "F /data",
                "N\n",
                "N\n"
            ]
        );
    }

    #[test]
    fn no_options_and_exclude_and_patterns() {
        let c = conf(
            "FileSet { Name = S; Enable VSS = no\n Include { File = /a; File = \"/b c\"\n \
             ExcludeDirContaining = .nobackup\n Options { compression = GZIP9; onefs = no; \
             wildfile = \"*.o\"; exclude = yes } }\n Exclude { File = /a/tmp } }",
        );
        let p = fileset_packets(&c.filesets[0]).unwrap();
        assert_eq!(
            p,
            vec![
                "fileset\n",
                "I\n",
                "Z .nobackup\n",
                "O Z9fe\n",
                "WF *.o\n",
                "N\n",
                "F /a",
                "F /b c",
                "N\n",
                "N\n",
                "E\n",
                "F /a/tmp",
                "N\n",
                "N\n"
            ]
        );
    }

    #[test]
    fn file_list_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list");
        std::fs::write(&list, "/x\n\n/y\n").unwrap();
        let c = conf(&format!(
            "FileSet {{ Name = S; Include {{ File = \"<{}\" }} }}",
            list.display()
        ));
        let p = fileset_packets(&c.filesets[0]).unwrap();
        assert_eq!(p[2..4], ["F /x\n".to_string(), "F /y\n".to_string()]);
    }
}
