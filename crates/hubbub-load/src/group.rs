//! The coordinator's side of connection groups: how many connections each group holds
//! (whole groups fit under one process's open-file limit), starting groups as tasks or as
//! worker processes (this binary re-executed with the hidden `worker` subcommand), and
//! gathering one reply per group while passing progress on.
//!
//! Invariant: the groups' counts add up to the requested total, and their `first_index`es
//! number the connections 0.. without gaps, so source addresses never collide.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::ipc::{Command, Event, GroupSpec, Progress};
use crate::sysstat;

/// Connections per process when the open-file limit allows: well under 20,000.
const DEFAULT_PER_PROCESS: u64 = 15_000;
/// Open files kept free in each process for everything but connections.
const SPARE_FILES: u64 = 200;

/// Where a run's groups live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// One group, a task of this process.
    InProcess,
    /// This many worker processes.
    Processes(usize),
}

/// How to split `total` connections: given `workers` (`None` = automatic, `Some(0)` = in
/// this process) and `per_process` (`None` = from the open-file limit).
pub fn placement(total: u64, workers: Option<usize>, per_process: Option<u64>) -> Placement {
    match workers {
        Some(0) => Placement::InProcess,
        Some(n) => Placement::Processes(n),
        None => {
            let per = per_process.unwrap_or_else(default_per_process).max(1);
            if total <= per {
                Placement::InProcess
            } else {
                Placement::Processes(usize::try_from(total.div_ceil(per)).unwrap_or(usize::MAX))
            }
        }
    }
}

/// Connections one process can hold, from its open-file limit.
pub fn default_per_process() -> u64 {
    sysstat::open_file_limit()
        .map_or(DEFAULT_PER_PROCESS, |limit| {
            limit.saturating_sub(SPARE_FILES)
        })
        .clamp(1, DEFAULT_PER_PROCESS)
}

/// `(first_index, count)` of each of `groups` groups sharing `total` connections.
pub fn split(total: u64, groups: usize) -> Vec<(u64, u64)> {
    let groups = groups.max(1) as u64;
    let mut first = 0;
    (0..groups)
        .map(|g| {
            let count = total / groups + u64::from(g < total % groups);
            let out = (first, count);
            first += count;
            out
        })
        .collect()
}

/// The input side of one group.
enum Input {
    Task(mpsc::UnboundedSender<Command>),
    Process(ChildStdin),
}

/// Running groups: send commands to all, receive their events.
pub struct Groups {
    inputs: Vec<Input>,
    children: Vec<Child>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
}

impl Groups {
    /// Starts one group per spec: as tasks, or as worker processes with `threads` threads.
    pub async fn start(
        specs: Vec<GroupSpec>,
        processes: bool,
        threads: usize,
    ) -> Result<Self, String> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut inputs = Vec::new();
        let mut children = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            if processes {
                let (stdin, child) = spawn_worker(index, &spec, threads, tx.clone()).await?;
                inputs.push(Input::Process(stdin));
                children.push(child);
            } else {
                let (command_tx, command_rx) = mpsc::unbounded_channel();
                let (event_tx, mut event_rx) = mpsc::unbounded_channel();
                tokio::spawn(crate::worker::run(spec, command_rx, event_tx));
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(event) = event_rx.recv().await {
                        if tx.send((index, event)).is_err() {
                            return;
                        }
                    }
                });
                inputs.push(Input::Task(command_tx));
            }
        }
        Ok(Self {
            inputs,
            children,
            events,
        })
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Process ids of the worker processes.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// Sends `command` to every group.
    pub async fn send_all(&mut self, command: &Command) -> Result<(), String> {
        let mut line = serde_json::to_string(command).map_err(|e| e.to_string())?;
        line.push('\n');
        for (index, input) in self.inputs.iter_mut().enumerate() {
            let sent = match input {
                Input::Task(tx) => tx.send(command.clone()).is_ok(),
                Input::Process(stdin) => {
                    stdin.write_all(line.as_bytes()).await.is_ok() && stdin.flush().await.is_ok()
                }
            };
            if !sent {
                return Err(format!("group {index} is gone"));
            }
        }
        Ok(())
    }

    /// The next event of any group (`None` once all are gone).
    pub async fn next(&mut self) -> Option<(usize, Event)> {
        self.events.recv().await
    }

    /// Waits for one reply (an event other than progress) per group, ordered by group,
    /// handing progress to `on_progress`; fails on a fatal event or after `limit`.
    pub async fn replies(
        &mut self,
        limit: Option<Duration>,
        on_progress: &mut dyn FnMut(usize, Progress),
    ) -> Result<Vec<Event>, String> {
        let mut replies: Vec<Option<Event>> = vec![None; self.len()];
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        while replies.iter().any(Option::is_none) {
            let next = match deadline {
                Some(d) => tokio::time::timeout_at(d, self.next())
                    .await
                    .map_err(|_| "timed out waiting for the connection groups".to_string())?,
                None => self.next().await,
            };
            match next {
                None => return Err("every connection group is gone".into()),
                Some((_, Event::Fatal { message })) => return Err(message),
                Some((index, Event::Progress(p))) => on_progress(index, p),
                Some((index, event)) => {
                    if let Some(slot) = replies.get_mut(index) {
                        *slot = Some(event);
                    }
                }
            }
        }
        Ok(replies.into_iter().flatten().collect())
    }

    /// Stops every group and waits (briefly) for worker processes to exit.
    pub async fn stop(mut self) {
        let _ = self.send_all(&Command::Stop).await;
        self.inputs.clear();
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// Starts a worker process for `spec` and a task that forwards its events.
async fn spawn_worker(
    index: usize,
    spec: &GroupSpec,
    threads: usize,
    events: mpsc::UnboundedSender<(usize, Event)>,
) -> Result<(ChildStdin, Child), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = tokio::process::Command::new(exe)
        .arg("worker")
        .arg("--threads")
        .arg(threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start a worker process: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("worker has no stdin")?;
    let stdout = child.stdout.take().ok_or("worker has no stdout")?;
    let mut line = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    line.push('\n');
    stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("worker {index}: {e}"))?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let event = match lines.next_line().await {
                Ok(Some(line)) => serde_json::from_str(&line).unwrap_or_else(|e| Event::Fatal {
                    message: format!("worker {index}: bad event line: {e}"),
                }),
                Ok(None) => Event::Fatal {
                    message: format!("worker {index} exited"),
                },
                Err(e) => Event::Fatal {
                    message: format!("worker {index}: {e}"),
                },
            };
            let last = matches!(event, Event::Fatal { .. });
            if events.send((index, event)).is_err() || last {
                return;
            }
        }
    });
    Ok((stdin, child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_contiguous_and_complete() {
        for (total, groups) in [(10, 3), (19_000, 2), (5, 8), (0, 2), (7, 1)] {
            let parts = split(total, groups);
            assert_eq!(parts.len(), groups);
            assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), total);
            let mut next = 0;
            for (first, count) in parts {
                assert_eq!(first, next);
                next += count;
            }
        }
    }

    #[test]
    fn placement_rules() {
        assert_eq!(placement(10, Some(0), None), Placement::InProcess);
        assert_eq!(placement(10, Some(3), None), Placement::Processes(3));
        assert_eq!(placement(1000, None, Some(1000)), Placement::InProcess);
        assert_eq!(
            placement(19_000, None, Some(15_000)),
            Placement::Processes(2)
        );
        assert!(default_per_process() >= 1);
    }
}
