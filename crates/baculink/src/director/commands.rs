//! Console commands about jobs: `run`, `restore`, `list`, `cancel`,
//! `wait`, `messages`, `.jobprogress`, and the job sections of `status dir`.

use std::sync::Arc;
use std::time::Duration;

use baculink_conf::dir::Job;
use baculink_conf::Items;
use baculink_net::{BSock, NetError};
use baculink_proto::frame::{Packet, Signal};
use baculink_proto::job::sdcmd::Bootstrap;
use baculink_proto::scan::c_text;

use super::catalog::{FileRow, JobRow, NewJob, PoolSpec};
use super::job::{run_job, JobCtx, JobPlan};
use super::jobs::LiveJob;
use super::report::{self, commas, now};
use super::restore::{build_bootstrap, select_files, RestoreSpec};
use super::Director;

/// Command arguments: `key=value` or bare `key`, values may be quoted.
pub struct Args {
    items: Vec<(String, Option<String>)>,
}

impl Args {
    /// Splits the words after the command keyword.
    pub fn parse(cmd: &str) -> Args {
        let mut items = Vec::new();
        let mut chars = cmd.chars().peekable();
        // Skip the command word.
        while chars.peek().is_some_and(|c| !c.is_whitespace()) {
            chars.next();
        }
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '=' {
                    break;
                }
                key.push(c);
                chars.next();
            }
            let value = if chars.peek() == Some(&'=') {
                chars.next();
                let mut v = String::new();
                if chars.peek() == Some(&'"') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c == '"' {
                            break;
                        }
                        v.push(c);
                    }
                } else {
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() {
                            break;
                        }
                        v.push(c);
                        chars.next();
                    }
                }
                Some(v)
            } else {
                None
            };
            items.push((key.to_ascii_lowercase(), value));
        }
        Args { items }
    }

    /// The value of the first `key=`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, v)| k == key && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of `key=`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.items
            .iter()
            .filter(|(k, _)| k == key)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether a bare `key` (or `key=`) is present.
    pub fn has(&self, key: &str) -> bool {
        self.items.iter().any(|(k, _)| k == key)
    }

    /// The first bare word.
    pub fn first_word(&self) -> Option<&str> {
        self.items.first().map(|(k, _)| k.as_str())
    }
}

/// `Maximum Volume Bytes = 50G`: Bacula's size units (k/m/g... = powers of
/// 1024, kb/mb/gb... = powers of 1000).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024f64.powi(2),
        "mb" => 1e6,
        "g" | "gib" => 1024f64.powi(3),
        "gb" => 1e9,
        "t" | "tib" => 1024f64.powi(4),
        "tb" => 1e12,
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// Reply of a command run: lines for the console and whether it succeeded.
type Reply = Result<bool, NetError>;

impl Director {
    /// A directive of a Job, looked up through its JobDefs chain.
    fn job_value(&self, job: &Job, key: &str) -> Option<String> {
        let mut res = Some(&job.resource);
        let mut hops = 0;
        while let Some(r) = res {
            if let Some(v) = r.value(key) {
                return Some(v.to_string());
            }
            let next = r.value("jobdefs")?;
            res = self
                .conf
                .job_defs
                .iter()
                .find(|d| d.name == next)
                .map(|d| &d.resource);
            hops += 1;
            if hops > 16 {
                return None;
            }
        }
        None
    }

