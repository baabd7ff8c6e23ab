//! `baculink console`: a bconsole replacement. Logs in to a Director from a
//! bconsole.conf (default or named console, clear, TLS or TLS-PSK), then sends
//! command lines and prints the replies (protocol-jobs.md §2).
//!
//! On a terminal (and without `-n`) commands are read with line editing and
//! history; otherwise from stdin line by line, each echoed as bconsole does.
//!
//! `wait [jobid=N]` and `run ... wait` show the job's progress (files,
//! bytes, rate) while waiting: a progress line drawn with `indicatif` when
//! stdout is a terminal, plain progress lines when it is not. The data comes
//! from polling the Director's `.jobprogress`; against a Director without
//! it (a real Bacula one) `wait` is sent as is.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use baculink_conf::ConsoleConfig;
use baculink_net::{BSock, NetError, Peer};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::negotiate::{Dialect, Mode};
use clap::Args;
use tokio::sync::mpsc;

use crate::login::FailureClass;
use crate::probe::{console_target, Target};

/// `baculink console` arguments (bconsole's).
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// bconsole.conf.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// No line editing: read commands from stdin.
    #[arg(short = 'n')]
    pub no_conio: bool,
    /// The Director resource to use.
    #[arg(short = 'D')]
    pub director: Option<String>,
    /// Debug level.
    #[arg(short = 'd', default_value_t = 0)]
    pub debug: u32,
    /// Check the configuration and exit (0 = good, 1 = errors).
    #[arg(short = 't')]
    pub test: bool,
    /// Login timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// How bconsole retries a refused TCP connection: every 5 s for at most 15 s.
const CONNECT_RETRY: Duration = Duration::from_secs(5);
const CONNECT_ATTEMPTS: u32 = 3;
/// Ctrl-C presses while one reply is awaited before the console gives up on it.
const BREAKS_BEFORE_ABORT: u32 = 3;

/// Why a session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The connection failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The Director sent TERMINATE.
    #[error("the Director terminated the conversation")]
    Terminated,
    /// Reading commands or writing output failed.
    #[error("console I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The user pressed Ctrl-C repeatedly while a reply was awaited.
    #[error("gave up waiting for the Director's reply after {0} interrupts")]
    Aborted(u32),
}

/// Runs the console; exit 0 after `quit` or end of input, the login failure
/// class's code when the login fails, 1 for anything else.
pub async fn main(args: ConsoleArgs) -> ExitCode {
    let interactive = std::io::stdin().is_terminal() && !args.no_conio;
    if let Err(e) = crate::login::require_fips(&args.config) {
        eprintln!("baculink console: {e}");
        return ExitCode::from(1);
    }
    let (conf, warnings) = match ConsoleConfig::load(&args.config) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("baculink console: {e}");
            return ExitCode::from(1);
        }
    };
    baculink_conf::log_warnings(&warnings);
    if let Err(e) = conf.validate_tls() {
        eprintln!("baculink console: {e}");
        return ExitCode::from(1);
    }
    if args.test {
        return ExitCode::SUCCESS;
    }
    let director = match args.director.clone() {
        Some(d) => Some(d),
        None if interactive && conf.directors.len() > 1 => match choose_director(&conf) {
            Some(d) => Some(d),
            None => return ExitCode::from(1),
        },
        None => None,
    };
    let target = match console_target(&conf, director.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("baculink console: {e}");
            return ExitCode::from(1);
        }
    };
    println!("Connecting to Director {}:{}", target.host, target.port);
    let (mut sock, peer) = match connect(&target, Duration::from_secs(args.timeout)).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(line) = &peer.established.final_line {
        println!("{}", line.trim_end());
    }
    println!("{}", tls_line(&peer));
    println!("Enter a period to cancel a command.");
    let _ = std::io::stdout().flush();

    let breaks = if interactive {
        Breaks::from_ctrl_c()
    } else {
        Breaks::none()
    };
    let progress = if std::io::stdout().is_terminal() {
        ProgressMode::Bar
    } else {
        ProgressMode::Lines
    };
    let result = if interactive {
        match Terminal::new() {
            Ok(t) => run(&mut sock, t, std::io::stdout(), breaks, progress).await,
            Err(e) => {
                eprintln!("baculink console: cannot set up line editing: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        run(
            &mut sock,
            Piped::new(std::io::stdin().lock(), std::io::stdout()),
            std::io::stdout(),
            breaks,
            progress,
        )
        .await
    };
    sock.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("baculink console: {e}");
            ExitCode::from(1)
        }
    }
}

