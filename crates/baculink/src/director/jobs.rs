//! Jobs while they run: the registry `status dir`, `.jobprogress`, `wait`
//! and `cancel` read, the cancel signal a job task watches, and the console
//! message queue ("You have messages.").

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify, Semaphore};

use super::report;

/// How many terminated jobs `status dir` remembers.
const KEEP_TERMINATED: usize = 50;
/// Console message lines kept before the oldest are dropped.
const KEEP_MESSAGES: usize = 20_000;

/// A cancel request a job task can wait on.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// Requests cancellation (idempotent).
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Completes once cancellation is requested.
    pub async fn cancelled(&self) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            n.await;
        }
    }
}

/// What changes while a job runs.
#[derive(Clone, Debug, Default)]
pub struct LiveState {
    /// Director-side status letter.
    pub status: char,
    /// Last SD status letter reported.
    pub sd_status: char,
    /// Level letter (may change: Incremental upgraded to Full).
    pub level: char,
    /// Files so far (FD progress, SD attributes).
    pub files: u64,
    /// Bytes so far.
    pub bytes: u64,
    /// Current rate from the FD, bytes per second (0 = compute from the totals).
    pub bps: u64,
    /// When the job started running (epoch seconds; 0 = still queued).
    pub start: i64,
}

/// A queued or running job.
pub struct LiveJob {
    /// JobId.
    pub id: u32,
    /// Unique job name.
    pub unique: String,
    /// Job resource name.
    pub name: String,
    /// Type letter (`B`, `R`).
    pub kind: char,
    /// Client name.
    pub client: String,
    /// Mutable state.
    pub state: Mutex<LiveState>,
    /// Cancel request.
    pub cancel: Cancel,
    done: watch::Sender<Option<char>>,
}