    /// Resolves a Job resource (plus command overrides) into a plan.
    pub(super) fn plan(&self, job: &Job, args: &Args, kind: char) -> Result<JobPlan, String> {
        let c = &self.conf;
        let client_name = args
            .get("client")
            .map(str::to_string)
            .or_else(|| job.client.clone())
            .ok_or_else(|| format!("Job \"{}\" has no Client", job.name))?;
        let client = c
            .client(&client_name)
            .ok_or_else(|| format!("Client \"{client_name}\" not found."))?
            .clone();
        let pool_name = args
            .get("pool")
            .map(str::to_string)
            .or_else(|| job.pool.clone())
            .ok_or_else(|| format!("Job \"{}\" has no Pool", job.name))?;
        let pool_res = c
            .pools
            .iter()
            .find(|p| p.name == pool_name)
            .ok_or_else(|| format!("Pool \"{pool_name}\" not found."))?;
        let pr = &pool_res.resource;
        let storage_name = args
            .get("storage")
            .map(str::to_string)
            .or_else(|| job.storage.first().cloned())
            .or_else(|| pr.value("storage").map(str::to_string))
            .ok_or_else(|| format!("Job \"{}\" has no Storage", job.name))?;
        let storage = c
            .storage(&storage_name)
            .ok_or_else(|| format!("Storage \"{storage_name}\" not found."))?
            .clone();
        let fs_name = args
            .get("fileset")
            .map(str::to_string)
            .or_else(|| job.fileset.clone())
            .ok_or_else(|| format!("Job \"{}\" has no FileSet", job.name))?;
        let fileset = c
            .fileset(&fs_name)
            .ok_or_else(|| format!("FileSet \"{fs_name}\" not found."))?
            .clone();
        let level = match args.get("level") {
            Some(l) => {
                report::level_letter(l).ok_or_else(|| format!("Level \"{l}\" not valid."))?
            }
            None if kind == 'R' => ' ',
            None => job
                .level
                .as_deref()
                .and_then(report::level_letter)
                .unwrap_or('F'),
        };
        let num = |k: &str| pr.value(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        let pool = PoolSpec {
            name: pool_name.clone(),
            label_format: pr.value("labelformat").map(str::to_string),
            max_vol_bytes: pr
                .value("maximumvolumebytes")
                .and_then(parse_size)
                .unwrap_or(0),
            max_vol_jobs: num("maximumvolumejobs"),
            max_vol_files: num("maximumvolumefiles"),
            recycle: pr
                .value("recycle")
                .and_then(baculink_conf::value::parse_bool)
                .unwrap_or(true),
        };
        let messages = job.messages.as_deref().and_then(|m| c.messages(m)).cloned();
        let catalog = client
            .catalog
            .clone()
            .or_else(|| c.catalogs.first().map(|x| x.name.clone()))
            .unwrap_or_default();
        Ok(JobPlan {
            kind,
            job: job.clone(),
            level,
            client,
            storage,
            pool,
            pool_type: pr.value("pooltype").unwrap_or("Backup").to_string(),
            fileset,
            messages,
            catalog,
            spool_attributes: self
                .job_value(job, "spoolattributes")
                .and_then(|v| baculink_conf::value::parse_bool(&v))
                .unwrap_or(true),
            priority: self
                .job_value(job, "priority")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10),
            max_jobs: self
                .job_value(job, "maximumconcurrentjobs")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            sched_time: now(),
            restore: None,
        })
    }