/// Lists the Directors and asks for one on the terminal, as bconsole does.
fn choose_director(conf: &ConsoleConfig) -> Option<String> {
    println!("Available Directors:");
    for (i, d) in conf.directors.iter().enumerate() {
        println!(
            "{:2}:  {} at {}:{}",
            i + 1,
            d.name,
            d.address.as_deref().unwrap_or("localhost"),
            d.port
        );
    }
    loop {
        print!("Select Director by entering a number: ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match line.trim().parse::<usize>() {
            Ok(n) if (1..=conf.directors.len()).contains(&n) => {
                return Some(conf.directors[n - 1].name.clone())
            }
            _ => println!(
                "You must enter a number between 1 and {}",
                conf.directors.len()
            ),
        }
    }
}

/// Logs in (13.x dialect Hello; TLS or TLS-PSK per the resource), retrying a
/// refused TCP connection as bconsole does. Errors are reported here.
async fn connect(target: &Target, timeout: Duration) -> Result<(BSock, Peer), ExitCode> {
    let setup = match target.setup(Dialect::V13, timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("baculink console: TLS settings of the Director resource: {e}");
            return Err(ExitCode::from(FailureClass::Other.exit_code()));
        }
    };
    let mut attempt = 1;
    loop {
        match baculink_net::connect(&target.host, target.port, &setup).await {
            Ok(x) => return Ok(x),
            Err(baculink_net::LoginError::Connect { addr, source })
                if attempt < CONNECT_ATTEMPTS =>
            {
                tracing::info!("cannot connect to {addr}: {source}; retrying");
                attempt += 1;
                tokio::time::sleep(CONNECT_RETRY).await;
            }
            Err(e) => {
                let class = FailureClass::of(&e);
                eprintln!("baculink console: {}: {e}", class.headline());
                return Err(ExitCode::from(class.exit_code()));
            }
        }
    }
}

/// One line describing how the session is protected.
fn tls_line(peer: &Peer) -> String {
    let describe = |f: &baculink_tls::SessionFacts| {
        let kind = match f.mode {
            Mode::Psk => "TLS-PSK",
            _ => "TLS",
        };
        let mut s = format!("{kind} {} {}", f.version, f.cipher);
        if let Some(subject) = &f.peer_subject {
            s.push_str(&format!(", peer certificate {subject}"));
        }
        s
    };
    match (&peer.tls, &peer.login_tls) {
        (Some(f), _) => format!("Connected with {}", describe(f)),
        (None, Some(f)) => format!(
            "Logged in with {} (TLS Authenticate: the session continues in clear text)",
            describe(f)
        ),
        (None, None) => "Connected in clear text (no TLS)".to_string(),
    }
}

/// The packet transport a session runs over: a [`BSock`], or a scripted peer in tests.
pub(crate) trait Wire {
    async fn recv(&mut self) -> Result<Packet, NetError>;
    async fn send(&mut self, packet: Packet) -> Result<(), NetError>;
}

impl Wire for BSock {
    async fn recv(&mut self) -> Result<Packet, NetError> {
        BSock::recv(self).await
    }
    async fn send(&mut self, packet: Packet) -> Result<(), NetError> {
        BSock::send(self, &packet).await
    }
}

/// Which prompt a line is read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PromptKind {
    /// The `*` prompt: a command.
    Main,
    /// A Director's question (SUB_PROMPT or API TEXT_INPUT); `prompt` is the
    /// question text already printed on the current line.
    Sub,
}

/// Where command lines and answers come from. Blocking.
pub(crate) trait Input {
    /// One line without its end-of-line; `None` at end of input.
    fn read_line(&mut self, kind: PromptKind, prompt: &str) -> std::io::Result<Option<String>>;
}

/// Interactive input with line editing and history (`~/.baculink_history`).
struct Terminal {
    editor: rustyline::DefaultEditor,
    history: Option<PathBuf>,
}

