//! Group commit: writers that arrive while a commit is running share the next durable
//! transaction, so N concurrent writes cost about one fsync instead of N.
//!
//! A writer puts its job in the queue. If no commit is running it leads: it takes every queued
//! job (up to [`MAX_BATCH`]), runs them in order in one write transaction and commits it
//! (fsync), then answers each job and hands the lead to the first job queued meanwhile. Every
//! writer is answered only after the transaction holding its data is durable: nothing weaker
//! than one transaction per write.
//!
//! Jobs are independent: a job that fails aborts the shared transaction, gets its own error, and
//! the others run again in a fresh one (jobs are `FnMut` and read the database anew, so the
//! rerun sees exactly what a transaction of their own would have seen). Jobs commit in the
//! order they were queued, so a writer that was answered before another started is ordered
//! before it in the log.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::{Store, StoreError, TxError};

/// Jobs one transaction takes at most (a bound on the time a leader spends before answering).
pub const MAX_BATCH: usize = 256;

type RunFn = Box<dyn FnMut(&redb::WriteTransaction) -> Result<(), TxError> + Send>;

struct Job {
    action: &'static str,
    run: RunFn,
    reply: SyncSender<Reply>,
}

enum Reply {
    /// The job's transaction was committed (or the job failed).
    Done(Result<(), StoreError>),
    /// The previous leader is done: run the queue.
    Lead,
}

/// The queue of jobs waiting for a commit.
#[derive(Default)]
pub(super) struct CommitQueue {
    // std Mutex: held to push, take or hand over, never while a transaction runs.
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    pending: Vec<Job>,
    /// A writer is running a batch (or has been told to).
    leading: bool,
}

impl std::fmt::Debug for CommitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitQueue").finish_non_exhaustive()
    }
}

impl CommitQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Pushes and takes cannot leave the queue half-changed, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a leader's turn even if a job panicked: the lead goes to the next queued job, or the
/// queue is left without a leader.
struct Turn<'a>(&'a CommitQueue);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        loop {
            let Some(next) = q.pending.first() else {
                q.leading = false;
                return;
            };
            // The writer waits for exactly this; one whose thread is gone cannot take the
            // lead (its job is dropped), so the next one must.
            if next.reply.try_send(Reply::Lead).is_ok() {
                return;
            }
            q.pending.remove(0);
        }
    }
}

impl Store {
    /// Runs `f` in a write transaction shared with the writes queued at the same time, and
    /// returns once that transaction is durably committed (or `f` failed: then nothing of
    /// `f`'s is written). `f` may run more than once (when another job of the batch fails), each
    /// time in a fresh transaction; it must not call other writing store methods.
    pub(super) fn write_grouped<T, F>(
        &self,
        action: &'static str,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&redb::WriteTransaction) -> Result<T, TxError> + Send + 'static,
    {
        let out: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&out);
        let run: RunFn = Box::new(move |tx| {
            let v = f(tx)?;
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            Ok(())
        });
        let (reply, replies) = sync_channel(1);
        let queue = &self.shared.commits;
        let lead = {
            let mut q = queue.lock();
            q.pending.push(Job { action, run, reply });
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead && !matches!(wait(&replies, action)?, Reply::Lead) {
            return take(&out, action);
        }
        let batch: Vec<Job> = {
            let mut q = queue.lock();
            let n = q.pending.len().min(MAX_BATCH);
            q.pending.drain(..n).collect()
        };
        {
            let _turn = Turn(queue);
            self.commit_batch(batch);
        }
        match wait(&replies, action)? {
            Reply::Done(r) => r.and_then(|()| take(&out, action)),
            Reply::Lead => Err(lost(action)),
        }
    }

    /// Runs `jobs` in one transaction and commits it; a failing job is answered with its
    /// error and the rest run again without it.
    fn commit_batch(&self, jobs: Vec<Job>) {
        let mut live = jobs;
        while !live.is_empty() {
            let tx = match self.shared.db.begin_write() {
                Ok(tx) => tx,
                Err(e) => {
                    let e: redb::Error = e.into();
                    return answer_all(live, &e);
                }
            };
            let mut failed = None;
            for (i, job) in live.iter_mut().enumerate() {
                if let Err(e) = (job.run)(&tx) {
                    failed = Some((i, e));
                    break;
                }
            }
            if let Some((i, e)) = failed {
                let _ = tx.abort();
                let job = live.remove(i);
                let _ = job.reply.send(Reply::Done(Err(e.into_store(job.action))));
                continue;
            }
            match tx.commit() {
                Ok(()) => {
                    for job in live {
                        let _ = job.reply.send(Reply::Done(Ok(())));
                    }
                }
                Err(e) => answer_all(live, &e.into()),
            }
            return;
        }
    }
}

fn answer_all(jobs: Vec<Job>, e: &redb::Error) {
    for job in jobs {
        let copy = redb::Error::Io(std::io::Error::other(e.to_string()));
        let _ = job
            .reply
            .send(Reply::Done(Err(StoreError::db(job.action)(copy))));
    }
}

fn wait(replies: &Receiver<Reply>, action: &'static str) -> Result<Reply, StoreError> {
    match replies.recv() {
        Ok(Reply::Done(Err(e))) => Err(e),
        Ok(r) => Ok(r),
        Err(_) => Err(lost(action)),
    }
}

/// The leader running this job panicked: the job's transaction was not committed.
fn lost(action: &'static str) -> StoreError {
    StoreError::db(action)(redb::Error::Io(std::io::Error::other(
        "the shared transaction was abandoned (a writer failed); nothing was written",
    )))
}

fn take<T>(out: &Mutex<Option<T>>, action: &'static str) -> Result<T, StoreError> {
    out.lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| lost(action))
}