    /// Creates the catalog record, registers and starts the job; its JobId.
    async fn queue(self: &Arc<Self>, plan: JobPlan) -> Result<u32, String> {
        let seq = self.jobs.next_seq();
        let unique = format!(
            "{}.{}_{seq:02}",
            plan.job.name,
            report::job_name_time(plan.sched_time)
        );
        let new = NewJob {
            job: unique.clone(),
            name: plan.job.name.clone(),
            kind: plan.kind,
            level: plan.level,
            client: plan.client.name.clone(),
            fileset: plan.fileset.name.clone(),
            pool: plan.pool.name.clone(),
            storage: plan.storage.name.clone(),
            sched_time: plan.sched_time,
            prior_job_id: plan.restore.as_ref().map(|r| r.prior.job_id).unwrap_or(0),
        };
        let id = self
            .catalog
            .call(move |c| c.create_job(&new))
            .await
            .map_err(|e| e.to_string())?;
        let live = self.jobs.add(
            id,
            unique,
            plan.job.name.clone(),
            plan.kind,
            plan.level,
            plan.client.name.clone(),
        );
        let ctx = Arc::new(JobCtx {
            dir: self.clone(),
            live,
            plan,
        });
        // A job task that panics must not stay "running" forever.
        let task = tokio::spawn(run_job(ctx.clone()));
        tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!("JobId {}: job task failed: {e}", ctx.id());
                let end = now();
                let row = super::catalog::JobEndRow {
                    status: 'E',
                    end_time: end,
                    termination: "*** Director internal error ***".into(),
                    ..Default::default()
                };
                let id = ctx.id();
                let _ = ctx.dir.catalog.call(move |c| c.end_job(id, &row)).await;
                ctx.dir.jobs.finish(&ctx.live, 'E', end);
            }
        });
        Ok(id)
    }

    /// Asks `question` with a sub-prompt; the answer (None: cancelled).
    async fn ask(&self, sock: &mut BSock, question: &str) -> Result<Option<String>, NetError> {
        sock.send_text(question).await?;
        sock.signal(Signal::SubPrompt).await?;
        loop {
            match sock.recv().await? {
                Packet::Data(d) => {
                    let a = c_text(&d).trim().to_string();
                    return Ok((a != ".").then_some(a));
                }
                Packet::Signal(Signal::Terminate) => return Ok(None),
                Packet::Signal(_) => {}
            }
        }
    }

    /// `run job=NAME [level=L] [client=C] [storage=S] [pool=P] [fileset=F] [yes]`.
    pub(super) async fn cmd_run(self: &Arc<Self>, sock: &mut BSock, cmd: &str) -> Reply {
        let args = Args::parse(cmd);
        let Some(name) = args.get("job") else {
            sock.send_text(
                "run: give the job to run with job=NAME (add \"yes\" to skip the question).\n",
            )
            .await?;
            return Ok(false);
        };
        let Some(job) = self.conf.job(name) else {
            sock.send_text(&format!("Job \"{name}\" not found.\n"))
                .await?;
            return Ok(false);
        };
        let kind = match job
            .job_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("backup") | None => 'B',
            Some("restore") => {
                sock.send_text(&format!(
                    "Job \"{name}\" is a Restore job: use the restore command (restore jobid=N where=DIR all done yes).\n"
                ))
                .await?;
                return Ok(false);
            }
            Some(other) => {
                sock.send_text(&format!("Job type \"{other}\" is not supported.\n"))
                    .await?;
                return Ok(false);
            }
        };
        let plan = match self.plan(job, &args, kind) {
            Ok(p) => p,
            Err(e) => {
                sock.send_text(&format!("{e}\n")).await?;
                return Ok(false);
            }
        };
        if !args.has("yes") {
            let summary = format!(
                "Run Backup job\nJobName:  {}\nLevel:    {}\nClient:   {}\nFileSet:  {}\nPool:     {} (From Job resource)\nStorage:  {} (From Job resource)\nWhen:     {}\nPriority: {}\n",
                plan.job.name,
                report::level_name(plan.level),
                plan.client.name,
                plan.fileset.name,
                plan.pool.name,
                plan.storage.name,
                report::iso_time(plan.sched_time),
                plan.priority
            );
            sock.send_text(&summary).await?;
            match self.ask(sock, "OK to run? (yes/mod/no): ").await? {
                Some(a) if a.eq_ignore_ascii_case("yes") || a.eq_ignore_ascii_case("y") => {}
                Some(a) if a.eq_ignore_ascii_case("mod") => {
                    sock.send_text("mod is not supported: give the changes on the run line (level=, client=, storage=, pool=, fileset=).\nJob not run.\n")
                        .await?;
                    return Ok(false);
                }
                _ => {
                    sock.send_text("Job not run.\n").await?;
                    return Ok(false);
                }
            }
        }
        match self.queue(plan).await {
            Ok(id) => {
                sock.send_text(&format!("Job queued. JobId={id}\n")).await?;
                Ok(true)
            }
            Err(e) => {
                sock.send_text(&format!("Job not run: {e}\n")).await?;
                Ok(false)
            }
        }
    }

    /// `restore jobid=N [where=DIR] [client=NAME] [restorejob=NAME]
    /// [replace=always|ifnewer|ifolder|never] [file=PATH ...] [all] [done] [yes]`.
    pub(super) async fn cmd_restore(self: &Arc<Self>, sock: &mut BSock, cmd: &str) -> Reply {
        let args = Args::parse(cmd);
        let mut ids: Vec<u32> = args
            .get("jobid")
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        if ids.is_empty() && args.has("current") {
            let client = args
                .get("client")
                .map(str::to_string)
                .or_else(|| self.conf.clients.first().map(|c| c.name.clone()))
                .unwrap_or_default();
            let fileset = args.get("fileset").map(str::to_string);
            match self.catalog.call(|c| c.jobs(u32::MAX)).await {
                Ok(all) => ids = current_set(&all, &client, fileset.as_deref()),
                Err(e) => {
                    sock.send_text(&format!("{e}\n")).await?;
                    return Ok(false);
                }
            }
            if ids.is_empty() {
                sock.send_text(&format!(
                    "No Full backup of Client \"{client}\" in the catalog.\n"
                ))
                .await?;
                return Ok(false);
            }
        }
        if ids.is_empty() {
            sock.send_text(RESTORE_USAGE).await?;
            return Ok(false);
        }
        let mut jobs: Vec<JobRow> = Vec::new();
        for &job_id in &ids {
            match self.catalog.call(move |c| c.job(job_id)).await {
                Ok(Some(j)) if j.kind == "B" && matches!(j.status.as_str(), "T" | "W") => {
                    jobs.push(j)
                }
                Ok(Some(j)) => {
                    sock.send_text(&format!(
                        "JobId {job_id} is not a successful backup (type {}, status {}).\n",
                        j.kind, j.status
                    ))
                    .await?;
                    return Ok(false);
                }
                Ok(None) => {
                    sock.send_text(&format!("JobId {job_id} not found in the catalog.\n"))
                        .await?;
                    return Ok(false);
                }
                Err(e) => {
                    sock.send_text(&format!("{e}\n")).await?;
                    return Ok(false);
                }
            }
        }
        jobs.sort_by_key(|j| (j.start_time, j.job_id));
        let job_list = jobs
            .iter()
            .map(|j| j.job_id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let Some(prior) = jobs.last().cloned() else {
            return Ok(false);
        };
        let restore_job = match args.get("restorejob") {
            Some(n) => self.conf.job(n),
            None => self.conf.jobs.iter().find(|j| {
                j.job_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("restore"))
            }),
        };
        let Some(restore_job) = restore_job else {
            sock.send_text("No Restore Job resource found in the configuration.\n")
                .await?;
            return Ok(false);
        };
        let mut over = Args::parse(&format!(
            "x client=\"{}\" storage=\"{}\"",
            args.get("client").unwrap_or(&prior.client),
            if prior.storage.is_empty() {
                restore_job
                    .storage
                    .first()
                    .map(String::as_str)
                    .unwrap_or("")
            } else {
                &prior.storage
            }
        ));
        if prior.pool.is_empty() {
            over.items.retain(|(k, _)| k != "pool");
        } else {
            over.items.push(("pool".into(), Some(prior.pool.clone())));
        }
        let mut plan = match self.plan(restore_job, &over, 'R') {
            Ok(p) => p,
            Err(e) => {
                sock.send_text(&format!("{e}\n")).await?;
                return Ok(false);
            }
        };
        let where_ = args
            .get("where")
            .map(str::to_string)
            .or_else(|| restore_job.where_.clone())
            .unwrap_or_default();
        let replace = match args.get("replace").map(str::to_ascii_lowercase).as_deref() {
            None => self
                .job_value(restore_job, "replace")
                .map(|v| replace_letter(&v))
                .unwrap_or('a'),
            Some(v) => replace_letter(v),
        };
        let wanted = args.all("file");
        let device = plan.storage.devices.first().cloned().unwrap_or_default();
        // Newest version of each path: walk the jobs newest first.
        let mut seen = std::collections::HashSet::new();
        let mut entries = Vec::new();
        let (mut expected, mut inserted, mut marked) = (0u64, 0usize, 0usize);
        for j in jobs.iter().rev() {
            let job_id = j.job_id;
            let (files, parts) = match self
                .catalog
                .call(move |c| Ok((c.files(job_id)?, c.volume_parts(job_id)?)))
                .await
            {
                Ok(x) => x,
                Err(e) => {
                    sock.send_text(&format!("{e}\n")).await?;
                    return Ok(false);
                }
            };
            inserted += files.len();
            let newest: Vec<FileRow> = files
                .into_iter()
                .filter(|f| seen.insert(f.full_path()))
                .collect();
            let chosen = if wanted.is_empty() {
                newest
            } else {
                select_files(&newest, &wanted)
            };
            marked += chosen.len();
            let (b, n) = build_bootstrap(j, &parts, Some(&chosen), &plan.storage.name, &device);
            expected += n;
            entries.push(b.entries);
        }
        let entries: Vec<_> = entries.into_iter().rev().flatten().collect();
        let bootstrap = Bootstrap { entries };
        sock.send_text(&format!(
            "Building directory tree for JobId(s) {job_list} ...\n{} files inserted into the tree.\n{} file{} selected to be restored.\n\n",
            commas(inserted as u64),
            commas(marked as u64),
            if marked == 1 { "" } else { "s" }
        ))
        .await?;
        if expected == 0 {
            sock.send_text("No files selected to be restored.\n")
                .await?;
            return Ok(false);
        }
        let summary = format!(
            "Run Restore job\nJobName:         {}\nBootstrap:       {} volume section(s)\nWhere:           {}\nReplace:         {}\nFileSet:         {}\nBackup Client:   {}\nRestore Client:  {}\nStorage:         {}\nJobId(s):        {job_list}\nCatalog:         {}\nPriority:        {}\n",
            restore_job.name,
            bootstrap.entries.len(),
            where_,
            super::job::replace_word(replace),
            plan.fileset.name,
            prior.client,
            plan.client.name,
            plan.storage.name,
            plan.catalog,
            plan.priority
        );
        sock.send_text(&summary).await?;
        if !args.has("yes") {
            match self.ask(sock, "OK to run? (yes/mod/no): ").await? {
                Some(a) if a.eq_ignore_ascii_case("yes") || a.eq_ignore_ascii_case("y") => {}
                _ => {
                    sock.send_text("Job not run.\n").await?;
                    return Ok(false);
                }
            }
        }
        plan.restore = Some(RestoreSpec {
            prior,
            where_,
            replace,
            bootstrap,
            expected_files: expected,
        });
        match self.queue(plan).await {
            Ok(id) => {
                sock.send_text(&format!("Job queued. JobId={id}\n")).await?;
                Ok(true)
            }
            Err(e) => {
                sock.send_text(&format!("Job not run: {e}\n")).await?;
                Ok(false)
            }
        }
    }

    /// `list jobs`, `list files jobid=N`, `list jobid=N`, `list volumes`.
    pub(super) async fn cmd_list(&self, sock: &mut BSock, cmd: &str) -> Reply {
        let args = Args::parse(cmd);
        let what = args.first_word().unwrap_or("jobs").to_string();
        match what.as_str() {
            "jobs" | "jobid" => {
                let one = args.get("jobid").and_then(|v| v.parse::<u32>().ok());
                let rows = self
                    .catalog
                    .call(move |c| match one {
                        Some(id) => Ok(c.job(id)?.into_iter().collect::<Vec<JobRow>>()),
                        None => c.jobs(1000),
                    })
                    .await;
                let rows = match rows {
                    Ok(r) => r,
                    Err(e) => {
                        sock.send_text(&format!("{e}\n")).await?;
                        return Ok(false);
                    }
                };
                if rows.is_empty() {
                    sock.send_text("No results to list.\n").await?;
                    return Ok(true);
                }
                let table = table(
                    &[
                        "jobid",
                        "name",
                        "starttime",
                        "type",
                        "level",
                        "jobfiles",
                        "jobbytes",
                        "jobstatus",
                    ],
                    &[true, false, false, false, false, true, true, false],
                    rows.iter()
                        .map(|j| {
                            vec![
                                j.job_id.to_string(),
                                j.name.clone(),
                                report::iso_time(j.start_time),
                                j.kind.clone(),
                                j.level.clone(),
                                commas(j.files),
                                commas(j.bytes),
                                j.status.clone(),
                            ]
                        })
                        .collect(),
                    0,
                );
                sock.send_text(&table).await?;
                Ok(true)
            }
            "files" => {
                let Some(id) = args.get("jobid").and_then(|v| v.parse::<u32>().ok()) else {
                    sock.send_text("list files: give jobid=N.\n").await?;
                    return Ok(false);
                };
                match self.catalog.call(move |c| c.files(id)).await {
                    Ok(files) if files.is_empty() => {
                        sock.send_text(&format!("No files in the catalog for JobId {id}.\n"))
                            .await?;
                        Ok(true)
                    }
                    Ok(files) => {
                        let rows = files.iter().map(|f| vec![f.full_path()]).collect();
                        sock.send_text(&table(&["filename"], &[false], rows, 0))
                            .await?;
                        Ok(true)
                    }
                    Err(e) => {
                        sock.send_text(&format!("{e}\n")).await?;
                        Ok(false)
                    }
                }
            }
            "joblog" => {
                let Some(id) = args.get("jobid").and_then(|v| v.parse::<u32>().ok()) else {
                    sock.send_text("list joblog: give jobid=N.\n").await?;
                    return Ok(false);
                };
                match self.catalog.call(move |c| c.job_log(id)).await {
                    Ok(lines) => {
                        for l in lines {
                            sock.send_text(&l).await?;
                        }
                        Ok(true)
                    }
                    Err(e) => {
                        sock.send_text(&format!("{e}\n")).await?;
                        Ok(false)
                    }
                }
            }
            "volumes" | "media" => match self.catalog.call(|c| c.media()).await {
                Ok(media) if media.is_empty() => {
                    sock.send_text("No volumes in the catalog.\n").await?;
                    Ok(true)
                }
                Ok(media) => {
                    let rows = media
                        .iter()
                        .map(|(m, pool)| {
                            vec![
                                m.media_id.to_string(),
                                m.vol_name.clone(),
                                m.vol_status.clone(),
                                commas(m.vol_bytes),
                                m.vol_jobs.to_string(),
                                pool.clone(),
                            ]
                        })
                        .collect();
                    sock.send_text(&table(
                        &[
                            "mediaid",
                            "volumename",
                            "volstatus",
                            "volbytes",
                            "voljobs",
                            "pool",
                        ],
                        &[true, false, false, true, true, false],
                        rows,
                        0,
                    ))
                    .await?;
                    Ok(true)
                }
                Err(e) => {
                    sock.send_text(&format!("{e}\n")).await?;
                    Ok(false)
                }
            },
            other => {
                sock.send_text(&format!(
                    "list {other}: use list jobs, list jobid=N, list files jobid=N, list joblog jobid=N or list volumes.\n"
                ))
                .await?;
                Ok(false)
            }
        }
    }

    /// `cancel jobid=N` / `cancel job=UNIQUE-NAME`.
    pub(super) async fn cmd_cancel(&self, sock: &mut BSock, cmd: &str) -> Reply {
        let args = Args::parse(cmd);
        let job = if let Some(id) = args.get("jobid").and_then(|v| v.parse::<u32>().ok()) {
            self.jobs.get(id)
        } else if let Some(name) = args.get("job").or_else(|| args.get("ujobid")) {
            self.jobs
                .running()
                .into_iter()
                .find(|j| j.unique == name || j.name == name)
        } else {
            let running = self.jobs.running();
            if running.len() == 1 {
                running.into_iter().next()
            } else {
                sock.send_text("cancel: give jobid=N (see status dir).\n")
                    .await?;
                return Ok(false);
            }
        };
        let Some(job) = job else {
            sock.send_text("No such job running (it may have ended already).\n")
                .await?;
            return Ok(false);
        };
        job.cancel.cancel();
        sock.send_text(&format!(
            "JobId {}, Job {} marked to be canceled.\n",
            job.id, job.unique
        ))
        .await?;
        Ok(true)
    }

    /// `wait [jobid=N] [timeout=SECS]`: blocks until the job (or every job) ended.
    pub(super) async fn cmd_wait(&self, sock: &mut BSock, cmd: &str) -> Reply {
        let args = Args::parse(cmd);
        let limit = args
            .get("timeout")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(365 * 86_400));
        let job_id = args.get("jobid").and_then(|v| v.parse::<u32>().ok());
        let wait = async {
            match job_id {
                Some(id) => {
                    if let Some(j) = self.jobs.get(id) {
                        j.finished().await;
                    }
                }
                None => loop {
                    let running = self.jobs.running();
                    let Some(j) = running.first() else { break };
                    j.finished().await;
                },
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            sock.send_text("Wait timed out.\n").await?;
            return Ok(false);
        }
        if let Some(id) = job_id {
            let status = match self.catalog.call(move |c| c.job(id)).await {
                Ok(Some(j)) => j.status.chars().next().unwrap_or('?'),
                _ => {
                    sock.send_text(&format!("JobId {id} not found.\n")).await?;
                    return Ok(false);
                }
            };
            sock.send_text(&format!(
                "JobId={id}\nJobStatus={} ({status})\n",
                report::status_word(status)
            ))
            .await?;
        }
        Ok(true)
    }

    /// `.jobprogress [jobid=N]`: key=value blocks (one per job, blank line
    /// between) with status, files, bytes and rate, for progress displays.
    pub(super) async fn cmd_jobprogress(&self, sock: &mut BSock, cmd: &str) -> Reply {
        let args = Args::parse(cmd);
        // `wait=MS`: answer when the job(s) finish or after MS, so a
        // progress display learns of the end at once instead of polling.
        if let Some(ms) = args.get("wait").and_then(|v| v.parse::<u64>().ok()) {
            let limit = Duration::from_millis(ms.min(60_000));
            let job = args.get("jobid").and_then(|v| v.parse::<u32>().ok());
            let done = async {
                match job {
                    Some(id) => {
                        if let Some(j) = self.jobs.get(id) {
                            j.finished().await;
                        }
                    }
                    None => {
                        for j in self.jobs.running() {
                            j.finished().await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(limit, done).await;
        }
        let mut out = String::new();
        match args.get("jobid").and_then(|v| v.parse::<u32>().ok()) {
            Some(id) => match self.jobs.get(id) {
                Some(j) => out.push_str(&progress_block(&j)),
                None => match self.catalog.call(move |c| c.job(id)).await {
                    Ok(Some(j)) => {
                        let secs = (j.end_time - j.start_time).max(0);
                        out.push_str(&format!(
                            "JobId={}\nJob={}\nName={}\nType={}\nLevel={}\nJobStatus={}\nJobFiles={}\nJobBytes={}\nRate={}\nElapsed={secs}\nRunning=0\nTermination={}\n\n",
                            j.job_id,
                            j.job,
                            j.name,
                            j.kind,
                            j.level,
                            j.status,
                            j.files,
                            j.bytes,
                            if secs > 0 { j.bytes / secs as u64 } else { j.bytes },
                            j.termination
                        ));
                    }
                    _ => {
                        sock.send_text(&format!("JobId {id} not found.\n")).await?;
                        return Ok(false);
                    }
                },
            },
            None => {
                for j in self.jobs.running() {
                    out.push_str(&progress_block(&j));
                }
                if out.is_empty() {
                    out.push_str("Running=0\n");
                }
            }
        }
        sock.send_text(&out).await?;
        Ok(true)
    }

    /// `messages`: every queued job message, then the queue is empty.
    pub(super) async fn cmd_messages(&self, sock: &mut BSock) -> Reply {
        let msgs = self.jobs.take_messages();
        if msgs.is_empty() {
            sock.send_text("You have no messages.\n").await?;
        }
        for m in msgs {
            sock.send_text(&m).await?;
        }
        Ok(true)
    }

    /// The job lines of `status dir`'s Running Jobs section.
    pub(super) fn running_lines(&self) -> Vec<String> {
        let running = self.jobs.running();
        if running.is_empty() {
            return vec!["No Jobs running.\n".into()];
        }
        let mut out = vec![
            " JobId  Type Level     Files        Bytes        Rate  Name              Status\n".into(),
            "======================================================================================\n".into(),
        ];
        for j in running {
            let s = j.snapshot();
            let secs = if s.start > 0 { now() - s.start } else { 0 };
            let rate = if s.bps > 0 {
                s.bps
            } else if secs > 0 {
                s.bytes / secs as u64
            } else {
                0
            };
            out.push(format!(
                "{:>6}  {:<4} {:<8} {:>6} {:>12} {:>9}/s  {:<17} {}\n",
                j.id,
                if j.kind == 'R' { "Rest" } else { "Back" },
                report::level_name(s.level),
                commas(s.files),
                commas(s.bytes),
                report::short_units(rate),
                j.name,
                report::status_text(s.status)
            ));
        }
        out
    }

    /// `.status dir running`: one key=value block per queued or running job.
    pub(super) fn running_blocks(&self) -> Vec<String> {
        self.jobs
            .running()
            .iter()
            .map(|j| format!("\n{}", progress_block(j).trim_end_matches('\n')) + "\n")
            .collect()
    }

    /// `status dir`'s Terminated Jobs section.
    pub(super) fn terminated_lines(&self) -> Vec<String> {
        let done = self.jobs.terminated();
        if done.is_empty() {
            return vec!["\nNo Terminated Jobs.\n====\n".into()];
        }
        let mut out = vec![
            "\nTerminated Jobs:\n".into(),
            " JobId  Level      Files    Bytes   Status   Finished        Name \n".into(),
            "====================================================================\n".into(),
        ];
        for t in done {
            out.push(format!(
                "{:>6}  {:<7} {:>9} {:>10}  {:<7}  {} {}\n",
                t.id,
                if t.kind == 'R' {
                    "Restore"
                } else {
                    report::level_name(t.level)
                },
                commas(t.files),
                report::short_units(t.bytes),
                report::status_word(t.status)
                    .split(' ')
                    .next()
                    .unwrap_or(""),
                report::short_time(t.end),
                t.name
            ));
        }
        out.push("\n====\n".into());
        out
    }

    /// `.status dir current|last`: `JobId=.. JobStatus=.. JobErrors=..` lines.
    pub(super) fn dot_status_jobs(&self, last: bool) -> Vec<String> {
        let mut v = vec!["1000 OK .status\n".to_string()];
        if last {
            if let Some(t) = self.jobs.terminated().last() {
                v.push(format!(
                    "JobId={} JobStatus={} JobErrors=0\n",
                    t.id, t.status
                ));
            }
        } else {
            for j in self.jobs.running() {
                v.push(format!(
                    "JobId={} JobStatus={} JobErrors=0\n",
                    j.id,
                    j.snapshot().status
                ));
            }
        }
        v
    }
}

/// The jobs making up the current state of a client (and FileSet): its
/// last good Full, the last good Differential after it, and every good
/// Incremental after those.
pub fn current_set(all: &[JobRow], client: &str, fileset: Option<&str>) -> Vec<u32> {
    let good: Vec<&JobRow> = all
        .iter()
        .filter(|j| {
            j.kind == "B"
                && j.client == client
                && matches!(j.status.as_str(), "T" | "W")
                && (fileset.is_none() || fileset == Some(j.fileset.as_str()))
        })
        .collect();
    let Some(full) = good.iter().rev().find(|j| j.level == "F") else {
        return Vec::new();
    };
    let mut set = vec![full.job_id];
    let mut since = (full.start_time, full.job_id);
    if let Some(diff) = good
        .iter()
        .rev()
        .find(|j| j.level == "D" && (j.start_time, j.job_id) > since)
    {
        set.push(diff.job_id);
        since = (diff.start_time, diff.job_id);
    }
    set.extend(
        good.iter()
            .filter(|j| j.level == "I" && (j.start_time, j.job_id) > since)
            .map(|j| j.job_id),
    );
    set
}

/// One `.jobprogress` block for a queued or running job.
fn progress_block(j: &Arc<LiveJob>) -> String {
    let s = j.snapshot();
    let secs = if s.start > 0 {
        (now() - s.start).max(0)
    } else {
        0
    };
    let rate = if s.bps > 0 {
        s.bps
    } else if secs > 0 {
        s.bytes / secs as u64
    } else {
        0
    };
    format!(
        "JobId={}\nJob={}\nName={}\nClient={}\nType={}\nLevel={}\nJobStatus={}\nSDStatus={}\nJobFiles={}\nJobBytes={}\nRate={rate}\nElapsed={secs}\nRunning=1\n\n",
        j.id,
        j.unique,
        j.name,
        j.client,
        j.kind,
        s.level,
        s.status,
        s.sd_status,
        s.files,
        s.bytes
    )
}

fn replace_letter(v: &str) -> char {
    match v.to_ascii_lowercase().as_str() {
        "ifnewer" | "w" => 'w',
        "ifolder" | "o" => 'o',
        "never" | "n" => 'n',
        _ => 'a',
    }
}

/// An ASCII table like Bacula's `list` output.
fn table(head: &[&str], right: &[bool], rows: Vec<Vec<String>>, _pad: usize) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let sep = {
        let mut s = String::from("+");
        for x in &w {
            s.push_str(&"-".repeat(x + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, x) in w.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&format!(" {c:>x$} |"));
            } else {
                s.push_str(&format!(" {c:<x$} |"));
            }
        }
        s.push('\n');
        s
    };
    let mut out = sep.clone();
    out.push_str(&line(
        &head.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    ));
    out.push_str(&sep);
    for r in &rows {
        out.push_str(&line(r));
    }
    out.push_str(&sep);
    out
}

const RESTORE_USAGE: &str = "restore: this Director restores without the interactive tree:\n  \
restore jobid=N[,M...] [where=DIR] [client=NAME] [restorejob=NAME] [replace=always|ifnewer|ifolder|never] [file=PATH ...] all done yes\n  \
restore current [client=NAME] [fileset=NAME] [where=DIR] ... all done yes\n\
jobid= names successful backups (see list jobs), e.g. a Full and its Incrementals: the newest\n\
version of each file is restored. file= (repeatable) limits the restore to those paths (a\n\
directory selects everything under it); without file= every file is restored. current picks the\n\
client's last Full plus the Differential and Incrementals after it.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_with_quotes_and_bare_words() {
        let a = Args::parse("restore jobid=1 where=\"/tmp/a b\" all done yes file=/x file=/y");
        assert_eq!(a.get("jobid"), Some("1"));
        assert_eq!(a.get("where"), Some("/tmp/a b"));
        assert!(a.has("yes") && a.has("all") && a.has("done"));
        assert_eq!(a.all("file"), vec!["/x".to_string(), "/y".to_string()]);
        assert_eq!(
            Args::parse("list files jobid=2").first_word(),
            Some("files")
        );
        assert!(Args::parse("run").get("job").is_none());
    }

    #[test]
    fn current_backup_set() {
        let j = |id: u32, level: &str, t: i64, status: &str| JobRow {
            job_id: id,
            kind: "B".into(),
            level: level.into(),
            client: "c".into(),
            status: status.into(),
            start_time: t,
            ..JobRow::default()
        };
        let all = vec![
            j(1, "F", 10, "T"),
            j(2, "I", 20, "T"),
            j(3, "F", 30, "T"),
            j(4, "I", 40, "T"),
            j(5, "D", 50, "T"),
            j(6, "I", 60, "E"),
            j(7, "I", 70, "T"),
        ];
        assert_eq!(current_set(&all, "c", None), vec![3, 5, 7]);
        assert_eq!(current_set(&all[..4], "c", None), vec![3, 4]);
        assert!(current_set(&all, "other", None).is_empty());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50G"), Some(53_687_091_200));
        assert_eq!(parse_size("1 MB"), Some(1_000_000));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("5x"), None);
    }

    #[test]
    fn tables() {
        let t = table(
            &["jobid", "name"],
            &[true, false],
            vec![vec!["1".into(), "BackupData".into()]],
            0,
        );
        assert_eq!(
            t,
            "+-------+------------+\n| jobid | name       |\n+-------+------------+\n|     1 | BackupData |\n+-------+------------+\n"
        );
    }
}