impl Terminal {
    fn new() -> Result<Terminal, rustyline::error::ReadlineError> {
        let mut editor = rustyline::DefaultEditor::new()?;
        let history = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".baculink_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        Ok(Terminal { editor, history })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(h) = &self.history {
            let _ = self.editor.save_history(h);
        }
    }
}

impl Input for Terminal {
    fn read_line(&mut self, kind: PromptKind, prompt: &str) -> std::io::Result<Option<String>> {
        use rustyline::error::ReadlineError;
        let shown = match kind {
            PromptKind::Main => "*".to_string(),
            PromptKind::Sub => {
                // The question is on screen already: redraw it as the editor's prompt.
                if !prompt.is_empty() {
                    print!("\r\x1b[K");
                    std::io::stdout().flush()?;
                }
                prompt.to_string()
            }
        };
        loop {
            match self.editor.readline(&shown) {
                Ok(line) => {
                    if kind == PromptKind::Main && !line.trim().is_empty() {
                        let _ = self.editor.add_history_entry(line.as_str());
                    }
                    return Ok(Some(line));
                }
                // Ctrl-C at the prompt: a fresh prompt; at a question: cancel it.
                Err(ReadlineError::Interrupted) if kind == PromptKind::Main => continue,
                Err(ReadlineError::Interrupted) => return Ok(Some(".".into())),
                Err(ReadlineError::Eof) => return Ok(None),
                Err(ReadlineError::Io(e)) => return Err(e),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
    }
}

/// Non-interactive input: lines from a reader, each echoed to the output
/// (bconsole -n does the same, so a transcript shows what was sent).
pub(crate) struct Piped<R, W> {
    reader: R,
    echo: W,
}

impl<R: BufRead, W: Write> Piped<R, W> {
    pub(crate) fn new(reader: R, echo: W) -> Self {
        Piped { reader, echo }
    }
}

impl<R: BufRead, W: Write> Input for Piped<R, W> {
    fn read_line(&mut self, _kind: PromptKind, _prompt: &str) -> std::io::Result<Option<String>> {
        let mut buf = Vec::new();
        if self.reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        writeln!(self.echo, "{line}")?;
        self.echo.flush()?;
        Ok(Some(line))
    }
}

/// Ctrl-C presses (interactive only), turned into BNET_BREAK while a reply is awaited.
pub(crate) struct Breaks(Option<mpsc::UnboundedReceiver<()>>);

impl Breaks {
    /// No interrupts (piped input: Ctrl-C keeps its default effect).
    pub(crate) fn none() -> Breaks {
        Breaks(None)
    }

    fn from_ctrl_c() -> Breaks {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
        Breaks(Some(rx))
    }

    /// Forgets presses made while no reply was awaited.
    fn drain(&mut self) {
        if let Some(rx) = &mut self.0 {
            while rx.try_recv().is_ok() {}
        }
    }

    /// The next press; pending forever without a source.
    async fn next(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                if rx.recv().await.is_none() {
                    std::future::pending::<()>().await
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Runs a blocking read without stalling the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What a local `@` command asks for.
#[derive(Debug, PartialEq)]
enum Local {
    Continue,
    Exit,
}

/// Handles a line starting with `@` (never sent to the Director).
async fn local_command<O: Write>(line: &str, out: &mut O) -> std::io::Result<Local> {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("@");
    if cmd.starts_with("@#") {
        return Ok(Local::Continue);
    }
    match cmd.to_ascii_lowercase().as_str() {
        "@exit" | "@quit" => Ok(Local::Exit),
        "@sleep" => {
            match words.next().map(str::parse::<f64>) {
                Some(Ok(secs)) if secs.is_finite() && secs >= 0.0 => {
                    tokio::time::sleep(Duration::from_secs_f64(secs.min(86_400.0))).await
                }
                _ => writeln!(out, "@sleep: needs a number of seconds")?,
            }
            Ok(Local::Continue)
        }
        _ => {
            writeln!(out, "{cmd}: is an invalid command")?;
            Ok(Local::Continue)
        }
    }
}

/// Whether sending this line ends the session (`quit`, `exit`, `.quit`, `.exit`).
fn is_quit(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    ["quit", "exit", ".quit", ".exit"]
        .iter()
        .any(|q| first.eq_ignore_ascii_case(q))
}

/// The command loop: read a line, send it, print the reply; until quit or end of input.
pub(crate) async fn run<W: Wire, I: Input, O: Write>(
    wire: &mut W,
    mut input: I,
    mut out: O,
    mut breaks: Breaks,
    progress: ProgressMode,
) -> Result<(), ConsoleError> {
    let mut api = false;
    while let Some(line) = blocking(|| input.read_line(PromptKind::Main, "*"))? {
        let cmd = line.trim();
        if cmd.is_empty() {
            continue;
        }
        if cmd.starts_with('@') {
            if local_command(cmd, &mut out).await? == Local::Exit {
                break;
            }
            out.flush()?;
            continue;
        }
        breaks.drain();
        let first = cmd.split_whitespace().next().unwrap_or("");
        if first == ".api" {
            api = cmd.split_whitespace().nth(1).unwrap_or("1") != "0";
        }
        // Progress while waiting (normal mode only: API clients parse replies).
        // Then the Director's own `wait` gives the final status.
        if !api && first.eq_ignore_ascii_case("wait") {
            show_progress(wire, &mut out, &mut breaks, progress, job_id_arg(cmd)).await?;
        }
        let (cmd, then_wait) = match cmd.strip_suffix(" wait") {
            Some(run) if !api && first.eq_ignore_ascii_case("run") => (run.trim_end(), true),
            _ => (cmd, false),
        };
        tracing::debug!("sending command {cmd:?}");
        wire.send(Packet::data(cmd)).await?;
        if is_quit(cmd) {
            break;
        }
        let mut tee = Tee {
            out: &mut out,
            seen: Vec::new(),
        };
        let end = read_reply(wire, &mut input, &mut tee, &mut breaks).await?;
        let seen = String::from_utf8_lossy(&tee.seen).into_owned();
        if end == ReplyEnd::InputClosed {
            break;
        }
        if then_wait {
            if let Some(id) = queued_job_id(&seen) {
                show_progress(wire, &mut out, &mut breaks, progress, Some(id)).await?;
                let w = format!("wait jobid={id}");
                writeln!(out, "{w}")?;
                wire.send(Packet::data(&w)).await?;
                if read_reply(wire, &mut input, &mut out, &mut breaks).await?
                    == ReplyEnd::InputClosed
                {
                    break;
                }
            }
        }
    }
    let _ = wire.send(Packet::Signal(Signal::Terminate)).await;
    Ok(())
}

/// How a command's reply ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplyEnd {
    /// The Director is ready for the next command (EOD, or MAIN_PROMPT in API mode).
    Prompt,
    /// Input ended while the Director asked a question (it was cancelled).
    InputClosed,
}

/// Prints one command's reply up to its end, answering the Director's
/// questions from `input` (protocol-jobs.md §2.2, §2.3, §2.6).
pub(crate) async fn read_reply<W: Wire, I: Input, O: Write>(
    wire: &mut W,
    input: &mut I,
    out: &mut O,
    breaks: &mut Breaks,
) -> Result<ReplyEnd, ConsoleError> {
    // The text printed since the last newline: the question at a sub-prompt.
    let mut tail: Vec<u8> = Vec::new();
    // API mode: TEXT_INPUT announces that the next data packet is a question.
    let mut text_input = false;
    let mut input_closed = false;
    let mut interrupts = 0;
    loop {
        let packet = tokio::select! {
            p = wire.recv() => p,
            _ = breaks.next() => {
                interrupts += 1;
                if interrupts >= BREAKS_BEFORE_ABORT {
                    return Err(ConsoleError::Aborted(interrupts));
                }
                tracing::debug!("Ctrl-C: sending BREAK");
                wire.send(Packet::Signal(Signal::Break)).await?;
                continue;
            }
        };
        let packet = match packet {
            Ok(p) => p,
            Err(NetError::Eof(_)) => return Err(ConsoleError::Terminated),
            Err(e) => return Err(e.into()),
        };
        let ask = match packet {
            Packet::Data(d) => {
                let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                let text = &d[..end];
                out.write_all(text)?;
                out.flush()?;
                match text.iter().rposition(|&b| b == b'\n') {
                    Some(i) => tail = text[i + 1..].to_vec(),
                    None => tail.extend_from_slice(text),
                }
                std::mem::take(&mut text_input)
            }
            Packet::Signal(s) => {
                tracing::trace!("signal {}", s.name());
                match s {
                    Signal::Eod | Signal::EodPoll | Signal::MainPrompt => {
                        return Ok(if input_closed {
                            ReplyEnd::InputClosed
                        } else {
                            ReplyEnd::Prompt
                        });
                    }
                    Signal::SubPrompt => true,
                    Signal::TextInput => {
                        text_input = true;
                        false
                    }
                    Signal::Terminate | Signal::ExtTerminate => {
                        return Err(ConsoleError::Terminated)
                    }
                    // Heartbeats, polls and the API mode's markers need no action.
                    _ => false,
                }
            }
        };
        if ask {
            let question = String::from_utf8_lossy(&tail).into_owned();
            let answer = match blocking(|| input.read_line(PromptKind::Sub, &question))? {
                Some(a) => a,
                None => {
                    input_closed = true;
                    ".".to_string()
                }
            };
            tail.clear();
            wire.send(Packet::data(answer.trim_end_matches(['\r', '\n'])))
                .await?;
        }
    }
}

/// How `wait` shows progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// A live line drawn with `indicatif` (stdout is a terminal).
    Bar,
    /// A plain line every few seconds (stdout is a file or pipe).
    Lines,
}

/// Copies what is written to the console output and keeps it.
struct Tee<'a, O: Write> {
    out: &'a mut O,
    seen: Vec<u8>,
}

impl<O: Write> Write for Tee<'_, O> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `jobid=N` of a command line.
fn job_id_arg(cmd: &str) -> Option<u32> {
    cmd.split_whitespace()
        .find_map(|w| w.strip_prefix("jobid="))
        .and_then(|v| v.parse().ok())
}

/// The JobId of a `Job queued. JobId=N` reply.
fn queued_job_id(reply: &str) -> Option<u32> {
    reply
        .lines()
        .find_map(|l| l.trim().strip_prefix("Job queued. JobId="))
        .and_then(|v| v.trim().parse().ok())
}

/// One job in a `.jobprogress` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JobProgress {
    pub id: u32,
    pub name: String,
    pub status: String,
    pub files: u64,
    pub bytes: u64,
    pub rate: u64,
    pub elapsed: u64,
    pub running: bool,
}

/// Parses `.jobprogress` key=value blocks; `None` if the Director does not
/// know the command.
pub(crate) fn parse_progress(text: &str) -> Option<Vec<JobProgress>> {
    if !text.contains("Running=") {
        return None;
    }
    let mut jobs = Vec::new();
    for block in text.split("\n\n") {
        let mut j = JobProgress::default();
        let mut has_id = false;
        for line in block.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let n = || v.trim().parse::<u64>().unwrap_or(0);
            match k {
                "JobId" => {
                    j.id = n() as u32;
                    has_id = true;
                }
                "Name" => j.name = v.to_string(),
                "JobStatus" => j.status = v.to_string(),
                "JobFiles" => j.files = n(),
                "JobBytes" => j.bytes = n(),
                "Rate" => j.rate = n(),
                "Elapsed" => j.elapsed = n(),
                "Running" => j.running = v.trim() == "1",
                _ => {}
            }
        }
        if has_id {
            jobs.push(j);
        }
    }
    Some(jobs)
}

