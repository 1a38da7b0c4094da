//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) on a pool of
//! its own threads, one per core, at the lowest CPU priority (`SCHED_IDLE` and nice +19 on
//! Linux): a login storm can neither starve the async runtime nor queue unbounded threads, and
//! when the cores are short the cheap requests (verify, refresh) go first while hashing takes
//! what is left. With nothing else to do, hashing still gets every core. Unknown users are checked against a dummy
//! hash so that the work, and so the timing, is the same as for a wrong password.
//!
//! The queue in front of the threads is bounded: when it is full a request is refused at once
//! ([`PasswordError::Busy`], a 503 with `Retry-After`) instead of waiting behind work it cannot
//! outrun, and a job whose requester has gone (the client hung up) is dropped unhashed.
use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

/// Memory cost in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters (bounds the hashing input; never truncated).
pub const MAX_LEN: usize = 1024;

/// A password-hashing failure; only a bug or a corrupt stored hash gets here.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing threads have stopped")]
    Stopped,
    /// Every hashing thread is busy and the queue is full.
    #[error("the password-hashing queue is full")]
    Busy,
}

/// Is this password acceptable? Length in Unicode scalar values; any character is allowed and
/// the password is used exactly as given (no trimming, no case folding, no normalisation).
pub fn is_acceptable(password: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&password.chars().count()) && !is_common(password)
}

/// Passwords of 8 characters or more that breach corpora show people choose most (OWASP ASVS
/// 6.2.4): the entries of that length of Django's list of 20,000 common passwords (Django 5.2,
/// BSD-3-Clause; see NOTICE), lower-cased. Shipped in the binary, so the check is offline.
static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

/// Is `password`, ignoring case and surrounding spaces, on the list of common passwords?
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.trim().to_lowercase().as_str())
}

/// argon2's defaults are OWASP's (checked by a test against the constants above).
const PARAMS: Params = Params::DEFAULT;

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS)
}

/// Where a hash's argon2 memory comes from.
#[derive(Clone, Copy)]
enum Memory {
    /// The hashing thread's kept block: no 19 MiB allocation per hash.
    Kept,
    /// A block of its own, freed after: for the one hash at start (the dummy), so that an idle
    /// server does not hold 19 MiB it may never use.
    Once,
}

/// A PHC-format argon2id hash of `password`.
fn hash_blocking(password: &[u8], memory: Memory) -> Result<String, PasswordError> {
    let bad = |e: &dyn std::fmt::Display| PasswordError::Argon2(e.to_string());
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| bad(&e))?;
    let salt_string = SaltString::encode_b64(&salt).map_err(|e| bad(&e))?;
    let hasher = argon2();
    let params = hasher.params().clone();
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        let mut fill = |blocks: &mut [Block]| {
            hasher.hash_password_into_with_memory(password, &salt, &mut *out, blocks)
        };
        match memory {
            Memory::Kept => with_blocks(params.block_count(), fill),
            Memory::Once => fill(&mut vec![Block::default(); params.block_count()]),
        }
        .map_err(argon2::password_hash::Error::from)
    })
    .map_err(|e| bad(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| bad(&e))?,
        salt: Some(salt_string.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_blocking(password: &[u8], phc: &str) -> Result<bool, PasswordError> {
    let bad = |e: &dyn std::fmt::Display| PasswordError::Argon2(e.to_string());
    let parsed = PasswordHash::new(phc).map_err(|e| bad(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::Argon2(
            "the stored hash has no salt or no output".into(),
        ));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| bad(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| bad(&e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| bad(&e))?;
    let mut salt_buf = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| bad(&e))?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    with_blocks(blocks, |memory| {
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, memory)
    })
    .map_err(|e| bad(&e))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out).map_err(|e| bad(&e))? == expected)
}

thread_local! {
    /// This hashing thread's argon2 memory, kept between hashes: allocating 19 MiB per login
    /// cost a page fault per 4 KiB and the kernel's zeroing of every page, a quarter of the
    /// hashing threads' CPU (perf record, login c=64). Lives as long as the thread: 19 MiB per
    /// hashing thread once it has verified a password.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        f(&mut blocks[..count])
    })
}

/// How much lower than the request threads the hashing threads run (a nice value).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const HASHING_NICENESS: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on its own threads, `concurrency` at a time.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::SyncSender<Job>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher with `concurrency` threads and room for `queue` waiting jobs; computes the
    /// dummy hash. The threads end when the last clone of the hasher is dropped.
    pub async fn new(concurrency: usize, queue: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(queue.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..concurrency.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("authd-hash-{i}"))
                .spawn(move || {
                    lower_this_threads_priority();
                    loop {
                        // A poisoned lock only means another hashing thread panicked while
                        // taking a job; the queue itself is intact.
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            // A panicking job drops its reply (its caller gets an error); the
                            // thread lives on.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| {
                    PasswordError::Argon2(format!("cannot start a hashing thread: {e}"))
                })?;
        }
        let mut dummy_password = [0u8; 32];
        getrandom::fill(&mut dummy_password).map_err(|e| PasswordError::Argon2(e.to_string()))?;
        let dummy = run_on(&jobs, move || hash_blocking(&dummy_password, Memory::Once)).await?;
        Ok(Self {
            jobs,
            dummy: dummy.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        run_on(&self.jobs, job).await
    }

    /// A new PHC-format argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(password.as_bytes(), Memory::Kept))
            .await
    }

    /// Does `password` match `phc`? With `None` (unknown user) it checks against the dummy hash
    /// and answers `false`, doing the same work as a real check.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        let ok = self
            .run(move || verify_blocking(password.as_bytes(), &phc))
            .await?;
        Ok(ok && known)
    }
}