impl LiveJob {
    /// A copy of the state.
    pub fn snapshot(&self) -> LiveState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Changes the state.
    pub fn update(&self, f: impl FnOnce(&mut LiveState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    /// Merges a status with the precedence rules.
    pub fn set_status(&self, new: char) {
        self.update(|s| s.status = report::merge_status(s.status, new));
    }

    /// Waits until the job ended; its final status letter.
    pub async fn finished(&self) -> char {
        let mut rx = self.done.subscribe();
        loop {
            if let Some(s) = *rx.borrow_and_update() {
                return s;
            }
            if rx.changed().await.is_err() {
                return 'E';
            }
        }
    }
}

/// A finished job as `status dir` lists it.
#[derive(Clone, Debug)]
pub struct Terminated {
    /// JobId.
    pub id: u32,
    /// Job resource name.
    pub name: String,
    /// Type letter.
    pub kind: char,
    /// Level letter.
    pub level: char,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Final status letter.
    pub status: char,
    /// When it ended.
    pub end: i64,
}

/// Every job the Director knows about now.
pub struct Jobs {
    running: Mutex<BTreeMap<u32, Arc<LiveJob>>>,
    terminated: Mutex<VecDeque<Terminated>>,
    messages: Mutex<VecDeque<String>>,
    /// `Maximum Concurrent Jobs` of the Director.
    pub slots: Arc<Semaphore>,
    /// `Maximum Concurrent Jobs` of each Job, Client and Storage resource.
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    seq: AtomicU32,
    run: AtomicU32,
}

impl Jobs {
    /// A registry allowing `max_concurrent` jobs at once.
    pub fn new(max_concurrent: u32) -> Jobs {
        Jobs {
            running: Mutex::default(),
            terminated: Mutex::default(),
            messages: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1) as usize)),
            limits: Mutex::default(),
            seq: AtomicU32::new(1),
            run: AtomicU32::new(0),
        }
    }

    /// The slots of one resource (`Client/name`, ...), created with its
    /// `Maximum Concurrent Jobs` the first time it is asked for.
    pub fn limit(&self, key: &str, max: u32) -> Arc<Semaphore> {
        let mut l = match self.limits.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        l.entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(max.max(1) as usize)))
            .clone()
    }

    /// The `_NN` suffix of the next unique job name.
    pub fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed) % 100
    }

    /// Registers a queued job.
    pub fn add(
        &self,
        id: u32,
        unique: String,
        name: String,
        kind: char,
        level: char,
        client: String,
    ) -> Arc<LiveJob> {
        let (done, _) = watch::channel(None);
        let job = Arc::new(LiveJob {
            id,
            unique,
            name,
            kind,
            client,
            state: Mutex::new(LiveState {
                status: 'C',
                sd_status: ' ',
                level,
                ..LiveState::default()
            }),
            cancel: Cancel::default(),
            done,
        });
        if let Ok(mut r) = self.running.lock() {
            r.insert(id, job.clone());
        }
        job
    }

    /// Moves a job to the terminated list and wakes its waiters.
    pub fn finish(&self, job: &LiveJob, status: char, end: i64) {
        let st = job.snapshot();
        if let Ok(mut r) = self.running.lock() {
            r.remove(&job.id);
        }
        if let Ok(mut t) = self.terminated.lock() {
            t.push_back(Terminated {
                id: job.id,
                name: job.name.clone(),
                kind: job.kind,
                level: st.level,
                files: st.files,
                bytes: st.bytes,
                status,
                end,
            });
            while t.len() > KEEP_TERMINATED {
                t.pop_front();
            }
        }
        self.run.fetch_add(1, Ordering::Relaxed);
        job.done.send_replace(Some(status));
    }

    /// A queued or running job.
    pub fn get(&self, id: u32) -> Option<Arc<LiveJob>> {
        self.running.lock().ok()?.get(&id).cloned()
    }

    /// Every queued or running job, by JobId.
    pub fn running(&self) -> Vec<Arc<LiveJob>> {
        self.running
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The terminated jobs remembered, oldest first.
    pub fn terminated(&self) -> Vec<Terminated> {
        self.terminated
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many jobs ended since start.
    pub fn run_count(&self) -> u32 {
        self.run.load(Ordering::Relaxed)
    }

    /// Queues a message for the consoles (lines keep their newline).
    pub fn queue_message(&self, text: String) {
        if let Ok(mut m) = self.messages.lock() {
            m.push_back(text);
            while m.len() > KEEP_MESSAGES {
                m.pop_front();
            }
        }
    }

    /// Whether messages wait.
    pub fn has_messages(&self) -> bool {
        self.messages.lock().map(|m| !m.is_empty()).unwrap_or(false)
    }

    /// Takes every queued message.
    pub fn take_messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|mut m| m.drain(..).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finish_wakes_waiters_and_moves_the_job() {
        let jobs = Arc::new(Jobs::new(2));
        let j = jobs.add(1, "a.1".into(), "a".into(), 'B', 'F', "c".into());
        assert_eq!(jobs.running().len(), 1);
        let j2 = j.clone();
        let waiter = tokio::spawn(async move { j2.finished().await });
        j.set_status('R');
        j.set_status('E');
        j.set_status('T');
        assert_eq!(j.snapshot().status, 'E', "an error sticks");
        jobs.finish(&j, 'E', 5);
        assert_eq!(waiter.await.unwrap(), 'E');
        assert_eq!(
            j.finished().await,
            'E',
            "waiting after the end returns at once"
        );
        assert!(jobs.running().is_empty());
        assert_eq!(jobs.terminated()[0].status, 'E');
        assert_eq!(jobs.run_count(), 1);
    }

    #[tokio::test]
    async fn cancel_is_seen_by_late_and_early_waiters() {
        let c = Arc::new(Cancel::default());
        let c2 = c.clone();
        let t = tokio::spawn(async move { c2.cancelled().await });
        tokio::task::yield_now().await;
        c.cancel();
        t.await.unwrap();
        c.cancelled().await;
        assert!(c.is_cancelled());
    }

    #[test]
    fn messages_queue() {
        let jobs = Jobs::new(1);
        assert!(!jobs.has_messages());
        jobs.queue_message("a\n".into());
        assert!(jobs.has_messages());
        assert_eq!(jobs.take_messages(), vec!["a\n".to_string()]);
        assert!(!jobs.has_messages());
    }
}
