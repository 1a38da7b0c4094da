//! The rotation task: one per process, it takes every request waiting (up to [`MAX_BATCH`])
//! and settles them together (one transaction; on Postgres one statement first: see the parent
//! module). A panic fails only its batch; a request that must wait (its token or session is
//! already in the batch) goes first in the next one.
use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot};

use super::{MAX_BATCH, RotateRequest, Rotation};
use crate::store::{Store, StoreError};

/// Requests waiting for the rotation task; senders wait when it is full.
const QUEUE: usize = 1024;

type Job = (RotateRequest, oneshot::Sender<Result<Rotation, StoreError>>);

/// The handle requests reach the rotation task through.
pub(in crate::store) type Rotations = mpsc::Sender<Job>;

/// Starts the rotation task for `store` (whose own `rotations` is `None`, so the task ends when
/// the last handle that can send to it is dropped).
pub(in crate::store) fn start(store: Store) -> Rotations {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(store, rx));
    tx
}

impl Store {
    /// Presents a refresh token. See [`Rotation`] for the outcomes.
    pub async fn rotate(&self, request: RotateRequest) -> Result<Rotation, StoreError> {
        let stopped = || StoreError::Internal("the rotation task has stopped".into());
        let queue = self.rotations.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        queue.send((request, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let take = waiting.len().min(MAX_BATCH);
        let (requests, replies): (Vec<_>, Vec<_>) = waiting.drain(..take).unzip();
        // A task per batch: a panic fails this batch's requests, not every later one.
        let s = store.clone();
        let settled = tokio::spawn(async move {
            let outcomes = s.settle(&requests).await;
            (requests, outcomes)
        })
        .await;
        match settled {
            Ok((requests, outcomes)) => {
                let mut deferred = Vec::new();
                for ((request, reply), outcome) in requests.into_iter().zip(replies).zip(outcomes) {
                    match outcome {
                        Some(answer) => {
                            // The requester may have gone (client disconnected): nothing to do.
                            let _ = reply.send(answer);
                        }
                        None => deferred.push((request, reply)),
                    }
                }
                // First in the next batch, in their order.
                for job in deferred.into_iter().rev() {
                    waiting.push_front(job);
                }
            }
            Err(panic) => {
                tracing::error!(error = %panic, "rotation batch panicked");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Internal("rotation failed".into())));
                }
            }
        }
    }
}