/// Runs `job` on the hashing threads behind `jobs` and waits for its result; refuses at once
/// when the queue is full.
async fn run_on<T: Send + 'static>(
    jobs: &mpsc::SyncSender<Job>,
    job: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    let (reply, answer) = oneshot::channel();
    jobs.try_send(Box::new(move || {
        // The caller has gone (the client hung up and its request was dropped): skip the work.
        if !reply.is_closed() {
            let _ = reply.send(job());
        }
    }))
    .map_err(|e| match e {
        mpsc::TrySendError::Full(_) => PasswordError::Busy,
        mpsc::TrySendError::Disconnected(_) => PasswordError::Stopped,
    })?;
    answer.await.map_err(|_| PasswordError::Stopped)?
}

/// Puts the calling thread (a hashing thread) below every request thread: `SCHED_IDLE` on
/// Linux, and nice +19 as well, which is what remains if the policy is refused. Under nice +19
/// alone a waking request thread (or a database process) could wait for a hashing thread to
/// finish its time slice, milliseconds on a busy core, at every round trip of a refresh; a
/// `SCHED_IDLE` thread is preempted by any other wake-up at once, and still gets every core
/// nothing else wants. Both are per thread on Linux and need no privilege. Failing is harmless
/// (hashing then competes with requests on equal terms), so the results are ignored.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
        // `setpriority(PRIO_PROCESS, 0)` names the calling thread, not the process.
        let _ = rustix::process::setpriority_process(None, HASHING_NICENESS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (nice value, scheduling policy) of each of this process's threads named
    /// `authd-hash-*` (fields 19 and 41 of /proc/self/task/TID/stat, counted after the
    /// parenthesised name).
    #[cfg(target_os = "linux")]
    fn hashing_thread_niceness() -> Vec<(i32, u32)> {
        let mut out = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
            let dir = task.expect("task").path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !name.starts_with("authd-hash-") {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
            let after_name = &stat[stat.rfind(')').expect("name") + 2..];
            let fields: Vec<&str> = after_name.split(' ').collect();
            out.push((
                fields[16].parse().expect("nice"),
                fields[38].parse().expect("policy"),
            ));
        }
        out
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_runs_on_its_own_threads_below_the_request_threads() {
        let hasher = Hasher::new(2, 8).await.expect("hasher");
        let phc = hasher
            .hash("correct horse battery".into())
            .await
            .expect("hash");
        assert!(
            hasher
                .verify("correct horse battery".into(), Some(phc.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("wrong".into(), Some(phc))
                .await
                .expect("verify")
        );
        // SCHED_IDLE is policy 5 (include/uapi/linux/sched.h), at nice +19.
        const SCHED_IDLE: u32 = 5;
        let threads = hashing_thread_niceness();
        assert!(threads.len() >= 2, "{threads:?}");
        assert!(
            threads
                .iter()
                .all(|&(nice, policy)| nice >= HASHING_NICENESS && policy == SCHED_IDLE),
            "{threads:?}"
        );
    }

    #[test]
    fn the_parameters_are_owasps() {
        assert_eq!(
            (PARAMS.m_cost(), PARAMS.t_cost(), PARAMS.p_cost()),
            (M_COST_KIB, T_COST, P_COST)
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_waiting() {
        let hasher = Hasher::new(1, 1).await.expect("hasher");
        // One job on the thread and one in the queue at most: argon2 takes milliseconds, the
        // four submissions take microseconds.
        let tries = (0..4).map(|_| hasher.verify("correct horse battery".into(), None));
        let results = futures::future::join_all(tries).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(PasswordError::Busy)))
            .count();
        assert!(busy >= 2, "{results:?}");
        assert!(
            results.iter().any(|r| matches!(r, Ok(false))),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn a_job_whose_requester_left_is_not_hashed() {
        let hasher = Hasher::new(1, 8).await.expect("hasher");
        let busy = hasher.clone();
        let blocker = tokio::spawn(async move {
            busy.run(|| {
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(())
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = ran.clone();
        {
            let abandoned = hasher.run(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            });
            futures::pin_mut!(abandoned);
            // Queued behind the blocker, then dropped like a request whose client hung up.
            assert!(futures::poll!(&mut abandoned).is_pending());
        }
        blocker.await.expect("join").expect("first job");
        // The queue is first in, first out: by the time this answers the thread has passed the
        // abandoned job.
        hasher.verify("x".into(), None).await.expect("a later job");
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