/// `1059220155` -> `1.1 GB`.
fn human(v: u64) -> String {
    const U: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut f = v as f64;
    let mut i = 0;
    while f >= 1000.0 && i < U.len() - 1 {
        f /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v} B")
    } else {
        format!("{f:.1} {}", U[i])
    }
}

/// One progress line for a job.
pub(crate) fn progress_text(j: &JobProgress) -> String {
    format!(
        "JobId {} {}: {} files, {} ({} bytes), {}/s, {} s",
        j.id,
        j.name,
        j.files,
        human(j.bytes),
        j.bytes,
        human(j.rate),
        j.elapsed
    )
}

/// Sends a command and collects its reply text (up to EOD / MAIN_PROMPT),
/// without printing; "You have messages." is dropped.
async fn query<W: Wire>(wire: &mut W, cmd: &str) -> Result<String, ConsoleError> {
    wire.send(Packet::data(cmd)).await?;
    let mut text = String::new();
    loop {
        match wire.recv().await {
            Ok(Packet::Data(d)) => {
                let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                text.push_str(&String::from_utf8_lossy(&d[..end]));
            }
            Ok(Packet::Signal(Signal::Eod | Signal::MainPrompt)) => break,
            Ok(Packet::Signal(Signal::Terminate)) | Err(NetError::Eof(_)) => {
                return Err(ConsoleError::Terminated)
            }
            Ok(Packet::Signal(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(text.replace("You have messages.\n", ""))
}

/// How often `.jobprogress` is polled.
const POLL: Duration = Duration::from_millis(1000);
/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Shows progress until the job (or every job) is no longer running;
/// false when the Director has no `.jobprogress` or Ctrl-C stopped it.
async fn show_progress<W: Wire, O: Write>(
    wire: &mut W,
    out: &mut O,
    breaks: &mut Breaks,
    mode: ProgressMode,
    job: Option<u32>,
) -> Result<bool, ConsoleError> {
    // The first query answers at once; later ones wait on the Director
    // (`wait=`) until the job ends or a poll period passes.
    let quick = match job {
        Some(id) => format!(".jobprogress jobid={id}"),
        None => ".jobprogress".to_string(),
    };
    let waiting = format!("{quick} wait={}", POLL.as_millis());
    let mut cmd = quick.clone();
    let mut bars: std::collections::BTreeMap<u32, indicatif::ProgressBar> = Default::default();
    let mut last_line = std::time::Instant::now() - LINE_EVERY;
    let mut last_text = String::new();
    let finished = loop {
        let Some(jobs) = parse_progress(&query(wire, &cmd).await?) else {
            break false;
        };
        let running: Vec<&JobProgress> = jobs.iter().filter(|j| j.running).collect();
        match mode {
            ProgressMode::Bar => {
                for j in &running {
                    let bar = bars.entry(j.id).or_insert_with(|| {
                        let b = indicatif::ProgressBar::with_draw_target(
                            None,
                            indicatif::ProgressDrawTarget::stdout(),
                        );
                        if let Ok(style) =
                            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                        {
                            b.set_style(style);
                        }
                        b.enable_steady_tick(Duration::from_millis(120));
                        b
                    });
                    bar.set_message(progress_text(j));
                }
                for (id, bar) in &bars {
                    if !running.iter().any(|j| j.id == *id) && !bar.is_finished() {
                        let done = jobs.iter().find(|j| j.id == *id);
                        bar.finish_with_message(match done {
                            Some(j) => format!("{} (done)", progress_text(j)),
                            None => format!("JobId {id}: done"),
                        });
                    }
                }
            }
            ProgressMode::Lines => {
                if last_line.elapsed() >= LINE_EVERY {
                    let text: Vec<String> = running.iter().map(|j| progress_text(j)).collect();
                    let text = text.join("\n");
                    if !text.is_empty() && text != last_text {
                        writeln!(out, "{text}")?;
                        out.flush()?;
                        last_text = text;
                    }
                    last_line = std::time::Instant::now();
                }
            }
        }
        if running.is_empty() {
            break true;
        }
        if cmd == quick {
            cmd = waiting.clone();
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = breaks.next() => break false,
        }
    };
    for bar in bars.values() {
        if !bar.is_finished() {
            bar.finish();
        }
    }
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A scripted Director: replies queued per command it receives.
    struct Scripted {
        replies: VecDeque<Vec<Packet>>,
        pending: VecDeque<Packet>,
        sent: Vec<Packet>,
    }

    impl Scripted {
        fn new(replies: Vec<Vec<Packet>>) -> Self {
            Scripted {
                replies: replies.into(),
                pending: VecDeque::new(),
                sent: Vec::new(),
            }
        }
    }

    impl Wire for Scripted {
        async fn recv(&mut self) -> Result<Packet, NetError> {
            self.pending
                .pop_front()
                .ok_or_else(|| NetError::Eof("scripted Director".into()))
        }
        async fn send(&mut self, packet: Packet) -> Result<(), NetError> {
            // Each data packet the console sends releases the next scripted reply.
            if matches!(packet, Packet::Data(_)) {
                if let Some(r) = self.replies.pop_front() {
                    self.pending.extend(r);
                }
            }
            self.sent.push(packet);
            Ok(())
        }
    }

    fn d(s: &str) -> Packet {
        Packet::data(s)
    }
    fn sig(s: Signal) -> Packet {
        Packet::Signal(s)
    }

    async fn session(
        stdin: &str,
        replies: Vec<Vec<Packet>>,
    ) -> (Result<(), String>, String, Vec<Packet>) {
        let mut wire = Scripted::new(replies);
        let mut out = Vec::new();
        let echo = Vec::new();
        let input = Piped::new(stdin.as_bytes(), echo);
        let r = run(
            &mut wire,
            input,
            &mut out,
            Breaks::none(),
            ProgressMode::Lines,
        )
        .await
        .map_err(|e| e.to_string());
        (r, String::from_utf8_lossy(&out).into_owned(), wire.sent)
    }

    #[tokio::test]
    async fn plain_reply_until_eod_then_terminate() {
        let (r, out, sent) = session(
            "version\n\n@# comment\nquit\nnot sent\n",
            vec![vec![
                sig(Signal::Heartbeat),
                d("bacula-dir Version: 9.6.7\n"),
                d("with NUL\0garbage"),
                sig(Signal::Poll),
                sig(Signal::Eod),
            ]],
        )
        .await;
        r.unwrap();
        assert_eq!(out, "bacula-dir Version: 9.6.7\nwith NUL");
        assert_eq!(
            sent,
            vec![d("version"), d("quit"), sig(Signal::Terminate)],
            "commands go without newline; quit ends the session"
        );
    }

    #[tokio::test]
    async fn sub_prompt_is_answered_from_input() {
        let (r, out, sent) = session(
            "run job=X\nno\n",
            vec![
                vec![d("OK to run? (yes/mod/no): "), sig(Signal::SubPrompt)],
                vec![d("Job not run.\n"), sig(Signal::Eod)],
            ],
        )
        .await;
        r.unwrap();
        assert_eq!(out, "OK to run? (yes/mod/no): Job not run.\n");
        assert_eq!(sent, vec![d("run job=X"), d("no"), sig(Signal::Terminate)]);
    }

    #[tokio::test]
    async fn sub_prompt_at_end_of_input_cancels() {
        let (r, _, sent) = session(
            "run job=X\n",
            vec![
                vec![d("OK to run? "), sig(Signal::SubPrompt)],
                vec![d("Cancelled.\n"), sig(Signal::Eod)],
            ],
        )
        .await;
        r.unwrap();
        assert_eq!(sent, vec![d("run job=X"), d("."), sig(Signal::Terminate)]);
    }

    #[tokio::test]
    async fn api_mode_markers_and_main_prompt() {
        let (r, out, sent) = session(
            ".api 1\nversion\nlabel\nyes\n.api 0\nversion\n",
            vec![
                vec![sig(Signal::CmdOk), sig(Signal::MainPrompt)],
                vec![
                    sig(Signal::CmdBegin),
                    d("v1\n"),
                    sig(Signal::MsgsPending),
                    sig(Signal::CmdOk),
                    sig(Signal::MainPrompt),
                ],
                vec![
                    sig(Signal::CmdBegin),
                    sig(Signal::YesNo),
                    sig(Signal::TextInput),
                    d("Sure? "),
                ],
                vec![
                    sig(Signal::InfoMsg),
                    d("done\n"),
                    sig(Signal::CmdFailed),
                    sig(Signal::MainPrompt),
                ],
                vec![sig(Signal::CmdBegin), sig(Signal::Eod)],
                vec![d("v0\n"), sig(Signal::Eod)],
            ],
        )
        .await;
        r.unwrap();
        assert_eq!(out, "v1\nSure? done\nv0\n");
        assert_eq!(
            sent,
            vec![
                d(".api 1"),
                d("version"),
                d("label"),
                d("yes"),
                d(".api 0"),
                d("version"),
                sig(Signal::Terminate)
            ]
        );
    }

    #[tokio::test]
    async fn terminate_and_eof_end_the_session_with_an_error() {
        let (r, out, _) = session(
            "status\nversion\n",
            vec![vec![d("partial\n"), sig(Signal::Terminate)]],
        )
        .await;
        assert_eq!(out, "partial\n");
        assert!(r.unwrap_err().contains("terminated"));
        let (r, _, _) = session("status\n", vec![vec![d("x")]]).await;
        assert!(r.unwrap_err().contains("terminated"));
    }

    #[tokio::test]
    async fn local_commands() {
        let (r, out, sent) = session("@sleep 0\n@foo\n@exit\nversion\n", vec![]).await;
        r.unwrap();
        assert_eq!(out, "@foo: is an invalid command\n");
        assert_eq!(sent, vec![sig(Signal::Terminate)]);
    }

    #[tokio::test]
    async fn wait_polls_progress_then_waits() {
        let running = "JobId=1\nJob=B.1\nName=B\nType=B\nLevel=F\nJobStatus=R\nJobFiles=3\nJobBytes=2000000\nRate=1000000\nElapsed=2\nRunning=1\n\n";
        let done = "JobId=1\nJob=B.1\nName=B\nType=B\nLevel=F\nJobStatus=T\nJobFiles=6\nJobBytes=4000000\nRate=1000000\nElapsed=4\nRunning=0\n\n";
        let (r, out, sent) = session(
            "run job=B yes wait\n",
            vec![
                vec![d("Job queued. JobId=1\n"), sig(Signal::Eod)],
                vec![d(running), d("You have messages.\n"), sig(Signal::Eod)],
                vec![d(done), sig(Signal::Eod)],
                vec![d("JobId=1\nJobStatus=OK (T)\n"), sig(Signal::Eod)],
            ],
        )
        .await;
        r.unwrap();
        assert_eq!(
            sent,
            vec![
                d("run job=B yes"),
                d(".jobprogress jobid=1"),
                d(".jobprogress jobid=1 wait=1000"),
                d("wait jobid=1"),
                sig(Signal::Terminate)
            ]
        );
        assert!(
            out.contains("JobId 1 B: 3 files, 2.0 MB (2000000 bytes), 1.0 MB/s, 2 s\n"),
            "{out}"
        );
        assert!(
            out.ends_with("wait jobid=1\nJobId=1\nJobStatus=OK (T)\n"),
            "{out}"
        );
        assert!(!out.contains("You have messages."), "{out}");
    }

    #[tokio::test]
    async fn wait_on_a_director_without_jobprogress_is_plain() {
        let (r, out, sent) = session(
            "wait\n",
            vec![
                vec![
                    d(".jobprogress: is an invalid command.\n"),
                    sig(Signal::Eod),
                ],
                vec![sig(Signal::Eod)],
            ],
        )
        .await;
        r.unwrap();
        assert_eq!(out, "");
        assert_eq!(
            sent,
            vec![d(".jobprogress"), d("wait"), sig(Signal::Terminate)]
        );
    }

    #[test]
    fn progress_parsing() {
        assert_eq!(parse_progress("x: is an invalid command.\n"), None);
        assert_eq!(parse_progress("Running=0\n"), Some(vec![]));
        let j = parse_progress("JobId=2\nName=N\nJobFiles=1\nJobBytes=5\nRunning=1\n\n").unwrap();
        assert_eq!(
            (j[0].id, j[0].files, j[0].bytes, j[0].running),
            (2, 1, 5, true)
        );
        assert_eq!(queued_job_id("x\nJob queued. JobId=12\n"), Some(12));
        assert_eq!(job_id_arg("wait jobid=7"), Some(7));
        assert_eq!(human(999), "999 B");
    }

    #[test]
    fn quit_words() {
        for q in ["quit", "EXIT", ".quit", ".exit", "quit now"] {
            assert!(is_quit(q), "{q}");
        }
        for q in ["quitx", "status", ".quitter"] {
            assert!(!is_quit(q), "{q}");
        }
    }
}
