//! Restores (protocol-jobs.md §6): the bootstrap built from the catalog's
//! job and volume records (§6.1), the SD read job, and the FD `restore`
//! command (§6.2), ending with `endrestore` and the FD's end-of-job line.

use std::sync::Arc;

use baculink_proto::frame::Signal;
use baculink_proto::job::sdcmd::{self, Bootstrap, BsrEntry, Range};
use tokio::task::JoinHandle;

use super::catalog::{FileRow, JobRow, VolumePart};
use super::job::{
    close_fd, connect_fd, connect_sd, end_sd, fd_expect, fd_wait_end, sd_job, send_storage, Fail,
    JobCtx, Outcome,
};
use super::msgchan::SdOutcome;

/// What to restore and where.
#[derive(Clone, Debug)]
pub struct RestoreSpec {
    /// The backup job restored.
    pub prior: JobRow,
    /// Where the FD writes (`""`/`/` = original place).
    pub where_: String,
    /// Replace policy: `a` always, `w` if newer, `o` if older, `n` never.
    pub replace: char,
    /// The bootstrap sent to the SD.
    pub bootstrap: Bootstrap,
    /// How many files the FD should restore.
    pub expected_files: u64,
}

/// Builds the bootstrap for `files` (all of the job when `None`) of the
/// backup `job` from its volume parts: one section per part holding
/// selected files, with the session, byte range, FileIndex ranges and count.
pub fn build_bootstrap(
    job: &JobRow,
    parts: &[VolumePart],
    selected: Option<&[FileRow]>,
    storage: &str,
    device: &str,
) -> (Bootstrap, u64) {
    let mut entries = Vec::new();
    let mut total = 0u64;
    for part in parts {
        let r = &part.range;
        let first = r.first_index as i32;
        let last = r.last_index as i32;
        let indexes: Vec<i32> = match selected {
            None => (first..=last).collect(),
            Some(files) => {
                let mut v: Vec<i32> = files
                    .iter()
                    .map(|f| f.file_index)
                    .filter(|fi| (first..=last).contains(fi))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        if indexes.is_empty() {
            continue;
        }
        let count = indexes.len() as u32;
        total += u64::from(count);
        entries.push(BsrEntry {
            storage: Some(storage.to_string()),
            volumes: vec![part.volume.clone()],
            media_type: Some(part.media_type.clone()),
            device: Some(device.to_string()),
            slot: None,
            vol_session_id: vec![Range {
                first: job.vol_session_id,
                last: job.vol_session_id,
            }],
            vol_session_time: vec![job.vol_session_time],
            vol_addr: vec![Range {
                first: r.start_addr(),
                last: r.end_addr(),
            }],
            file_index: ranges(&indexes),
            count: Some(count),
            file_regex: None,
        });
    }
    (Bootstrap { entries }, total)
}

/// Sorted, deduplicated indexes as inclusive ranges.
fn ranges(sorted: &[i32]) -> Vec<Range<i32>> {
    let mut out: Vec<Range<i32>> = Vec::new();
    for &i in sorted {
        match out.last_mut() {
            Some(r) if r.last + 1 == i => r.last = i,
            _ => out.push(Range { first: i, last: i }),
        }
    }
    out
}

/// Files of a job matching a `file=` selection: the path itself, or
/// everything under it when it names a directory.
pub fn select_files(files: &[FileRow], wanted: &[String]) -> Vec<FileRow> {
    files
        .iter()
        .filter(|f| {
            let full = f.full_path();
            wanted.iter().any(|w| {
                let dir = w.trim_end_matches('/');
                full == *w
                    || full.trim_end_matches('/') == dir
                    || full.starts_with(&format!("{dir}/"))
            })
        })
        .cloned()
        .collect()
}

/// Runs a restore job.
pub async fn run(ctx: &Arc<JobCtx>) -> Outcome {
    let mut out = Outcome {
        level: ' ',
        ..Outcome::default()
    };
    let mut sd_task = None;
    let r = steps(ctx, &mut out, &mut sd_task).await;
    let failed = r.is_err();
    if let Err(f) = r {
        out.fail = Some(ctx.settle(f).await);
    }
    if sd_task.is_some() {
        out.sd = end_sd(ctx, sd_task, failed).await;
    }
    out
}

async fn steps(
    ctx: &Arc<JobCtx>,
    out: &mut Outcome,
    sd_task: &mut Option<JoinHandle<SdOutcome>>,
) -> Result<(), Fail> {
    let Some(spec) = ctx.plan.restore.clone() else {
        return Err(Fail::Fatal(
            "restore job without a restore specification".into(),
        ));
    };
    ctx.msg(
        baculink_proto::job::catreq::MsgType::Info,
        &format!("Start Restore Job {}\n", ctx.live.unique),
    )
    .await;
    if spec.bootstrap.entries.is_empty() {
        return Err(Fail::Fatal(format!(
            "No volume records in the catalog for JobId {}: nothing to restore",
            spec.prior.job_id
        )));
    }
    let mut ch = connect_sd(ctx).await?;
    let key = sd_job(ctx, &mut ch, false, ' ').await?;
    out.vol_session = (key.sd_id, key.sd_time);
    let (mut fd, gen, _link) = connect_fd(ctx, &key, out).await?;
    let r = async {
        // Bootstrap, then run, on the SD channel.
        ch.sock
            .send_text(sdcmd::BOOTSTRAP)
            .await
            .map_err(|e| Fail::Fatal(format!("Network error with SD: {e}")))?;
        for line in spec.bootstrap.to_lines() {
            ch.sock
                .send_text(&line)
                .await
                .map_err(|e| Fail::Fatal(format!("Network error with SD: {e}")))?;
        }
        let reply = {
            ch.sock
                .signal(Signal::Eod)
                .await
                .map_err(|e| Fail::Fatal(format!("Network error with SD: {e}")))?;
            super::job::sd_reply(ctx, &mut ch).await?
        };
        if reply != sdcmd::OK_BOOTSTRAP {
            return Err(Fail::Fatal(format!(
                "Storage daemon refused the bootstrap: {}",
                reply.trim_end()
            )));
        }
        Ok(())
    }
    .await;
    if let Err(f) = r {
        close_fd(fd).await;
        return Err(f);
    }
    ch.sock
        .send_text(sdcmd::RUN)
        .await
        .map_err(|e| Fail::Fatal(format!("Network error with SD: {e}")))?;
    let id = ctx.id();
    let (sid, stime) = (key.sd_id, key.sd_time);
    let _ = ctx
        .dir
        .catalog
        .call(move |c| c.start_job(id, super::report::now(), ' ', (sid, stime)))
        .await;
    *sd_task = Some(tokio::spawn(ch.run_to_end()));

    let r = async {
        send_storage(ctx, &mut fd, gen, Some(&key.key)).await?;
        let files = format!("files={} ", spec.expected_files);
        let cmd = format!(
            "restore {files}replace={} prelinks=0 where={}\n",
            spec.replace,
            sdcmd::bash(&spec.where_)
        );
        fd.send_text(&cmd)
            .await
            .map_err(|e| Fail::Fatal(format!("Network error with FD during Restore: ERR={e}")))?;
        fd_expect(
            ctx,
            &mut fd,
            gen,
            "2000 OK restore",
            "restore",
            super::job::reply_timeout(),
        )
        .await?;
        // The read session runs now; the FD reports its end of it.
        let poller = tokio::spawn(super::job::poll_fd_progress(ctx.clone()));
        let r = fd_expect(
            ctx,
            &mut fd,
            gen,
            "2000 OK storage end",
            "restore",
            std::time::Duration::from_secs(24 * 3600),
        )
        .await;
        poller.abort();
        r?;
        // Wait for the SD's end of this read job before ending the restore.
        out.sd = end_sd(ctx, sd_task.take(), false).await;
        fd.send_text("endrestore")
            .await
            .map_err(|e| Fail::Fatal(format!("Network error with FD during Restore: ERR={e}")))?;
        fd_wait_end(ctx, &mut fd, gen, out, "Restore").await
    }
    .await;
    close_fd(fd).await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use baculink_proto::job::catreq::JobMediaRange;

    fn job() -> JobRow {
        JobRow {
            job_id: 1,
            vol_session_id: 1,
            vol_session_time: 1_795_934_639,
            ..JobRow::default()
        }
    }

    fn part(first: u32, last: u32) -> VolumePart {
        VolumePart {
            volume: "Vol-0001".into(),
            media_type: "File".into(),
            range: JobMediaRange {
                first_index: first,
                last_index: last,
                start_block: 211,
                end_block: 225_428,
                media_id: 1,
                ..JobMediaRange::default()
            },
        }
    }

    #[test]
    fn whole_job_bootstrap_is_the_captured_one() {
        let (b, n) = build_bootstrap(&job(), &[part(1, 6)], None, "File1", "FileStorage");
        assert_eq!(n, 6);
        assert_eq!(
            b.to_lines(),
            vec![
                "Storage=\"File1\"\n",
                "Volume=\"Vol-0001\"\n",
                "MediaType=\"File\"\n",
                "Device=\"FileStorage\"\n",
                "VolSessionId=1\n",
                "VolSessionTime=1795934639\n",
                "VolAddr=211-225428\n",
                "FileIndex=1-6\n",
                "Count=6\n",
            ]
        );
    }

    #[test]
    fn selection_makes_ranges_and_skips_empty_parts() {
        let file = |fi: i32, path: &str, name: &str| FileRow {
            file_index: fi,
            path: path.into(),
            name: name.into(),
            ..FileRow::default()
        };
        let all = vec![
            file(1, "/d/", "a"),
            file(2, "/d/sub/", "b"),
            file(3, "/d/sub/", ""),
            file(4, "/d/", "c"),
            file(5, "/d/", ""),
        ];
        let sel = select_files(&all, &["/d/sub".to_string(), "/d/c".to_string()]);
        let idx: Vec<i32> = sel.iter().map(|f| f.file_index).collect();
        assert_eq!(idx, vec![2, 3, 4]);
        let (b, n) = build_bootstrap(&job(), &[part(1, 4), part(5, 5)], Some(&sel), "S", "D");
        assert_eq!(n, 3);
        assert_eq!(b.entries.len(), 1);
        assert_eq!(b.entries[0].file_index, vec![Range { first: 2, last: 4 }]);
        assert_eq!(ranges(&[1, 2, 5, 7, 8]).len(), 3);
    }
}
